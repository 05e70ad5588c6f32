/* The counts at delivery of engine.rules._slotsfast: MemoryCounters.count_at / add_at of counters_at.py (its theory
 * of operation; rows of 2 * limit stamps in time order, 0 = none: counters.py _layout), the same steps on the same
 * rows. counters_at.py keeps the Python as the reference and the fallback; tests/test_counters_at_fast.py runs both
 * on the same operation sequences and compares every answer and every row. Included by _slotsfast.c. No I/O.
 *
 *   count_at(table, key, when, now, window, limit, rows_limit, without) -> int
 *   add_at(table, key, when, now)
 *
 * The space (its limit, a relimit, a layout again) is settled by the caller (AtDelivery._at_space): `table` is its
 * SlotTable, `rows_limit` its rows' limit (sp.limit). Times are compared as Python compares them: whole seconds
 * (int(when), int(now)) against `window` as a double (exact for the integral windows rules give; a fractional one
 * rounds as Python's int + float does). */

#define AT_STACK 64         /* stamps copied on the stack; a wider row (a limit over 32) takes the heap */

/* bisect_right over a row's stamps [lo, hi) for a double key (Python's `bisect_right(st, x - window)`) */
static inline Py_ssize_t bisect_ll(const long long *a, double x, Py_ssize_t lo, Py_ssize_t hi)
{
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (x < (double)a[mid]) hi = mid; else lo = mid + 1;
    }
    return lo;
}

static int as_double(PyObject *o, double *out)
{
    *out = PyFloat_AsDouble(o);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *f_count_at(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t;
    uint64_t h;
    double when, now, window = 0, without;
    long long limit, rows_limit, r, res, buf[AT_STACK], *st = buf;
    int has_window = 0;
    if (n != 8) {
        PyErr_SetString(PyExc_TypeError, "count_at(table, key, when, now, window, limit, rows_limit, without)");
        return NULL;
    }
    if (key_hash(a[1], &h) < 0 || as_double(a[2], &when) < 0 || as_double(a[3], &now) < 0
        || as_double(a[7], &without) < 0)
        return NULL;
    if (a[4] != Py_None) {
        if (as_double(a[4], &window) < 0) return NULL;
        has_window = 1;
    }
    limit = PyLong_AsLongLong(a[5]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    rows_limit = PyLong_AsLongLong(a[6]);
    if (rows_limit == -1 && PyErr_Occurred()) return NULL;
    if (t_open_read(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_find(&t, h);
    if (r == -2) { t_release(&t); return NULL; }
    if (r < 0) {
        if (t_close(&t) < 0) return NULL;
        return PyLong_FromLong(0);
    }
    Py_ssize_t w = (Py_ssize_t)t.width, b = (Py_ssize_t)r * w, m = 0;
    if (w > AT_STACK && !(st = PyMem_Malloc((size_t)w * sizeof(long long)))) {
        t_release(&t);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t j = b; j < b + w; j++)          /* st = [x for x in row if x] */
        if (t.rows[j]) st[m++] = t.rows[j];
    if (t_close(&t) < 0) { if (st != buf) PyMem_Free(st); return NULL; }
    long long oldest = m >= w ? st[0] : 0;          /* a full row's (the room is the row's) */
    if (without != 0)                               /* st.remove(without): its first */
        for (Py_ssize_t j = 0; j < m; j++)
            if ((double)st[j] == without) {
                memmove(st + j, st + j + 1, (size_t)(m - 1 - j) * sizeof(long long));
                m--;
                break;
            }
    if (!has_window)
        res = m;
    else if (oldest && (double)oldest > (double)(long long)now - window)
        res = limit > rows_limit ? limit : rows_limit;
    else {
        long long d = (long long)when;
        double end = (double)d + window;
        res = 0;
        /* the windows ending at `when` and at each stamp within a window after it */
        for (Py_ssize_t k = -1; k < m; k++) {
            long long x = k < 0 ? d : st[k];
            if (k >= 0 && !(d < x && (double)x < end)) continue;
            long long c = bisect_ll(st, (double)x, 0, m) - bisect_ll(st, (double)x - window, 0, m);
            if (c > res) res = c;
        }
    }
    if (st != buf) PyMem_Free(st);
    return PyLong_FromLongLong(res);
}

static PyObject *f_add_at(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t;
    uint64_t h;
    double when, now;
    long long r;
    if (n != 4) { PyErr_SetString(PyExc_TypeError, "add_at(table, key, when, now)"); return NULL; }
    if (key_hash(a[1], &h) < 0 || as_double(a[2], &when) < 0 || as_double(a[3], &now) < 0) return NULL;
    if (t_open(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_slot(&t, h, (long long)now);
    if (r == -2) { t_release(&t); return NULL; }
    Py_ssize_t w = (Py_ssize_t)t.width, b = (Py_ssize_t)r * w;
    long long s = (long long)when;
    /* in place: the stamps up to its place move one word towards the row's start over the oldest */
    Py_ssize_t j = bisect32(t.rows, s, b + 1, b + w);
    memmove(t.rows + b, t.rows + b + 1, (size_t)(j - 1 - b) * 4);
    if (s < 0 || s > 0xFFFFFFFFLL) {                /* as the rows' memoryview refuses it, the row moved already */
        t_close(&t);
        PyErr_SetString(PyExc_ValueError, "memoryview: invalid value for format 'I'");
        return NULL;
    }
    t.rows[j - 1] = (uint32_t)s;
    if (t_close(&t) < 0) return NULL;
    Py_RETURN_NONE;
}
