/* RuleFn: a rule's closure (ctx, state, memo, pending) -> evidence | None of rules/rule_fns.py's commonest
 * shapes, in C (included by _slotsfast.c): a composite whose top node is an and / or of operands
 * (composite_all, composite_any, composite_all_ors) and a shared condition then one stateful check
 * (shared_then_state, pred_then_state). Each wraps the Python closure rule_fn built, which stays the reference
 * and is called instead for any call not of the usual shape (keywords, another argument count, a memo or pending
 * that is not a list); the operands, conditions and checks called are the same objects, in the same order,
 * with the same arguments, and a composite's evidence is rule_fns.evidence's. tests/test_rule_fns_fast.py
 * compares the two on the shipped rules and on made-up expressions.
 *
 *   rule_state(py, slot, pred, st, check)             slot >= 0: shared_then_state, -1: pred_then_state
 *   rule_composite(py, mode, terms, fns, evidence, deps, negs, desc)
 *       mode 0: all (terms (j, neg, f, d)), 1: any, 2: all with `or`s (terms (j, neg, f, d, alts | None)) */

typedef struct rterm {
    Py_ssize_t j;
    int neg;
    PyObject *f, *d;            /* borrowed from the terms tuple the object holds */
    Py_ssize_t nalts;           /* -1: no alternatives */
    struct rterm *alts;
} rterm;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    int mode;                   /* 0 all, 1 any, 2 all_ors, 3 shared_then_state, 4 pred_then_state */
    Py_ssize_t slot, nterms;
    PyObject *py, *pred, *st, *check, *terms, *fns, *evidence, *deps, *negs, *desc;
    rterm *t;
} RuleFn;

static PyObject *str_sep;           /* "; " */

static int rf_traverse(RuleFn *o, visitproc visit, void *arg)
{
    Py_VISIT(o->py); Py_VISIT(o->pred); Py_VISIT(o->st); Py_VISIT(o->check); Py_VISIT(o->terms);
    Py_VISIT(o->fns); Py_VISIT(o->evidence); Py_VISIT(o->deps); Py_VISIT(o->negs); Py_VISIT(o->desc);
    return 0;
}

static void rf_free_terms(RuleFn *o)
{
    if (o->t) {
        for (Py_ssize_t i = 0; i < o->nterms; i++)
            PyMem_Free(o->t[i].alts);
        PyMem_Free(o->t);
        o->t = NULL;
    }
    o->nterms = 0;
}

static int rf_clear(RuleFn *o)
{
    rf_free_terms(o);           /* (its pointers are into `terms`) */
    Py_CLEAR(o->py); Py_CLEAR(o->pred); Py_CLEAR(o->st); Py_CLEAR(o->check); Py_CLEAR(o->terms);
    Py_CLEAR(o->fns); Py_CLEAR(o->evidence); Py_CLEAR(o->deps); Py_CLEAR(o->negs); Py_CLEAR(o->desc);
    return 0;
}

static void rf_dealloc(RuleFn *o)
{
    PyObject_GC_UnTrack(o);
    rf_clear(o);
    Py_TYPE(o)->tp_free((PyObject *)o);
}

/* memo slot j's value, computed by its operand when UNKNOWN (borrowed from m); NULL on error */
static PyObject *rf_operand(RuleFn *o, rterm *t, PyObject *const *a)
{
    PyObject *m = a[2], *v = memo_at(m, t->j);
    if (!v || v != plan_unknown) return v;
    if (t->d != Py_None) {
        v = PyObject_Vectorcall(t->d, a, 2, NULL);
    } else {
        PyObject *f = fn_at(o->fns, t->j);
        if (!f) return NULL;
        v = PyObject_Vectorcall(f, a, 4, NULL);
        Py_DECREF(f);
    }
    if (!v) return NULL;
    int bad = memo_set(m, t->j, v);
    Py_DECREF(v);
    return bad ? NULL : v;          /* (m holds it) */
}

/* 1 when the term holds, 0 when not, -1 on error (an and / or operand that is a symbol, a negated one, or a
 * closure of its own) */
