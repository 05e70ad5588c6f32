/* engine.rules._slotsfast: the compiled twin of the state tables' hot paths (optional).
 *
 * slots.py, counters.py and history.py keep the pure-Python reference, used when this module is
 * absent or TELFILTER_TABLES_PURE=1; tests/test_slots_fast.py runs both on the same operation
 * sequences (growth, expiry, eviction, dump/load) and compares every answer and every dump.
 *
 * Theory of operation: every function takes the SlotTable object itself and reads its fields
 * (cap, used, cursor, top, free, the index arrays h and ix, the rows) at the start of a call,
 * writes back the ones it changed at the end, and does the probe, the sweep, the backward shift,
 * the free list and the row update on the raw arrays in between. The rare steps (a growth
 * starting, an index growing its tail, the rows' reservation running out, an eviction at
 * max_keys) call the table's own Python methods, with the fields written back before and read
 * again after, so the two implementations take exactly the same steps in the same order and
 * leave byte-identical tables. Row layouts are documented where they are defined (counters.py
 * _layout, history.py RecipientHistory).
 *
 *   count(table, key, now, window, limit, short) -> int          MemoryCounters.count
 *   add(table, key, now, window, limit, short)                   MemoryCounters.add
 *   distinct(table, first, key, value, now, window, k) -> int    MemoryCounters.distinct
 *   add_distinct(table, first, key, value, now, window, k)       MemoryCounters.add_distinct
 *   share(table, sender, recipient, now, window) -> (n, share)   RecipientHistory.share
 *   hadd(table, sender, recipient, now, window)                  RecipientHistory.add
 *   find(table, h) / slot(table, h, now) -> row                  SlotTable.find / slot
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MIX 0x9E3779B97F4A7C15ULL
#define SWEEP 2

#include "_slotobj.h"

/* ------------------------------------------------------------------ the table */

static void free_row(T *t, uint32_t r)
{
    t->rows[(Py_ssize_t)r * t->width] = (uint32_t)t->free;
    t->free = (long long)r + 1;
}

/* _backshift: empty slot i of an index, moving later entries of its cluster back */
static void backshift(uint32_t *ix, const uint64_t *hk, long long cap, Py_ssize_t i)
{
    Py_ssize_t j = i + 1;
    for (;;) {
        uint32_t e = ix[j];
        if (!e) break;
        if (home(hk[e - 1], cap) <= i) {
            ix[i] = e;
            i = j;
        }
        j++;
    }
    ix[i] = 0;
}

/* ------------------------------------------------------------------ a growth under way (_Old) */

typedef struct {
    PyObject *o;
    Py_buffer ib;
    uint32_t *ix;
    long long cap, left, cursor, step, released;
} O;

static int o_open(O *o, T *t)
{
    memset(o, 0, sizeof(*o));
    o->o = attr(t->o, s_old);
    if (!o->o) return -1;
    if (get_ll(o->o, s_cap, &o->cap) < 0 || get_ll(o->o, s_left, &o->left) < 0
        || get_ll(o->o, s_cursor, &o->cursor) < 0 || get_ll(o->o, s_step, &o->step) < 0
        || get_ll(o->o, s_released, &o->released) < 0 || get_buf(o->o, s_ix, &o->ib) < 0) {
        Py_CLEAR(o->o);
        return -1;
    }
    o->ix = (uint32_t *)o->ib.buf;
    return 0;
}

static void o_release(O *o)
{
    if (o->o) {
        PyBuffer_Release(&o->ib);
        Py_CLEAR(o->o);
    }
}

/* SlotTable._pull: the entry of h moved from the previous index into the current one; its row,
   -1 absent, -2 error */
static long long t_pull(T *t, uint64_t h)
{
    O o;
    uint32_t e;
    if (o_open(&o, t) < 0) return -2;
    Py_ssize_t j = home(h, o.cap);
    if (j >= o.cursor) { o_release(&o); return -1; }
    for (;;) {
        e = o.ix[j];
        if (!e) { o_release(&o); return -1; }
        if (t->hk[e - 1] == h) break;
        j++;
    }
    Py_ssize_t i = home(h, t->cap);     /* _put */
    while (t->ix[i]) i++;
    if (i >= t->nslots - 1 && t_step(t, s_lengthen, NULL) < 0) { o_release(&o); return -2; }
    t->ix[i] = e;
    t->used++;
    backshift(o.ix, t->hk, o.cap, j);
    int err = set_ll(o.o, s_left, o.left - 1);
    o_release(&o);
    if (err < 0) return -2;
    t->old_left--;
    return (long long)e - 1;
}

