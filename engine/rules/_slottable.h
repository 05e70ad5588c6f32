/* The slot table itself for engine.rules._slotsfast (slots.py SlotTable, included once, by _slotsfast.c
 * after _slotobj.h): the probe of the open-addressing index (find, slot), the backward-shift delete, the
 * sweep of expired rows (SWEEP slots a call), the free list of rows, and a growth under way (_Old: its
 * entries pulled on demand and migrated a step a call). The same steps in the same order as slots.py and
 * slotgrowth.py; the rare ones (growing, lengthening the index, more rows, eviction) call the table's
 * Python methods through t_step / call_ll. No I/O.
 */

#define SWEEP 2

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
