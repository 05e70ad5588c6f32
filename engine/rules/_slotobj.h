/* engine.rules._slotsfast: reading and writing a SlotTable's Python attributes (included once,
 * by _slotsfast.c).
 *
 * T is one call's view of a table: its fields read at the start of a call (t_open), the raw
 * arrays of its index, hashes and rows held as buffers, and the changed fields written back at
 * the end (t_close). t_python and call_ll run one of the table's own Python methods for the
 * rare steps, with the fields written back before and read again after. */

static PyObject *py_key_hash, *py_value_fp;     /* keyhash.py, for keys that are not ints */
static PyObject *str_hashes;                    /* keyhash._STR_HASHES: string -> its digest */
/* the fields read and written here, by index (their names are in fname) */
enum { s_hk, s_ix, s_rows, s_cap, s_used, s_cursor, s_top, s_free, s_old, s_width, s_touch, s_keep,
       s_max_keys, s_left, s_step, s_released, NFIELDS };
static PyObject *fname[NFIELDS];
static PyObject *s_give_back;
static PyObject *s_pull, *s_grow, *s_evict, *s_lengthen, *s_more_rows, *s_slot;

typedef struct {
    PyObject *o;
    Py_buffer ib, kb, rb;
    int open;
    uint32_t *ix, *rows;                /* the index (row + 1, 0 empty) and the rows */
    uint64_t *hk;                       /* each row's key hash */
    Py_ssize_t nslots, nrows;
    long long width, touch, keep, max_keys, cap, used, cursor, top, free, old_left;
    int has_keep, has_old;
    long long used0, cursor0, top0, free0;
} T;

/* Attribute access. SlotTable and _Old keep their fields in __slots__, i.e. at fixed offsets of
   the instance (a member descriptor each): the first time a class is met, the offsets of all the
   fields above are looked up once; afterwards a field of an instance of that class is a pointer
   load at a known offset (a few instructions), instead of a generic attribute look-up (~25 ns
   each, a dozen per call). Any other class (past NTYPES), or a field that is not a slot, takes
   the generic path. */
#define NTYPES 8
static struct { PyTypeObject *type; Py_ssize_t off[NFIELDS]; } types[NTYPES];
static int ntypes;

static PyTypeObject *last_type;           /* the class met last and its offsets (types[]): one compare */
static const Py_ssize_t *last_off;

static Py_ssize_t slot_offset_of(PyTypeObject *tp, int f);

/* (inline: the class met last, one compare in the caller; any other: slot_offset_of) */
static inline Py_ssize_t slot_offset(PyObject *o, int f)
{
    return Py_TYPE(o) == last_type ? last_off[f] : slot_offset_of(Py_TYPE(o), f);
}

#if defined(__GNUC__)
__attribute__((noinline))       /* (the rare path out of line: slot_offset stays a compare and a load) */
#endif
static Py_ssize_t slot_offset_of(PyTypeObject *tp, int f)
{
    int k;
    for (k = 0; k < ntypes; k++)
        if (types[k].type == tp) {
            last_type = tp, last_off = types[k].off;
            return types[k].off[f];
        }
    if (ntypes >= NTYPES) return -1;
    for (int i = 0; i < NFIELDS; i++) {
        Py_ssize_t off = -1;
        PyObject *d = PyObject_GetAttr((PyObject *)tp, fname[i]);
        if (!d) PyErr_Clear();
        else {
            if (Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX)
                off = ((PyMemberDescrObject *)d)->d_member->offset;
            Py_DECREF(d);
        }
        types[k].off[i] = off;
    }
    Py_INCREF(tp);                      /* the cache keeps the class alive: its offsets stay valid */
    types[k].type = tp;
    ntypes++;
    return types[k].off[f];
}

/* a new reference to o.name */
static PyObject *attr(PyObject *o, int f)
{
    Py_ssize_t off = slot_offset(o, f);
    if (off > 0) {
        PyObject *v = *(PyObject **)((char *)o + off);
        if (v) { Py_INCREF(v); return v; }
    }
    return PyObject_GetAttr(o, fname[f]);
}