/* SlotTable._migrate(now) with the growth's own step */
static int t_migrate(T *t, long long now)
{
    O o;
    long long horizon = t->has_keep ? now - t->keep : -1, w = t->width, tc = t->touch, moved = 0, seen = 0;
    if (o_open(&o, t) < 0) return -1;
    Py_ssize_t c = (Py_ssize_t)o.cursor, stop = c - (Py_ssize_t)o.step, last = t->nslots - 1;
    while (c > 0 && (c > stop || o.ix[c - 1])) {
        c--;
        uint32_t e = o.ix[c];
        if (e) {
            seen++;
            if ((long long)t->rows[(Py_ssize_t)(e - 1) * w + tc] > horizon) {
                Py_ssize_t i = home(t->hk[e - 1], t->cap);
                while (t->ix[i]) i++;
                if (i >= last) {
                    if (t_step(t, s_lengthen, NULL) < 0) { o_release(&o); return -1; }
                    last = t->nslots - 1;
                }
                t->ix[i] = e;
                moved++;
            } else
                free_row(t, e - 1);
        }
    }
    t->used += moved;
    t->old_left -= seen;
    if (set_ll(o.o, s_left, o.left - seen) < 0 || set_ll(o.o, s_cursor, c) < 0) { o_release(&o); return -1; }
    long long released = o.released;
    o_release(&o);
    if (c == 0) {
        if (set_attr(t->o, s_old, Py_None) < 0) return -1;
        t->has_old = 0;
        t->old_left = 0;
    } else if (released - c > (1 << 14)) {      /* slotgrowth.py _CUT */
        PyObject *cc = PyLong_FromSsize_t(c);
        if (!cc) return -1;
        int r = t_step(t, s_give_back, cc);
        Py_DECREF(cc);
        if (r < 0) return -1;
    }
    return 0;
}

/* SlotTable.find: row of h, -1 absent, -2 error */
static long long t_find(T *t, uint64_t h)
{
    Py_ssize_t i = home(h, t->cap);
    for (;;) {
        uint32_t e = t->ix[i];
        if (!e) return t->has_old ? t_pull(t, h) : -1;
        if (t->hk[e - 1] == h) return (long long)e - 1;
        i++;
    }
}

static void t_delete(T *t, Py_ssize_t i)
{
    free_row(t, t->ix[i] - 1);
    backshift(t->ix, t->hk, t->cap, i);
    t->used--;
}

/* the key of hash h out of the current index (SlotTable.discard) */
static void t_discard(T *t, uint64_t h)
{
    Py_ssize_t i = home(h, t->cap);
    while (t->ix[i]) {
        if (t->hk[t->ix[i] - 1] == h) { t_delete(t, i); return; }
        i++;
    }
}

static int t_sweep(T *t, long long now)
{
    long long horizon = now - t->keep;
    Py_ssize_t n = t->nslots - 1, c = (Py_ssize_t)t->cursor;
    int moved = 0;
    for (int k = 0; k < SWEEP; k++) {
        uint32_t e = t->ix[c];
        if (e && (long long)t->rows[(Py_ssize_t)(e - 1) * t->width + t->touch] <= horizon) {
            t_delete(t, c);
            moved = 1;
        }
        c = c + 1 < n ? c + 1 : 0;
    }
    t->cursor = c;
    return moved;
}

static inline void zero_row(T *t, long long r)
{
    memset(t->rows + r * t->width, 0, (size_t)t->width * 4);
}

/* SlotTable.slot: the same steps as slots.py, in the same order; -2 error */
static long long t_slot(T *t, uint64_t h, long long now)
{
    long long horizon = t->has_keep ? now - t->keep : -1, r;
    long long w = t->width, tc = t->touch;
    Py_ssize_t i = home(h, t->cap), dead = -1;
    for (;;) {
        uint32_t e = t->ix[i];
        if (!e) break;
        if (t->hk[e - 1] == h) return (long long)e - 1;
        if (dead < 0 && (long long)t->rows[(Py_ssize_t)(e - 1) * w + tc] <= horizon) dead = i;
        i++;
    }
    if (t->has_old) {
        r = t_pull(t, h);
        if (r == -2 || t_migrate(t, now) < 0) return -2;   /* a few more of the previous entries */
        if (r >= 0) return r;
        if (dead < 0 && t->ix[i])       /* the migration filled the empty slot the probe ended at */
            return t_slot(t, h, now);
    } else if (t->has_keep && t_sweep(t, now)) {
        i = home(h, t->cap);
        dead = -1;
        while (t->ix[i]) {
            if ((long long)t->rows[(Py_ssize_t)(t->ix[i] - 1) * w + tc] <= horizon) { dead = i; break; }
            i++;
        }
    }
    if (dead >= 0) {
        r = (long long)t->ix[dead] - 1;
        t->hk[r] = h;
        zero_row(t, r);
        return r;
    }
    if (t->used + t->old_left >= t->max_keys)
        return call_ll(t, s_evict, h, 1, now);
    if ((double)t->used >= 0.8 * (double)t->cap) {
        PyObject *nw = PyLong_FromLongLong(now);
        if (!nw) return -2;
        int g = t_step(t, s_grow, nw);
        Py_DECREF(nw);
        if (g < 0) return -2;
        return call_ll(t, s_slot, h, 1, now);
    }
    if (i >= t->nslots - 1 && t_step(t, s_lengthen, NULL) < 0) return -2;
    if (t->free) {                      /* _new_row */
        r = t->free - 1;
        t->free = t->rows[r * w];
        zero_row(t, r);
    } else {
        r = t->top;
        if (r >= t->nrows && t_step(t, s_more_rows, NULL) < 0) return -2;
        if (r >= t->nrows) {            /* _more_rows must have made room: never write past the rows */
            PyErr_SetString(PyExc_MemoryError, "slot table: no room for another row");
            return -2;
        }
        t->top = r + 1;
    }
    t->hk[r] = h;
    t->ix[i] = (uint32_t)(r + 1);
    t->used++;
    return r;
}

