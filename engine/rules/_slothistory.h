/* The recipient history's hot paths of engine.rules._slotsfast (RecipientHistory.share / add of
 * history.py, which documents the row). Included by _slotsfast.c, whose table calls (t_open,
 * t_close, the probe, the keys) these use. No I/O.
 */

#define NB 12
#define GEN_WORDS 4
#define GEN_FILL 12
#define H_BUCKET 1
#define H_BLOOM 2
#define H_BUCKETS 3
#define H_FILTER (H_BUCKETS + NB)

/* Python's float floor division (floatobject.c _float_div_mod) */
static double py_floordiv(double vx, double wx)
{
    double mod = fmod(vx, wx), div = (vx - mod) / wx, fl;
    if (mod && ((wx < 0) != (mod < 0))) div -= 1.0;
    if (div) {
        fl = floor(div);
        if (div - fl > 0.5) fl += 1.0;
    } else
        fl = copysign(0.0, vx / wx);
    return fl;
}

static inline long long pymod(long long x, long long m) { long long r = x % m; return r < 0 ? r + m : r; }

static int seen(const uint32_t *rows, Py_ssize_t b, uint32_t fp)
{
    unsigned p0 = fp & 127, p1 = (fp >> 7) & 127, p2 = (fp >> 14) & 127;
    for (int gen = 0; gen < 2; gen++) {
        const uint32_t *g = rows + b + H_FILTER + gen * GEN_WORDS;
        if ((g[p0 >> 5] >> (p0 & 31) & 1) && (g[p1 >> 5] >> (p1 & 31) & 1) && (g[p2 >> 5] >> (p2 & 31) & 1))
            return 1;
    }
    return 0;
}

static int bucket_of(PyObject *now, PyObject *window, long long *cur, long long *nows)
{
    double n = PyFloat_AsDouble(now), w;
    if (n == -1.0 && PyErr_Occurred()) return -1;
    w = PyFloat_AsDouble(window);
    if (w == -1.0 && PyErr_Occurred()) return -1;
    *cur = (long long)py_floordiv(n, w / NB);
    *nows = (long long)n;
    return 0;
}