/* o.name = v (a new reference is taken) */
static int set_attr(PyObject *o, int f, PyObject *v)
{
    Py_ssize_t off = slot_offset(o, f);
    if (off > 0) {
        PyObject **p = (PyObject **)((char *)o + off), *prev = *p;
        Py_INCREF(v);
        *p = v;
        Py_XDECREF(prev);
        return 0;
    }
    return PyObject_SetAttr(o, fname[f], v);
}

static int get_ll(PyObject *o, int f, long long *out)
{
    Py_ssize_t off = slot_offset(o, f);
    if (off > 0) {
        PyObject *b = *(PyObject **)((char *)o + off);
        if (b && PyLong_CheckExact(b)) {        /* an int: read where it is (no Python code runs, no reference) */
            *out = PyLong_AsLongLong(b);
            return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
        }
    }
    PyObject *v = attr(o, f);
    if (!v) return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int set_ll(PyObject *o, int f, long long v)
{
    PyObject *x = PyLong_FromLongLong(v);
    if (!x) return -1;
    int r = set_attr(o, f, x);
    Py_DECREF(x);
    return r;
}

static int get_buf(PyObject *o, int f, Py_buffer *b)
{
    PyObject *v = attr(o, f);
    if (!v) return -1;
    int r = PyObject_GetBuffer(v, b, PyBUF_WRITABLE);
    Py_DECREF(v);
    return r;
}

/* One of the table's own arrays (t_buffers), read in place when it is a memoryview (flatmem.py's: a table's arrays
   are) that is live, writable and C-contiguous: its own view's pointer and length, without taking a buffer of it and
   giving it back (PyObject_GetBuffer then PyBuffer_Release: ~1,000 instructions a table call for the three). b->obj
   is NULL, so PyBuffer_Release on it does nothing. The table's field keeps the memoryview alive: no Python code runs
   while the arrays are in use but through t_python, which lets go of them first and reads them again after. Anything
   else (an array.array, a view PyObject_GetBuffer would refuse) takes the buffer protocol, and its errors. */
static int get_table_buf(PyObject *o, int f, Py_buffer *b)
{
#ifdef _Py_MEMORYVIEW_RELEASED
    Py_ssize_t off = slot_offset(o, f);
    if (off > 0) {
        PyObject *v = *(PyObject **)((char *)o + off);
        if (v && PyMemoryView_Check(v)) {
            PyMemoryViewObject *m = (PyMemoryViewObject *)v;
            if (!(m->flags & _Py_MEMORYVIEW_RELEASED) && (m->flags & _Py_MEMORYVIEW_C) && !m->view.readonly) {
                b->buf = m->view.buf;
                b->len = m->view.len;
                b->obj = NULL;
                return 0;
            }
        }
    }
#endif
    return get_buf(o, f, b);
}

static void t_release(T *t)
{
    if (t->open) {
        PyBuffer_Release(&t->ib);
        PyBuffer_Release(&t->kb);
        PyBuffer_Release(&t->rb);
        t->open = 0;
    }
}

/* the arrays (again: after a Python step they may be new ones) */
static int t_buffers(T *t)
{
    t_release(t);
    if (get_table_buf(t->o, s_ix, &t->ib) < 0) return -1;
    if (get_table_buf(t->o, s_hk, &t->kb) < 0) { PyBuffer_Release(&t->ib); return -1; }
    if (get_table_buf(t->o, s_rows, &t->rb) < 0) { PyBuffer_Release(&t->ib); PyBuffer_Release(&t->kb); return -1; }
    t->open = 1;
    t->ix = (uint32_t *)t->ib.buf;
    t->hk = (uint64_t *)t->kb.buf;
    t->rows = (uint32_t *)t->rb.buf;
    t->nslots = t->ib.len / 4;
    t->nrows = t->kb.len / 8;           /* rows both arrays have room for */
    if (t->width > 0 && t->rb.len / (4 * t->width) < t->nrows) t->nrows = t->rb.len / (4 * t->width);
    return 0;
}

/* the mutable fields (again: after a Python step) */
static int t_fields(T *t)
{
    PyObject *old;
    if (get_ll(t->o, s_cap, &t->cap) < 0 || get_ll(t->o, s_used, &t->used) < 0
        || get_ll(t->o, s_cursor, &t->cursor) < 0 || get_ll(t->o, s_top, &t->top) < 0
        || get_ll(t->o, s_free, &t->free) < 0)
        return -1;
    t->used0 = t->used, t->cursor0 = t->cursor, t->top0 = t->top, t->free0 = t->free;
    old = attr(t->o, s_old);
    if (!old) return -1;
    t->has_old = old != Py_None;
    t->old_left = 0;
    if (t->has_old && get_ll(old, s_left, &t->old_left) < 0) { Py_DECREF(old); return -1; }
    Py_DECREF(old);
    return 0;
}

static int t_open(T *t, PyObject *o)
{
    PyObject *keep;
    memset(t, 0, sizeof(*t));
    t->o = o;
    if (get_ll(o, s_width, &t->width) < 0 || get_ll(o, s_touch, &t->touch) < 0
        || get_ll(o, s_max_keys, &t->max_keys) < 0)
        return -1;
    keep = attr(o, s_keep);
    if (!keep) return -1;
    t->has_keep = keep != Py_None;
    t->keep = t->has_keep ? PyLong_AsLongLong(keep) : 0;
    Py_DECREF(keep);
    if (t->keep == -1 && PyErr_Occurred()) return -1;
    if (t_fields(t) < 0) return -1;
    return t_buffers(t);
}

/* for a read (find only): the index, the rows and their width; everything when a growth is under
   way (a read then moves an entry, as slots.py's find does) */
static int t_open_read(T *t, PyObject *o)
{
    PyObject *old;
    memset(t, 0, sizeof(*t));
    t->o = o;
    old = attr(o, s_old);
    if (!old) return -1;
    t->has_old = old != Py_None;
    Py_DECREF(old);
    if (t->has_old) return t_open(t, o);
    if (get_ll(o, s_width, &t->width) < 0 || get_ll(o, s_cap, &t->cap) < 0) return -1;
    return t_buffers(t);    /* used0 == used etc. (all 0): t_store writes nothing back */
}

/* write back the fields this call changed */
static int t_store(T *t)
{
    if (t->used != t->used0 && set_ll(t->o, s_used, t->used) < 0) return -1;
    if (t->cursor != t->cursor0 && set_ll(t->o, s_cursor, t->cursor) < 0) return -1;
    if (t->top != t->top0 && set_ll(t->o, s_top, t->top) < 0) return -1;
    if (t->free != t->free0 && set_ll(t->o, s_free, t->free) < 0) return -1;
    t->used0 = t->used, t->cursor0 = t->cursor, t->top0 = t->top, t->free0 = t->free;
    return 0;
}

static int t_close(T *t)
{
    int r = t->open ? t_store(t) : 0;
    t_release(t);
    return r;
}

/* a Python step of the table: fields written back before, everything read again after */
static PyObject *t_python(T *t, PyObject *meth, PyObject *a1, PyObject *a2)
{
    PyObject *r;
    if (t_store(t) < 0) return NULL;
    t_release(t);
    r = PyObject_CallMethodObjArgs(t->o, meth, a1, a2, NULL);
    if (!r) return NULL;
    if (t_fields(t) < 0 || t_buffers(t) < 0) { Py_DECREF(r); return NULL; }
    return r;
}

/* meth(h) or meth(h, b) -> a row (None: -1); -2 error */
static long long call_ll(T *t, PyObject *meth, uint64_t a, int two, long long b)
{
    PyObject *x = PyLong_FromUnsignedLongLong(a), *y = two ? PyLong_FromLongLong(b) : NULL, *r;
    long long v;
    if (!x || (two && !y)) { Py_XDECREF(x); Py_XDECREF(y); return -2; }
    r = t_python(t, meth, x, y);
    Py_DECREF(x);
    Py_XDECREF(y);
    if (!r) return -2;
    v = r == Py_None ? -1 : PyLong_AsLongLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred()) return -2;
    return v;
}

static int t_step(T *t, PyObject *meth, PyObject *arg)
{
    PyObject *g = t_python(t, meth, arg, NULL);
    if (!g) return -1;
    Py_DECREF(g);
    return 0;
}

static inline Py_ssize_t home(uint64_t h, long long cap)
{
    return (Py_ssize_t)(((h >> 32) * (uint64_t)cap) >> 32);
}