/* ------------------------------------------------------------------ keys and values */

/* keyhash.stable_hash of a tuple of ints and strings whose strings are all in keyhash's digest
   cache (_STR_HASHES): hash() of the tuple with each string replaced by its digest, as
   stable_hash computes it, without its Python calls (an advertiser-recipient key is
   ("o:shop abc", 84912345678), read and written for every registered ad). 1: done, 0: take
   the Python path (another element type, a string not cached yet, a longer tuple), -1: error. */
#define TUPLE_MAX 8
static int tuple_hash(PyObject *key, uint64_t *out)
{
    Py_ssize_t n = PyTuple_GET_SIZE(key), i;
    PyObject *t;
    Py_hash_t hv;
    if (n > TUPLE_MAX || !str_hashes) return 0;
    t = PyTuple_New(n);
    if (!t) return -1;
    for (i = 0; i < n; i++) {
        PyObject *e = PyTuple_GET_ITEM(key, i);
        if (PyUnicode_CheckExact(e)) {
            e = PyDict_GetItemWithError(str_hashes, e);     /* borrowed */
            if (!e) { Py_DECREF(t); return PyErr_Occurred() ? -1 : 0; }
        } else if (!PyLong_CheckExact(e)) {
            Py_DECREF(t);
            return 0;
        }
        Py_INCREF(e);
        PyTuple_SET_ITEM(t, i, e);
    }
    hv = PyObject_Hash(t);
    Py_DECREF(t);
    if (hv == -1 && PyErr_Occurred()) return -1;
    *out = (uint64_t)hv;                /* hash(...) & M64: two's complement */
    return 1;
}

static int key_hash(PyObject *key, uint64_t *out)
{
    if (PyLong_CheckExact(key)) {
        uint64_t x = PyLong_AsUnsignedLongLongMask(key);
        if (x == (uint64_t)-1 && PyErr_Occurred()) return -1;
        x *= MIX;
        *out = x ? x : 1;
        return 0;
    }
    if (PyTuple_CheckExact(key)) {
        uint64_t x;
        int r = tuple_hash(key, &x);
        if (r < 0) return -1;
        if (r) {
            x *= MIX;
            *out = x ? x : 1;
            return 0;
        }
    }
    PyObject *r = PyObject_CallOneArg(py_key_hash, key);
    if (!r) return -1;
    *out = PyLong_AsUnsignedLongLongMask(r);
    Py_DECREF(r);
    return (*out == (uint64_t)-1 && PyErr_Occurred()) ? -1 : 0;
}

static int value_fp(PyObject *v, uint32_t *out)
{
    if (PyLong_CheckExact(v)) {
        uint64_t x = PyLong_AsUnsignedLongLongMask(v);
        if (x == (uint64_t)-1 && PyErr_Occurred()) return -1;
        uint32_t f = (uint32_t)((x * MIX) >> 32);
        *out = f ? f : 1;
        return 0;
    }
    PyObject *r = PyObject_CallOneArg(py_value_fp, v);
    if (!r) return -1;
    *out = (uint32_t)PyLong_AsUnsignedLongLongMask(r);
    Py_DECREF(r);
    return PyErr_Occurred() ? -1 : 0;
}

/* int(now) - window (None: 0), as an integer bound: a stamp x is within the window when
   x > bound (x > a float bound exactly when x > its floor) */