static PyObject *f_share(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t;
    uint64_t h;
    uint32_t fp;
    long long cur, nows, r, cnt = 0, nw = 0;
    if (n != 5) { PyErr_SetString(PyExc_TypeError, "share(table, sender, recipient, now, window)"); return NULL; }
    if (key_hash(a[1], &h) < 0 || bucket_of(a[3], a[4], &cur, &nows) < 0) return NULL;
    if (t_open_read(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_find(&t, h);
    if (r == -2) { t_release(&t); return NULL; }
    if (r < 0) {
        if (t_close(&t) < 0) return NULL;
        return Py_BuildValue("(id)", 1, 1.0);
    }
    Py_ssize_t b = (Py_ssize_t)r * t.width;
    long long last = t.rows[b + H_BUCKET];
    for (long long x = (cur > last ? cur : last) - NB + 1; x <= last; x++) {
        uint32_t v = t.rows[b + H_BUCKETS + pymod(x, NB)];
        cnt += v & 0xFFFF;
        nw += v >> 16;
    }
    if (value_fp(a[2], &fp) < 0) { t_release(&t); return NULL; }
    cnt += 1;
    nw += !seen(t.rows, b, fp);
    if (t_close(&t) < 0) return NULL;
    return Py_BuildValue("(Ld)", cnt, (double)nw / (double)cnt);
}

static PyObject *f_hadd(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t;
    uint64_t h;
    uint32_t fp;
    long long cur, nows, r;
    if (n != 5) { PyErr_SetString(PyExc_TypeError, "hadd(table, sender, recipient, now, window)"); return NULL; }
    if (key_hash(a[1], &h) < 0 || bucket_of(a[3], a[4], &cur, &nows) < 0) return NULL;
    if (value_fp(a[2], &fp) < 0) return NULL;
    if (t_open(&t, a[0]) < 0) { t_release(&t); return NULL; }
    r = t_slot(&t, h, nows);
    if (r == -2) { t_release(&t); return NULL; }
    uint32_t *row = t.rows + (Py_ssize_t)r * t.width;
    long long last = row[H_BUCKET];
    if (row[0] == 0) {
        last = cur;
        row[H_BUCKET] = (uint32_t)cur;
    } else if (cur > last) {
        long long x0 = last + 1 > cur - NB + 1 ? last + 1 : cur - NB + 1;
        for (long long x = x0; x <= cur; x++) row[H_BUCKETS + pymod(x, NB)] = 0;
        last = cur;
        row[H_BUCKET] = (uint32_t)cur;
    }
    int isnew = !seen(row, 0, fp);
    uint32_t *q = row + H_BUCKETS + pymod(last, NB);
    uint32_t v = *q;
    if ((v & 0xFFFF) < 0xFFFF && (v >> 16) < 0xFFFF) *q = v + 1 + ((uint32_t)isnew << 16);
    if (isnew) {
        uint32_t st = row[H_BLOOM], gen = st >> 16, fill = st & 0xFFFF;
        uint32_t *g = row + H_FILTER + gen * GEN_WORDS;
        unsigned p = fp & 127;
        g[p >> 5] |= 1u << (p & 31);
        p = (fp >> 7) & 127;
        g[p >> 5] |= 1u << (p & 31);
        p = (fp >> 14) & 127;
        g[p >> 5] |= 1u << (p & 31);
        fill += 1;
        if (fill >= GEN_FILL) {         /* start the other generation afresh */
            gen ^= 1;
            memset(row + H_FILTER + gen * GEN_WORDS, 0, GEN_WORDS * 4);
            fill = 0;
        }
        row[H_BLOOM] = gen << 16 | fill;
    }
    if (nows > (long long)row[0]) row[0] = (uint32_t)nows;
    if (t_close(&t) < 0) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ call durations */

#define CALLS 32                        /* history.py _CALLS: a row is CALLS end seconds, then CALLS durations (ms) */

/* Python's round(x) of a float: the nearest integer, halves to even (floatobject.c double_round, ndigits None) */
static double py_round(double x)
{
    double r = round(x);
    if (fabs(x - r) == 0.5) r = 2.0 * round(x / 2.0);
    return r;
}

/* CallDurations.add(caller, ts, duration) of history.py for the values it stores as they are: `ts` a float or int in
 * [0, 2^32) and `duration` a finite float; True when done. False, nothing touched: the Python path adds it (and
 * raises what it raises: a NaN duration, an end second a row cannot hold) */
static PyObject *f_cadd(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    T t;
    uint64_t h;
    long long end, r;
    if (n != 4) { PyErr_SetString(PyExc_TypeError, "cadd(table, caller, ts, duration)"); return NULL; }
    if (PyFloat_CheckExact(a[2])) {
        double ts = PyFloat_AS_DOUBLE(a[2]);
        if (!(ts >= 0.0 && ts < 4294967296.0)) Py_RETURN_FALSE;
        end = (long long)ts;            /* int(ts): toward zero */
    } else if (PyLong_CheckExact(a[2])) {
        int over;
        end = PyLong_AsLongLongAndOverflow(a[2], &over);
        if (end == -1 && PyErr_Occurred()) return NULL;
        if (over || end < 0 || end > 0xFFFFFFFFLL) Py_RETURN_FALSE;
    } else
        Py_RETURN_FALSE;
    if (!PyFloat_CheckExact(a[3])) Py_RETURN_FALSE;
    double ms = PyFloat_AS_DOUBLE(a[3]) * 1000;     /* duration * 1000 */
    if (!isfinite(ms)) Py_RETURN_FALSE;
    ms = py_round(ms);                              /* min(0xFFFFFFFF, max(0, int(round(...)))) */
    uint32_t msw = ms <= 0.0 ? 0 : ms >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)ms;
    if (key_hash(a[1], &h) < 0) return NULL;
    if (t_open(&t, a[0]) < 0) { t_release(&t); return NULL; }
    if (t.width != 2 * CALLS) {                     /* (a table of another row: not CallDurations') */
        if (t_close(&t) < 0) return NULL;
        Py_RETURN_FALSE;
    }
    r = t_slot(&t, h, end);
    if (r == -2) { t_release(&t); return NULL; }
    uint32_t *row = t.rows + (Py_ssize_t)r * t.width, last = row[CALLS - 1];
    memmove(row, row + 1, (CALLS - 1) * sizeof *row);
    row[CALLS - 1] = (uint32_t)end > last ? (uint32_t)end : last;
    memmove(row + CALLS, row + CALLS + 1, (CALLS - 1) * sizeof *row);
    row[2 * CALLS - 1] = msw;
    if (t_close(&t) < 0) return NULL;
    Py_RETURN_TRUE;
}
