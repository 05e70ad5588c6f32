/* recent.Recent's hot methods in C: RecentCore, the base class Recent builds on. Included by _sipfast.c. No I/O.
 *
 * Theory of operation: a Recent is two OrderedDicts, `d` and `low`, of key -> (time stored, value), bounded
 * together by `size`, entries older than `ttl` seconds (None: no limit) forgotten when read. An INVITE reads or
 * stores a dozen of them (verdicts, transactions, answered calls, forwarded INVITEs), and each method run by the
 * interpreter cost ~1,500-3,000 instructions. RecentCore keeps the same attributes (the C pump reads `d` as it
 * did) and does get / put / put_low / promote / pop exactly as recent.PyRecentCore does, in C; the bound itself
 * (`_bound`, rarely due) stays in Python. Reads use the dicts' storage (an OrderedDict is a dict); every insertion
 * and deletion goes through the OrderedDict's own item assignment, which keeps its order.
 * tests/test_sip_recent_c.py runs random operation sequences on both and compares results and order.
 */
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *d, *low, *ttl;
    Py_ssize_t size, low_min;
} RecentCore;

static int rc_dicts(RecentCore *r) {
    if (!r->d || !r->low || !PyDict_Check(r->d) || !PyDict_Check(r->low)) {
        PyErr_SetString(PyExc_TypeError, "Recent: d and low must be OrderedDicts");
        return -1;
    }
    return 0;
}

static int rc_bound(RecentCore *r) {
    if (PyDict_GET_SIZE(r->d) + PyDict_GET_SIZE(r->low) <= r->size) return 0;
    PyObject *x = PyObject_CallMethod((PyObject *)r, "_bound", NULL);
    Py_XDECREF(x);
    return x ? 0 : -1;
}

/* del where[key] when it is there: 1, 0 when not, -1 error */
static int rc_discard(PyObject *where, PyObject *key) {
    int in = PyDict_Contains(where, key);
    if (in <= 0) return in;
    return PyObject_DelItem(where, key) < 0 ? -1 : 1;
}

static PyObject *rc_store(PyObject *where, PyObject *key, PyObject *value, PyObject *now) {
    PyObject *ent = PyTuple_Pack(2, now, value);
    if (!ent) return NULL;
    int e = PyObject_SetItem(where, key, ent);
    Py_DECREF(ent);
    return e < 0 ? NULL : Py_None;
}

static PyObject *zero_now;                                  /* 0.0: the methods' default `now` */

/* Python's binding of a call's arguments to the parameters `names` (the first `required` of them without a
 * default): out[i] is the argument for names[i], or NULL when left to its default. -1: a TypeError. */
static int rc_args(PyObject *const *a, size_t nargsf, PyObject *kw, const char *const *names, int max, int required,
                   PyObject **out) {
    Py_ssize_t n = PyVectorcall_NARGS(nargsf), i;
    for (i = 0; i < max; i++) out[i] = i < n ? a[i] : NULL;
    if (n > max) goto bad;
    for (i = 0; kw && i < PyTuple_GET_SIZE(kw); i++) {
        int k;
        for (k = 0; k < max && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kw, i), names[k]) != 0; k++) {}
        if (k == max || out[k]) goto bad;
        out[k] = a[n + i];
    }
    for (i = 0; i < required; i++)
        if (!out[i]) goto bad;
    return 0;
bad:
    PyErr_Format(PyExc_TypeError, "Recent: bad arguments (parameters: %s%s%s%s%s)", names[0], max > 1 ? ", " : "",
                 max > 1 ? names[1] : "", max > 2 ? ", " : "", max > 2 ? names[2] : "");
    return -1;
}

static const char *const KEY_NOW_DEFAULT[] = {"key", "now", "default"}, *const KEY_VALUE_NOW[] = {"key", "value", "now"},
                         *const KEY_DEFAULT[] = {"key", "default"};

static PyObject *rc_get(RecentCore *r, PyObject *const *args, size_t nargsf, PyObject *kw) {
    PyObject *a[3];
    if (rc_args(args, nargsf, kw, KEY_NOW_DEFAULT, 3, 1, a) < 0 || rc_dicts(r) < 0) return NULL;
    PyObject *key = a[0], *now = a[1] ? a[1] : zero_now, *dflt = a[2] ? a[2] : Py_None, *where = r->d;
    PyObject *ent = PyDict_GetItemWithError(where, key);
    if (!ent) {
        if (PyErr_Occurred()) return NULL;
        if (!PyDict_GET_SIZE(r->low)) return Py_NewRef(dflt);
        where = r->low;
        if (!(ent = PyDict_GetItemWithError(where, key))) return PyErr_Occurred() ? NULL : Py_NewRef(dflt);
    }
    if (!PyTuple_Check(ent) || PyTuple_GET_SIZE(ent) != 2) {
        PyErr_SetString(PyExc_TypeError, "Recent: entries are (time, value)");
        return NULL;
    }
    if (r->ttl && r->ttl != Py_None) {                                /* now - ent[0] > ttl: forgotten */
        PyObject *age = PyNumber_Subtract(now, PyTuple_GET_ITEM(ent, 0));
        int old = age ? PyObject_RichCompareBool(age, r->ttl, Py_GT) : -1;
        Py_XDECREF(age);
        if (old < 0) return NULL;
        if (old) return PyObject_DelItem(where, key) < 0 ? NULL : Py_NewRef(dflt);
    }
    return Py_NewRef(PyTuple_GET_ITEM(ent, 1));
}