static int horizon_of(PyObject *now, PyObject *window, long long *nows, long long *hz)
{
    double n = PyFloat_AsDouble(now);
    if (n == -1.0 && PyErr_Occurred()) return -1;
    *nows = (long long)n;
    if (window == Py_None) { *hz = 0; return 0; }
    double w = PyFloat_AsDouble(window);
    if (w == -1.0 && PyErr_Occurred()) return -1;
    *hz = (long long)floor((double)*nows - w);
    return 0;
}

/* bisect_right over uint32 words [lo, hi) for x */
static inline Py_ssize_t bisect32(const uint32_t *a, long long x, Py_ssize_t lo, Py_ssize_t hi)
{
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (x < (long long)a[mid]) hi = mid; else lo = mid + 1;
    }
    return lo;
}

static inline Py_ssize_t bisect16(const uint16_t *a, long long x, Py_ssize_t lo, Py_ssize_t hi)
{
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (x < (long long)a[mid]) hi = mid; else lo = mid + 1;
    }
    return lo;
}

/* ------------------------------------------------------------------ counters */

#include "_slotcounters.h"

/* ------------------------------------------------------------------ recipient history */

#include "_slothistory.h"

/* ------------------------------------------------------------------ the table's own calls */

static PyObject *f_find(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t;
    long long r;
    if (n != 2) { PyErr_SetString(PyExc_TypeError, "find(table, h)"); return NULL; }
    uint64_t h = PyLong_AsUnsignedLongLongMask(a[1]);
    if (PyErr_Occurred()) return NULL;
    if (t_open(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_find(&t, h);
    if (r == -2) { t_release(&t); return NULL; }
    if (t_close(&t) < 0) return NULL;
    return PyLong_FromLongLong(r);
}

static PyObject *f_slot(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t;
    long long r, now;
    if (n != 3) { PyErr_SetString(PyExc_TypeError, "slot(table, h, now)"); return NULL; }
    uint64_t h = PyLong_AsUnsignedLongLongMask(a[1]);
    if (PyErr_Occurred()) return NULL;
    now = PyLong_AsLongLong(a[2]);
    if (now == -1 && PyErr_Occurred()) return NULL;
    if (t_open(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_slot(&t, h, now);
    if (r == -2) { t_release(&t); return NULL; }
    if (t_close(&t) < 0) return NULL;
    return PyLong_FromLongLong(r);
}

static PyMethodDef methods[] = {
    {"count", (PyCFunction)(void (*)(void))f_count, METH_FASTCALL, NULL},
    {"add", (PyCFunction)(void (*)(void))f_add, METH_FASTCALL, NULL},
    {"distinct", (PyCFunction)(void (*)(void))f_distinct, METH_FASTCALL, NULL},
    {"add_distinct", (PyCFunction)(void (*)(void))f_add_distinct, METH_FASTCALL, NULL},
    {"share", (PyCFunction)(void (*)(void))f_share, METH_FASTCALL, NULL},
    {"hadd", (PyCFunction)(void (*)(void))f_hadd, METH_FASTCALL, NULL},
    {"find", (PyCFunction)(void (*)(void))f_find, METH_FASTCALL, NULL},
    {"slot", (PyCFunction)(void (*)(void))f_slot, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_slotsfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__slotsfast(void)
{
    PyObject *kh = PyImport_ImportModule("engine.rules.keyhash");
    if (!kh) return NULL;
    py_key_hash = PyObject_GetAttrString(kh, "key_hash");
    py_value_fp = PyObject_GetAttrString(kh, "value_fp");
    str_hashes = PyObject_GetAttrString(kh, "_STR_HASHES");     /* cleared in place, never replaced */
    Py_DECREF(kh);
    if (!py_key_hash || !py_value_fp || !str_hashes) return NULL;
    if (!PyDict_CheckExact(str_hashes)) { Py_CLEAR(str_hashes); }
#define I(v, s) if (!(v = PyUnicode_InternFromString(s))) return NULL
    I(fname[s_hk], "hk"); I(fname[s_ix], "ix"); I(fname[s_rows], "rows"); I(fname[s_cap], "cap");
    I(fname[s_used], "used"); I(fname[s_cursor], "cursor"); I(fname[s_top], "top"); I(fname[s_free], "free");
    I(fname[s_old], "_old"); I(fname[s_width], "width"); I(fname[s_touch], "touch"); I(fname[s_keep], "keep");
    I(fname[s_max_keys], "max_keys"); I(fname[s_left], "left"); I(fname[s_step], "step");
    I(fname[s_released], "released"); I(s_pull, "_pull"); I(s_grow, "_grow"); I(s_give_back, "_give_back");
    I(s_evict, "_evict"); I(s_lengthen, "_lengthen"); I(s_more_rows, "_more_rows"); I(s_slot, "_slot_py");
#undef I
    return PyModule_Create(&module);
}
