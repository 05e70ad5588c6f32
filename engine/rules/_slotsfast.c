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
 *   count_at(table, key, when, now, window, limit, rows_limit, without) -> int
 *                                                                 MemoryCounters.count_at (_slotat.h)
 *   add_at(table, key, when, now)                                MemoryCounters.add_at (_slotat.h)
 *   find(table, h) / slot(table, h, now) -> row                  SlotTable.find / slot
 *   key_hash(key) -> int                                         keyhash.key_hash
 *   run_steps(plan, blocks, ctx, state) -> (hits, pending, memo) plan.run_steps (_planrun.h)
 *   rule_composite(...), rule_state(...) -> RuleFn                rule_fns.rule_fn's closures (_rulefn.h)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MIX 0x9E3779B97F4A7C15ULL

#include "_slotobj.h"

#include "_slottable.h"      /* the probe, sweep, free list and growth: t_find, t_slot */
#include "_planrun.h"        /* a rule plan's loop over its blocks: f_run_steps */
#include "_rulefn.h"         /* a rule's closure of the common shapes: RuleFn */

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

/* ------------------------------------------------------------------ counts at delivery */

#include "_slotat.h"

/* keyhash.key_hash(key): its compiled twin, for the Python paths that hash a key themselves (counters_at.py:
   an ad's count at delivery), the same value by construction (key_hash above, its fallback that function) */
static PyObject *f_key_hash(PyObject *self, PyObject *key)
{
    uint64_t h;
    if (key_hash(key, &h) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(h);
}

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
    {"cadd", (PyCFunction)(void (*)(void))f_cadd, METH_FASTCALL, NULL},
    {"count_at", (PyCFunction)(void (*)(void))f_count_at, METH_FASTCALL, NULL},
    {"add_at", (PyCFunction)(void (*)(void))f_add_at, METH_FASTCALL, NULL},
    {"find", (PyCFunction)(void (*)(void))f_find, METH_FASTCALL, NULL},
    {"slot", (PyCFunction)(void (*)(void))f_slot, METH_FASTCALL, NULL},
    {"key_hash", f_key_hash, METH_O, NULL},
    {"run_steps", (PyCFunction)(void (*)(void))f_run_steps, METH_FASTCALL, NULL},
    {"rule_composite", (PyCFunction)(void (*)(void))f_rule_composite, METH_FASTCALL, NULL},
    {"rule_state", (PyCFunction)(void (*)(void))f_rule_state, METH_FASTCALL, NULL},
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
    I(s_blank, "blank"); I(s_prefill, "prefill"); I(s_fns, "fns");
    I(s_evict, "_evict"); I(s_lengthen, "_lengthen"); I(s_more_rows, "_more_rows"); I(s_slot, "_slot_py");
#undef I
    if (!(str_sep = PyUnicode_InternFromString("; ")) || PyType_Ready(&RuleFnType) < 0) return NULL;
    return PyModule_Create(&module);
}