static int rf_term(RuleFn *o, rterm *t, PyObject *const *a)
{
    if (t->f == Py_None) {
        PyObject *v = rf_operand(o, t, a);
        if (!v) return -1;
        return (v == Py_None) == t->neg;
    }
    PyObject *r = PyObject_Vectorcall(t->f, a, 4, NULL);
    if (!r) return -1;
    int b = PyObject_IsTrue(r);
    Py_DECREF(r);
    return b;
}

static PyObject *rf_evidence(RuleFn *o, PyObject *m)
{
    PyObject *args[4] = {o->deps, o->negs, m, o->desc};
    return PyObject_Vectorcall(o->evidence, args, 4, NULL);
}

static PyObject *rf_call(PyObject *self, PyObject *const *a, size_t nargsf, PyObject *kwnames)
{
    RuleFn *o = (RuleFn *)self;
    if (kwnames || PyVectorcall_NARGS(nargsf) != 4 || !PyList_CheckExact(a[2]) || !PyList_CheckExact(a[3]))
        return PyObject_Vectorcall(o->py, a, nargsf, kwnames);
    if (!plan_unknown && !(plan_unknown = unknown_object())) return NULL;
    if (o->mode >= 3) {                                 /* a condition, then one stateful check */
        PyObject *e;
        if (o->mode == 3) {
            e = memo_at(a[2], o->slot);
            if (!e) return NULL;
            Py_INCREF(e);
            if (e == plan_unknown) {
                Py_DECREF(e);
                if (!(e = PyObject_Vectorcall(o->pred, a, 2, NULL))) return NULL;
                if (memo_set(a[2], o->slot, e) < 0) { Py_DECREF(e); return NULL; }
            }
        } else if (!(e = PyObject_Vectorcall(o->pred, a, 2, NULL))) {
            return NULL;
        }
        if (e == Py_None) return e;
        if (PyList_Append(a[3], o->st) < 0) { Py_DECREF(e); return NULL; }
        PyObject *e2 = PyObject_Vectorcall(o->check, a, 2, NULL);
        if (!e2 || e2 == Py_None) { Py_DECREF(e); return e2; }
        PyObject *x = PyNumber_Add(e, str_sep), *r = x ? PyNumber_Add(x, e2) : NULL;
        Py_DECREF(e); Py_DECREF(e2); Py_XDECREF(x);
        return r;
    }
    for (Py_ssize_t i = 0; i < o->nterms; i++) {
        rterm *t = &o->t[i];
        int held;
        if (t->nalts >= 0) {                            /* an `or` of symbols: true once one holds */
            held = 0;
            for (Py_ssize_t k = 0; k < t->nalts && !held; k++) {
                PyObject *v = rf_operand(o, &t->alts[k], a);
                if (!v) return NULL;
                held = (v == Py_None) == t->alts[k].neg;
            }
        } else if ((held = rf_term(o, t, a)) < 0) {
            return NULL;
        }
        if (o->mode == 1) {                             /* any: the first that holds decides */
            if (held) return rf_evidence(o, a[2]);
        } else if (!held) {
            Py_RETURN_NONE;
        }
    }
    if (o->mode == 1) Py_RETURN_NONE;
    return rf_evidence(o, a[2]);
}

/* __name__ and __wrapped__: the Python closure's name (composite_all, shared_then_state, ...) and the closure */
static PyObject *rf_name(RuleFn *o, void *c) { return PyObject_GetAttrString(o->py, "__name__"); }
static PyObject *rf_wrapped(RuleFn *o, void *c) { Py_INCREF(o->py); return o->py; }

