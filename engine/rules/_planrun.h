/* run_steps(plan, blocks, ctx, state) -> (hits, pending, memo): rules/plan.py's run_steps, the loop over a
 * scope's guarded blocks, in C (included by _slotsfast.c). The rules' closures are called exactly as the
 * Python loop calls them, in the same order with the same arguments; only the loop's own bytecode (~450
 * instructions of the interpreter's a message for the shipped pack's sms-mt plan) is gone. plan.py keeps
 * the Python loop as the reference and the fallback; tests/test_plan_run_fast.py compares the two.
 *
 *   m = plan.blank.copy(); plan.prefill(ctx, m) when set; for (g, block) in blocks: a guard slot g >= 0
 *   whose memo is UNKNOWN is filled by fns[g](ctx, state, m, pending) and a false (None) one skips the
 *   block; each (rule, j, fn, direct) of a block fills an UNKNOWN slot j by fn(ctx, state) when `direct`,
 *   else fn(ctx, state, m, pending), and a true slot of a reported rule (rule not None) is a hit (rule, e). */

static PyObject *plan_unknown;          /* rule_fns.UNKNOWN, read at the first call (no import cycle) */
static PyObject *s_blank, *s_prefill, *s_fns;

/* rule_fns.UNKNOWN, a new reference */
static PyObject *unknown_object(void)
{
    PyObject *mod = PyImport_ImportModule("engine.rules.rule_fns"), *u;
    if (!mod) return NULL;
    u = PyObject_GetAttrString(mod, "UNKNOWN");
    Py_DECREF(mod);
    return u;
}

/* m[i] of the memo list (a negative i from its end, as Python indexes), borrowed; NULL with IndexError */
static PyObject *memo_at(PyObject *m, Py_ssize_t i)
{
    Py_ssize_t n = PyList_GET_SIZE(m);
    if (i < 0) i += n;
    if (i < 0 || i >= n) { PyErr_SetString(PyExc_IndexError, "list index out of range"); return NULL; }
    return PyList_GET_ITEM(m, i);
}

/* m[i] = v (v borrowed: a reference is taken); -1 with IndexError */
static int memo_set(PyObject *m, Py_ssize_t i, PyObject *v)
{
    Py_ssize_t n = PyList_GET_SIZE(m);
    if (i < 0) i += n;
    if (i < 0 || i >= n) { PyErr_SetString(PyExc_IndexError, "list assignment index out of range"); return -1; }
    Py_INCREF(v);
    PyObject *old = PyList_GET_ITEM(m, i);
    PyList_SET_ITEM(m, i, v);
    Py_DECREF(old);
    return 0;
}

/* fns[i] (any sequence, as Python indexes it), a new reference */
static PyObject *fn_at(PyObject *fns, Py_ssize_t i)
{
    if (PyList_CheckExact(fns)) {
        Py_ssize_t n = PyList_GET_SIZE(fns);
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
            PyObject *f = PyList_GET_ITEM(fns, i);
            Py_INCREF(f);
            return f;
        }
    }
    return PySequence_GetItem(fns, i);
}

/* the items of a block or a step: a tuple of `want` items (as the plan builds them), else any sequence
 * unpacked as Python would (ValueError on another length); a new reference to a tuple or list */
static PyObject *unpacked(PyObject *o, Py_ssize_t want)
{
    PyObject *s = PySequence_Fast(o, "cannot unpack non-iterable object");
    if (s && PySequence_Fast_GET_SIZE(s) != want) {
        PyErr_Format(PyExc_ValueError, "expected %zd values to unpack, got %zd", want, PySequence_Fast_GET_SIZE(s));
        Py_CLEAR(s);
    }
    return s;
}