static PyObject *rc_put3(RecentCore *r, PyObject **a) {
    int was = rc_discard(r->d, a[0]);                       /* re-stored: it is the newest again */
    if (was < 0 || (!was && PyDict_GET_SIZE(r->low) && rc_discard(r->low, a[0]) < 0)) return NULL;
    if (!rc_store(r->d, a[0], a[1], a[2] ? a[2] : zero_now) || rc_bound(r) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *rc_put(RecentCore *r, PyObject *const *args, size_t nargsf, PyObject *kw) {
    PyObject *a[3];
    if (rc_args(args, nargsf, kw, KEY_VALUE_NOW, 3, 2, a) < 0 || rc_dicts(r) < 0) return NULL;
    return rc_put3(r, a);
}

static PyObject *rc_put_low(RecentCore *r, PyObject *const *args, size_t nargsf, PyObject *kw) {
    PyObject *a[3];
    if (rc_args(args, nargsf, kw, KEY_VALUE_NOW, 3, 2, a) < 0 || rc_dicts(r) < 0) return NULL;
    int was = rc_discard(r->low, a[0]);
    if (was < 0 || (!was && PyDict_GET_SIZE(r->d) && rc_discard(r->d, a[0]) < 0)) return NULL;
    if (!rc_store(r->low, a[0], a[1], a[2] ? a[2] : zero_now) || rc_bound(r) < 0) return NULL;
    Py_RETURN_NONE;
}

/* where.pop(key, None): a new reference, NULL with no error when absent */
static PyObject *rc_take(PyObject *where, PyObject *key) {
    PyObject *ent = PyDict_GetItemWithError(where, key);
    if (!ent) return NULL;
    Py_INCREF(ent);
    if (PyObject_DelItem(where, key) < 0) Py_CLEAR(ent);
    return ent;
}

static PyObject *rc_promote(RecentCore *r, PyObject *const *args, size_t nargsf, PyObject *kw) {
    PyObject *a[3];
    if (rc_args(args, nargsf, kw, KEY_VALUE_NOW, 3, 2, a) < 0 || rc_dicts(r) < 0) return NULL;
    PyObject *ent = rc_take(r->low, a[0]);
    if (!ent) {
        if (PyErr_Occurred()) return NULL;
        return rc_put3(r, a);
    }
    Py_DECREF(ent);
    if (!rc_store(r->d, a[0], a[1], a[2] ? a[2] : zero_now)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *rc_pop(RecentCore *r, PyObject *const *args, size_t nargsf, PyObject *kw) {
    PyObject *a[2];
    if (rc_args(args, nargsf, kw, KEY_DEFAULT, 2, 1, a) < 0 || rc_dicts(r) < 0) return NULL;
    PyObject *ent = rc_take(r->d, a[0]);
    if (!ent && !PyErr_Occurred() && PyDict_GET_SIZE(r->low)) ent = rc_take(r->low, a[0]);
    if (!ent) return PyErr_Occurred() ? NULL : Py_NewRef(a[1] ? a[1] : Py_None);
    PyObject *v = PyTuple_Check(ent) && PyTuple_GET_SIZE(ent) == 2 ? Py_NewRef(PyTuple_GET_ITEM(ent, 1)) : NULL;
    if (!v) PyErr_SetString(PyExc_TypeError, "Recent: entries are (time, value)");
    Py_DECREF(ent);
    return v;
}

/* len(r): both tiers (Bounded's __len__ was a call frame at every `if screen.answered`) */
static Py_ssize_t rc_len(RecentCore *r) {
    return rc_dicts(r) < 0 ? -1 : PyDict_GET_SIZE(r->d) + PyDict_GET_SIZE(r->low);
}

static PyObject *str_put, *rc_put_descr;                   /* "put", RecentCore's own put (rc_add) */

/* add(key): remember key, False if it was already there (PyRecentCore.add: a put unless `d` holds it; a subclass's
 * own put, AnsweredCalls' counting one, is called as Python calls it) */
static PyObject *rc_add(RecentCore *r, PyObject *key) {
    if (rc_dicts(r) < 0) return NULL;
    int in = PyDict_Contains(r->d, key);
    if (in) return in < 0 ? NULL : Py_NewRef(Py_False);
    PyObject *x;
    if (_PyType_Lookup(Py_TYPE(r), str_put) == rc_put_descr) {
        PyObject *a[3] = {key, Py_None, NULL};
        x = rc_put3(r, a);
    } else {
        x = PyObject_CallMethodObjArgs((PyObject *)r, str_put, key, Py_None, NULL);
    }
    if (!x) return NULL;
    Py_DECREF(x);
    Py_RETURN_TRUE;
}

static PyMappingMethods rc_mapping = {.mp_length = (lenfunc)rc_len};

static int rc_traverse(RecentCore *r, visitproc visit, void *arg) {
    Py_VISIT(r->d); Py_VISIT(r->low); Py_VISIT(r->ttl);
    return 0;
}

static int rc_clear(RecentCore *r) {
    Py_CLEAR(r->d); Py_CLEAR(r->low); Py_CLEAR(r->ttl);
    return 0;
}

static void rc_dealloc(RecentCore *r) {
    PyObject_GC_UnTrack(r);
    rc_clear(r);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyMethodDef rc_methods[] = {
    {"get", (PyCFunction)(void (*)(void))rc_get, METH_FASTCALL | METH_KEYWORDS, "the value stored under key (None / default)"},
    {"put", (PyCFunction)(void (*)(void))rc_put, METH_FASTCALL | METH_KEYWORDS, "store key as the newest ordinary entry"},
    {"put_low", (PyCFunction)(void (*)(void))rc_put_low, METH_FASTCALL | METH_KEYWORDS, "store key as the newest entry forgotten first"},
    {"promote", (PyCFunction)(void (*)(void))rc_promote, METH_FASTCALL | METH_KEYWORDS, "put for a key low holds"},
    {"pop", (PyCFunction)(void (*)(void))rc_pop, METH_FASTCALL | METH_KEYWORDS, "remove key, its value (or default)"},
    {"add", (PyCFunction)rc_add, METH_O, "remember key; False if it was there"},
    {NULL, NULL, 0, NULL}};

static PyMemberDef rc_members[] = {
    /* T_OBJECT_EX: an unset one raises AttributeError as PyRecentCore's slot does, and only such a member lets Python
     * 3.11 specialise its read (LOAD_ATTR_SLOT): `invites.d.get(key)` went through the generic getattr an INVITE */
    {"d", T_OBJECT_EX, offsetof(RecentCore, d), 0, NULL},
    {"low", T_OBJECT_EX, offsetof(RecentCore, low), 0, NULL},
    {"ttl", T_OBJECT, offsetof(RecentCore, ttl), 0, NULL},
    {"size", T_PYSSIZET, offsetof(RecentCore, size), 0, NULL},
    {"low_min", T_PYSSIZET, offsetof(RecentCore, low_min), 0, NULL},
    {NULL, 0, 0, 0, NULL}};

static PyTypeObject RecentCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine.sip_screen._sipfast.RecentCore",
    .tp_basicsize = sizeof(RecentCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "recent.Recent's get / put / put_low / promote / pop in C",
    .tp_traverse = (traverseproc)rc_traverse,
    .tp_clear = (inquiry)rc_clear,
    .tp_dealloc = (destructor)rc_dealloc,
    .tp_methods = rc_methods,
    .tp_members = rc_members,
    .tp_as_mapping = &rc_mapping,
    .tp_new = PyType_GenericNew,
};

/* recent.digest(*parts): hash(parts), the arguments' own tuple hashed (the Python function is a call frame more) */
static PyObject *digest(PyObject *self, PyObject *args) {
    Py_hash_t h = PyObject_Hash(args);
    return h == -1 && PyErr_Occurred() ? NULL : PyLong_FromSsize_t(h);
}

/* recent.dialog_digest(key, *parts): the first 8 bytes of BLAKE2b over `key` then each part as its UTF-8 length (4
 * bytes, little-endian) and bytes (lone surrogates as "surrogatepass" writes them), as an unsigned int: the same in
 * every process holding `key` (the answered-call memory saved at a stop and read back at the next start) */
static PyObject *dialog_digest(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    if (n < 1 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "dialog_digest(key: bytes, *parts: str)");
        return NULL;
    }
    PyObject *key = args[0];
    b2b s;
    b2b_init(&s, 8);
    b2b_update(&s, (const uint8_t *)PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
    for (Py_ssize_t i = 1; i < n; i++) {
        PyObject *p = args[i], *enc = NULL;
        const char *d;
        Py_ssize_t len;
        if (!PyUnicode_Check(p)) {
            PyErr_SetString(PyExc_TypeError, "dialog_digest: parts must be str");
            return NULL;
        }
        if (PyUnicode_IS_ASCII(p)) {
            d = (const char *)PyUnicode_DATA(p);
            len = PyUnicode_GET_LENGTH(p);
        } else {
            enc = PyUnicode_AsEncodedString(p, "utf-8", "surrogatepass");
            if (!enc) return NULL;
            d = PyBytes_AS_STRING(enc);
            len = PyBytes_GET_SIZE(enc);
        }
        uint8_t l4[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
        b2b_update(&s, l4, 4);
        b2b_update(&s, (const uint8_t *)d, (size_t)len);
        Py_XDECREF(enc);
    }
    b2b_finish(&s);
    return PyLong_FromUnsignedLongLong((unsigned long long)s.h[0]);
}