static PyGetSetDef rf_getset[] = {
    {"__name__", (getter)rf_name, NULL, NULL, NULL},
    {"__wrapped__", (getter)rf_wrapped, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject RuleFnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine.rules._slotsfast.RuleFn",
    .tp_basicsize = sizeof(RuleFn),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(RuleFn, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)rf_traverse,
    .tp_clear = (inquiry)rf_clear,
    .tp_dealloc = (destructor)rf_dealloc,
    .tp_getset = rf_getset,
};

static RuleFn *rf_new(PyObject *py, int mode)
{
    RuleFn *o = PyObject_GC_New(RuleFn, &RuleFnType);
    if (!o) return NULL;
    o->vectorcall = rf_call;
    o->mode = mode;
    o->slot = -1;
    o->nterms = 0;
    o->t = NULL;
    o->pred = o->st = o->check = o->terms = o->fns = o->evidence = o->deps = o->negs = o->desc = NULL;
    Py_INCREF(py);
    o->py = py;
    return o;
}

/* one (j, neg, f, d[, alts]) of a terms tuple into `t`; -1 with TypeError when it is not of that shape */
static int rf_read_term(PyObject *x, rterm *t, int with_alts)
{
    if (!PyTuple_CheckExact(x) || PyTuple_GET_SIZE(x) != 4 + with_alts) goto bad;
    PyObject *neg = PyTuple_GET_ITEM(x, 1);
    if (neg != Py_True && neg != Py_False) goto bad;
    t->j = PyLong_AsSsize_t(PyTuple_GET_ITEM(x, 0));
    if (t->j == -1 && PyErr_Occurred()) return -1;
    t->neg = neg == Py_True;
    t->f = PyTuple_GET_ITEM(x, 2);
    t->d = PyTuple_GET_ITEM(x, 3);
    t->nalts = -1;
    t->alts = NULL;
    if (with_alts && PyTuple_GET_ITEM(x, 4) != Py_None) {
        PyObject *alts = PyTuple_GET_ITEM(x, 4);
        if (!PyTuple_CheckExact(alts)) goto bad;
        t->nalts = PyTuple_GET_SIZE(alts);
        if (!(t->alts = PyMem_Calloc(t->nalts ? t->nalts : 1, sizeof(rterm)))) { PyErr_NoMemory(); return -1; }
        for (Py_ssize_t k = 0; k < t->nalts; k++) {
            if (rf_read_term(PyTuple_GET_ITEM(alts, k), &t->alts[k], 0) < 0) return -1;
            if (t->alts[k].f != Py_None) goto bad;
        }
    }
    return 0;
bad:
    PyErr_SetString(PyExc_TypeError, "a rule term is (slot, negated, closure | None, condition | None[, alts])");
    return -1;
}

static PyObject *f_rule_composite(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    if (n != 8 || !PyTuple_CheckExact(a[2])) {
        PyErr_SetString(PyExc_TypeError, "rule_composite(py, mode, terms, fns, evidence, deps, negs, desc)");
        return NULL;
    }
    long mode = PyLong_AsLong(a[1]);
    if (mode == -1 && PyErr_Occurred()) return NULL;
    if (mode < 0 || mode > 2) { PyErr_SetString(PyExc_ValueError, "mode 0, 1 or 2"); return NULL; }
    RuleFn *o = rf_new(a[0], (int)mode);
    if (!o) return NULL;
    PyObject *objs[6] = {a[2], a[3], a[4], a[5], a[6], a[7]};
    for (int i = 0; i < 6; i++) Py_INCREF(objs[i]);
    o->terms = a[2]; o->fns = a[3]; o->evidence = a[4]; o->deps = a[5]; o->negs = a[6]; o->desc = a[7];
    Py_ssize_t nt = PyTuple_GET_SIZE(a[2]);
    if (!(o->t = PyMem_Calloc(nt ? nt : 1, sizeof(rterm)))) { Py_DECREF(o); return PyErr_NoMemory(); }
    for (Py_ssize_t i = 0; i < nt; i++) {
        o->nterms = i + 1;          /* (freed up to here on an error) */
        if (rf_read_term(PyTuple_GET_ITEM(a[2], i), &o->t[i], mode == 2) < 0) { Py_DECREF(o); return NULL; }
    }
    o->nterms = nt;
    PyObject_GC_Track(o);
    return (PyObject *)o;
}

static PyObject *f_rule_state(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    if (n != 5) { PyErr_SetString(PyExc_TypeError, "rule_state(py, slot, pred, st, check)"); return NULL; }
    Py_ssize_t slot = PyLong_AsSsize_t(a[1]);
    if (slot == -1 && PyErr_Occurred()) return NULL;
    RuleFn *o = rf_new(a[0], slot >= 0 ? 3 : 4);
    if (!o) return NULL;
    o->slot = slot;
    Py_INCREF(a[2]); Py_INCREF(a[3]); Py_INCREF(a[4]);
    o->pred = a[2]; o->st = a[3]; o->check = a[4];
    PyObject_GC_Track(o);
    return (PyObject *)o;
}
