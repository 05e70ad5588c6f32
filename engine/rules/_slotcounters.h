/* The counters' hot paths of engine.rules._slotsfast (MemoryCounters.count / add / distinct /
 * add_distinct of counters.py, whose _layout documents the rows). Included by _slotsfast.c, whose
 * table calls (t_open, t_close, the probe, the keys and values) these use. No I/O.
 */

#define SHORT_MAX (0xFFFF - 1)

static PyObject *f_count(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t;
    uint64_t h;
    long long nows, hz, limit, r, res;
    if (n != 6) { PyErr_SetString(PyExc_TypeError, "count(table, key, now, window, limit, short)"); return NULL; }
    if (key_hash(a[1], &h) < 0 || horizon_of(a[2], a[3], &nows, &hz) < 0) return NULL;
    limit = PyLong_AsLongLong(a[4]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    if (t_open_read(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_find(&t, h);
    if (r == -2) { t_release(&t); return NULL; }
    if (r < 0) res = 0;
    else {
        Py_ssize_t b = (Py_ssize_t)r * t.width;
        if (PyObject_IsTrue(a[5])) {
            long long x = hz - (long long)t.rows[b + 1] + 1;
            Py_ssize_t lo = 2 * b + 4;
            res = lo + limit - bisect16((uint16_t *)t.rows, x > 0 ? x : 0, lo, lo + limit);
        } else
            res = b + t.width - bisect32(t.rows, hz, b, b + t.width);
    }
    if (t_close(&t) < 0) return NULL;
    return PyLong_FromLongLong(res);
}

static void add_short(uint32_t *rows, Py_ssize_t b, long long limit, long long now, long long window)
{
    long long last = rows[b], base;
    uint16_t *st = (uint16_t *)rows;
    Py_ssize_t lo = 2 * b + 4;
    if (last == 0) rows[b + 1] = (uint32_t)now;
    if (now < last) now = last;
    base = rows[b + 1];
    if (now - base >= SHORT_MAX) {      /* rebase: stamps older than the window go */
        long long nb = now - window;
        for (Py_ssize_t j = lo; j < lo + limit; j++) {
            long long s = base + st[j] - 1;
            st[j] = (st[j] && s >= nb) ? (uint16_t)(s - nb + 1) : 0;
        }
        rows[b + 1] = (uint32_t)nb;
        base = nb;
    }
    if (limit > 1) memmove(st + lo, st + lo + 1, (size_t)(limit - 1) * 2);
    st[lo + limit - 1] = (uint16_t)(now - base + 1);
    rows[b] = (uint32_t)now;
}

static PyObject *f_add(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t;
    uint64_t h;
    long long nows, hz, limit, r;
    if (n != 6) { PyErr_SetString(PyExc_TypeError, "add(table, key, now, window, limit, short)"); return NULL; }
    if (key_hash(a[1], &h) < 0 || horizon_of(a[2], a[3], &nows, &hz) < 0) return NULL;
    limit = PyLong_AsLongLong(a[4]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    int is_short = PyObject_IsTrue(a[5]);
    long long window = 0;
    if (is_short) {
        double wd = PyFloat_AsDouble(a[3]);
        if (wd == -1.0 && PyErr_Occurred()) return NULL;
        window = (long long)wd;
    }
    if (t_open(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_slot(&t, h, nows);
    if (r == -2) { t_release(&t); return NULL; }
    Py_ssize_t b = (Py_ssize_t)r * t.width;
    if (is_short)
        add_short(t.rows, b, limit, nows, window);
    else {
        Py_ssize_t e = b + t.width - 1;
        long long last = t.rows[e];
        if (t.width > 1) memmove(t.rows + b, t.rows + b + 1, (size_t)(t.width - 1) * 4);
        t.rows[e] = (uint32_t)(nows > last ? nows : last);
    }
    if (t_close(&t) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *f_distinct(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t, f;
    uint64_t h;
    uint32_t v;
    long long nows, hz, k, r, res;
    if (n != 7) { PyErr_SetString(PyExc_TypeError, "distinct(table, first, key, value, now, window, k)"); return NULL; }
    if (key_hash(a[2], &h) < 0 || value_fp(a[3], &v) < 0 || horizon_of(a[4], a[5], &nows, &hz) < 0) return NULL;
    k = PyLong_AsLongLong(a[6]);
    if (k == -1 && PyErr_Occurred()) return NULL;
    if (t_open_read(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_find(&t, h);
    if (r == -2) { t_release(&t); return NULL; }
    if (r < 0) {
        if (t_close(&t) < 0) return NULL;
        if (t_open_read(&f, a[1]) < 0) { t_release(&f); return NULL; }
        r = t_find(&f, h);
        if (r == -2) { t_release(&f); return NULL; }
        res = 1;
        if (r >= 0 && (long long)f.rows[2 * r + 1] > hz && f.rows[2 * r] != v) res = 2;
        if (t_close(&f) < 0) return NULL;
        return PyLong_FromLongLong(res);
    }
    Py_ssize_t b = (Py_ssize_t)r * 2 * k;
    Py_ssize_t first = bisect32(t.rows, hz, b + k, b + 2 * k) - b - k;
    int absent = 1;
    for (Py_ssize_t j = b + first; j < b + k; j++)
        if (t.rows[j] == v) { absent = 0; break; }
    res = k - first + absent;
    if (t_close(&t) < 0) return NULL;
    return PyLong_FromLongLong(res);
}

static PyObject *f_add_distinct(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t, f;
    uint64_t h;
    uint32_t v;
    long long nows, hz, k, r;
    if (n != 7) { PyErr_SetString(PyExc_TypeError, "add_distinct(table, first, key, value, now, window, k)"); return NULL; }
    if (key_hash(a[2], &h) < 0 || value_fp(a[3], &v) < 0 || horizon_of(a[4], a[5], &nows, &hz) < 0) return NULL;
    k = PyLong_AsLongLong(a[6]);
    if (k == -1 && PyErr_Occurred()) return NULL;
    /* (now_s - window) as the side table's bound; the window one of add_distinct, not int(now) - window */
    long long fz = 0;
    if (a[5] != Py_None) {
        double wd = PyFloat_AsDouble(a[5]);
        if (wd == -1.0 && PyErr_Occurred()) return NULL;
        fz = (long long)floor((double)nows - wd);
    }
    if (t_open(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_find(&t, h);
    if (r == -2) { t_release(&t); return NULL; }
    if (r < 0) {
        long long fr;
        uint32_t old_v, old_t;
        if (t_close(&t) < 0) return NULL;
        if (t_open(&f, a[1]) < 0) { t_release(&f); return NULL; }
        fr = t_find(&f, h);
        if (fr == -2) { t_release(&f); return NULL; }
        if (fr < 0 || f.rows[2 * fr] == v || (long long)f.rows[2 * fr + 1] <= fz) {
            long long last;
            if (fr < 0) {
                fr = t_slot(&f, h, nows);
                if (fr == -2) { t_release(&f); return NULL; }
            }
            last = f.rows[2 * fr] == v ? f.rows[2 * fr + 1] : 0;
            f.rows[2 * fr] = v;
            f.rows[2 * fr + 1] = (uint32_t)(nows > last ? nows : last);
            if (t_close(&f) < 0) return NULL;
            Py_RETURN_NONE;
        }
        /* a second value: the key moves to a full row (SlotTable.discard: find moved it into
           the current index) */
        old_v = f.rows[2 * fr], old_t = f.rows[2 * fr + 1];
        t_discard(&f, h);
        if (t_close(&f) < 0) return NULL;
        if (t_open(&t, a[0]) < 0) { t_release(&t); return NULL; }
        r = t_slot(&t, h, nows);
        if (r == -2) { t_release(&t); return NULL; }
        Py_ssize_t b = (Py_ssize_t)r * 2 * k;
        t.rows[b + k - 1] = old_v;
        t.rows[b + 2 * k - 1] = old_t;
    }
    {
        uint32_t *vs = t.rows + (Py_ssize_t)r * 2 * k, *ts = vs + k;
        Py_ssize_t j = 0;
        for (Py_ssize_t q = 0; q < k; q++)
            if (vs[q] == v) { j = q; break; }
        /* seen again: move to the end; new: drop the least recent */
        memmove(vs + j, vs + j + 1, (size_t)(k - 1 - j) * 4);
        memmove(ts + j, ts + j + 1, (size_t)(k - 1 - j) * 4);
        long long last = ts[k - 2];     /* k = limit + 1 >= 2 */
        vs[k - 1] = v;
        ts[k - 1] = (uint32_t)(nows > last ? nows : last);
    }
    if (t_close(&t) < 0) return NULL;
    Py_RETURN_NONE;
}