static PyObject *f_run_steps(PyObject *self, PyObject *const *a, Py_ssize_t na)
{
    if (na != 4) { PyErr_SetString(PyExc_TypeError, "run_steps(plan, blocks, ctx, state)"); return NULL; }
    if (!plan_unknown && !(plan_unknown = unknown_object())) return NULL;
    PyObject *ctx = a[2], *state = a[3], *unknown = plan_unknown;
    PyObject *m = NULL, *fns = NULL, *pending = NULL, *hits = NULL, *bl = NULL, *blank, *prefill, *r;
    blank = PyObject_GetAttr(a[0], s_blank);
    if (!blank) return NULL;
    m = PyList_CheckExact(blank) ? PyList_GetSlice(blank, 0, PyList_GET_SIZE(blank))
                                 : PyObject_CallMethod(blank, "copy", NULL);
    Py_DECREF(blank);
    if (!m) return NULL;
    if (!PyList_CheckExact(m)) { PyErr_SetString(PyExc_TypeError, "plan.blank.copy() is not a list"); goto fail; }
    prefill = PyObject_GetAttr(a[0], s_prefill);
    if (!prefill) goto fail;
    if (prefill != Py_None) {
        PyObject *args[2] = {ctx, m};
        r = PyObject_Vectorcall(prefill, args, 2, NULL);
        Py_DECREF(prefill);
        if (!r) goto fail;
        Py_DECREF(r);
    } else {
        Py_DECREF(prefill);
    }
    if (!(fns = PyObject_GetAttr(a[0], s_fns)) || !(pending = PyList_New(0)) || !(hits = PyList_New(0)))
        goto fail;
    if (!(bl = PySequence_Fast(a[1], "blocks must be iterable"))) goto fail;
    PyObject *call4[4] = {ctx, state, m, pending};
    for (Py_ssize_t b = 0; b < PySequence_Fast_GET_SIZE(bl); b++) {
        PyObject *blk = unpacked(PySequence_Fast_GET_ITEM(bl, b), 2);
        if (!blk) goto fail;
        Py_ssize_t g = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(blk, 0));
        if (g == -1 && PyErr_Occurred()) { Py_DECREF(blk); goto fail; }
        if (g >= 0) {
            PyObject *ge = memo_at(m, g);
            if (!ge) { Py_DECREF(blk); goto fail; }
            if (ge == unknown) {
                PyObject *f = fn_at(fns, g);
                if (!f) { Py_DECREF(blk); goto fail; }
                ge = PyObject_Vectorcall(f, call4, 4, NULL);
                Py_DECREF(f);
                if (!ge) { Py_DECREF(blk); goto fail; }
                int bad = memo_set(m, g, ge);
                Py_DECREF(ge);          /* (m holds it) */
                if (bad) { Py_DECREF(blk); goto fail; }
            }
            if (ge == Py_None) { Py_DECREF(blk); continue; }
        }
        PyObject *steps = PySequence_Fast(PySequence_Fast_GET_ITEM(blk, 1), "a block's steps must be iterable");
        Py_DECREF(blk);
        if (!steps) goto fail;
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(steps); k++) {
            PyObject *st = unpacked(PySequence_Fast_GET_ITEM(steps, k), 4);
            if (!st) { Py_DECREF(steps); goto fail; }
            PyObject *rule = PySequence_Fast_GET_ITEM(st, 0);
            Py_ssize_t j = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(st, 1));
            PyObject *e = (j == -1 && PyErr_Occurred()) ? NULL : memo_at(m, j);
            if (!e) { Py_DECREF(st); Py_DECREF(steps); goto fail; }
            Py_INCREF(e);
            if (e == unknown) {
                Py_DECREF(e);
                int direct = PyObject_IsTrue(PySequence_Fast_GET_ITEM(st, 3));
                e = direct < 0 ? NULL : PyObject_Vectorcall(PySequence_Fast_GET_ITEM(st, 2), call4, direct ? 2 : 4, NULL);
                if (!e || memo_set(m, j, e) < 0) { Py_XDECREF(e); Py_DECREF(st); Py_DECREF(steps); goto fail; }
            }
            if (e != Py_None && rule != Py_None) {
                PyObject *h = PyTuple_Pack(2, rule, e);
                if (!h || PyList_Append(hits, h) < 0) {
                    Py_XDECREF(h); Py_DECREF(e); Py_DECREF(st); Py_DECREF(steps); goto fail;
                }
                Py_DECREF(h);
            }
            Py_DECREF(e);
            Py_DECREF(st);
        }
        Py_DECREF(steps);
    }
    Py_DECREF(bl);
    Py_DECREF(fns);
    r = PyTuple_Pack(3, hits, pending, m);
    Py_DECREF(hits); Py_DECREF(pending); Py_DECREF(m);
    return r;
fail:
    Py_XDECREF(bl); Py_XDECREF(fns); Py_XDECREF(pending); Py_XDECREF(hits); Py_XDECREF(m);
    return NULL;
}
