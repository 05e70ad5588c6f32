/* checks.check_request's pass for a plain request that passes every check, in C. Included by _sipfast.c. No I/O.
 *
 * Theory of operation: check_plain(method, uri, headers) takes a parsed request (its headers as codec builds
 * them: [name, value, canonical name] lists) and returns (first, vias, ruri, name_addrs) -- what check_request
 * leaves on the message when it lets the request proceed: the first value of each header by canonical name, the
 * parsed Vias, the parsed Request-URI and the To and From values parsed ({value: NameAddr}) -- when every check of
 * RFC 3261 §16.3 that check_request makes passes and every value it parses is plain (_sipgrammar.h). Any failing
 * check, and anything less than plain, returns None: check_request then runs its Python pass, which decides (and
 * names the error). So this can only agree with it; tests/test_sip_grammar_c.py checks that.
 */

static PyObject *K_TO, *K_FROM, *K_CALLID, *K_CSEQ, *K_VIA, *K_MF, *K_CL, *K_CONTACT, *K_ROUTE, *K_RR, *K_PR;

#define MAX_VIAS 100                                        /* codec.MAX_VIAS */

/* a == b for two str (the canonical names are interned, codec._canon_memo: mostly the same object) */
static int same(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    return n == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b)
        && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), n * PyUnicode_KIND(a)) == 0;
}

static int in_single(PyObject *c) {                         /* checks.SINGLE */
    return same(c, K_TO) || same(c, K_FROM) || same(c, K_CALLID) || same(c, K_CSEQ) || same(c, K_MF)
        || same(c, K_CL);
}

/* every value of the headers named `c`, split as a list header, appended to out; -1: undecided or error */
static int values_of(PyObject *headers, PyObject *c, PyObject *out) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *h = PyList_GET_ITEM(headers, i);
        PyObject *hc = PyList_GET_ITEM(h, 2);
        if (!same(hc, c)) continue;
        Py_ssize_t n;
        const char *p = plain_text(PyList_GET_ITEM(h, 1), &n);
        if (!p || g_split(p, n, out) < 0) return -1;
    }
    return 0;
}

static PyObject *check_plain(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *method, *uri, *headers, *first = NULL, *vias = NULL, *ruri = NULL, *na = NULL, *vals = NULL, *res = NULL;
    if (fc_count("check_plain", nargs, 3) < 0 || fc_type("check_plain", 0, args[0], &PyUnicode_Type) < 0
            || fc_type("check_plain", 1, args[1], &PyUnicode_Type) < 0
            || fc_type("check_plain", 2, args[2], &PyList_Type) < 0) return NULL;
    method = args[0], uri = args[1], headers = args[2];
    if (!T_URI || !PyUnicode_IS_ASCII(method)) goto undecided;
    Py_ssize_t mn = PyUnicode_GET_LENGTH(method), i;
    const char *m = (const char *)PyUnicode_1BYTE_DATA(method);
    for (i = 0; i < mn; i++)
        if (m[i] >= 'a' && m[i] <= 'z') goto undecided;     /* a known method in another case: the Python pass */
    if (!(first = _PyDict_NewPresized(PyList_GET_SIZE(headers)))) goto out;    /* (no resize while filled) */
    for (i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *h = PyList_GET_ITEM(headers, i);
        if (!PyList_Check(h) || PyList_GET_SIZE(h) != 3 || !PyUnicode_Check(PyList_GET_ITEM(h, 2))
                || !PyUnicode_Check(PyList_GET_ITEM(h, 1)))
            goto undecided;
        PyObject *c = PyList_GET_ITEM(h, 2), *v = PyList_GET_ITEM(h, 1);
        PyObject *seen = PyDict_GetItemWithError(first, c);
        if (seen) {
            if (in_single(c) && PyUnicode_Compare(seen, v) != 0) goto undecided;     /* "Multiple ... headers" */
        } else if (PyErr_Occurred() || PyDict_SetItem(first, c, v) < 0) {
            goto out;
        }
    }
    PyObject *req[] = {K_TO, K_FROM, K_CALLID, K_CSEQ, K_VIA}, *to, *fr, *cseq, *mf;
    for (i = 0; i < 5; i++)
        if (!PyDict_GetItemWithError(first, req[i])) goto undecided;        /* "Missing ... header" */
    if (PyDict_GetItemWithError(first, K_PR)) goto undecided;              /* 420 */
    if (!(vals = PyList_New(0))) goto out;
    if (values_of(headers, K_VIA, vals) < 0 || PyList_GET_SIZE(vals) > MAX_VIAS) goto undecided;
    if (!(vias = PyList_New(PyList_GET_SIZE(vals)))) goto out;
    for (i = 0; i < PyList_GET_SIZE(vals); i++) {
        Py_ssize_t n;
        const char *p = plain_text(PyList_GET_ITEM(vals, i), &n);
        PyObject *via = p ? g_via(p, n) : NULL;
        if (!via) goto undecided;
        PyList_SET_ITEM(vias, i, via);
    }
    to = PyDict_GetItem(first, K_TO);
    fr = PyDict_GetItem(first, K_FROM);
    if (!(na = PyDict_New())) goto out;
    PyObject *two[] = {to, fr};
    for (i = 0; i < 2; i++) {
        Py_ssize_t n;
        const char *p = plain_text(two[i], &n);
        PyObject *x = p ? g_name_addr(p, n) : NULL;
        if (!x) goto undecided;
        int e = PyDict_SetItem(na, two[i], x);
        Py_DECREF(x);
        if (e < 0) goto out;
    }
    {                                                       /* CSeq: a number up to 2**31-1 and the method */
        Py_ssize_t n, a, b;
        const char *p = plain_text(cseq = PyDict_GetItem(first, K_CSEQ), &n);
        if (!p) goto undecided;
        for (a = 0; a < n && WS(p[a]); a++) {}
        for (b = a; b < n && DIG(p[b]); b++) {}
        if (b == a || b - a > 10 || b >= n || !WS(p[b])) goto undecided;
        long long num = 0;
        for (Py_ssize_t k = a; k < b; k++) num = num * 10 + (p[k] - '0');
        if (num > 2147483647LL) goto undecided;
        while (b < n && WS(p[b])) b++;
        Py_ssize_t e = b;
        while (e < n && !WS(p[e])) e++;
        Py_ssize_t t = e;
        while (t < n && WS(p[t])) t++;
        if (e == b || t != n || e - b != mn || memcmp(p + b, m, mn) != 0) goto undecided;
    }
    if ((mf = PyDict_GetItemWithError(first, K_MF))) {      /* Max-Forwards: 0-255 */
        Py_ssize_t n;
        const char *p = plain_text(mf, &n);
        if (!p) goto undecided;
        strip(&p, &n);
        if (n < 1 || n > 10) goto undecided;
        long v = 0;
        for (i = 0; i < n; i++) {
            if (!DIG(p[i])) goto undecided;
            v = v * 10 + (p[i] - '0');
            if (v > 255) goto undecided;
        }
    } else if (PyErr_Occurred()) {
        goto out;
    }
    PyObject *named[] = {K_CONTACT, K_ROUTE, K_RR};
    for (int k = 0; k < 3; k++) {                          /* each must parse (but a Contact's "*") */
        if (!PyDict_GetItemWithError(first, named[k])) {
            if (PyErr_Occurred()) goto out;
            continue;
        }
        Py_CLEAR(vals);
        if (!(vals = PyList_New(0))) goto out;
        if (values_of(headers, named[k], vals) < 0) goto undecided;
        for (i = 0; i < PyList_GET_SIZE(vals); i++) {
            Py_ssize_t n;
            const char *p = plain_text(PyList_GET_ITEM(vals, i), &n);
            if (p && n == 1 && p[0] == '*') continue;
            PyObject *x = p ? g_name_addr(p, n) : NULL;
            if (!x) goto undecided;
            Py_DECREF(x);
        }
    }
    {                                                       /* the Request-URI: sip, sips or tel, no ?headers */
        Py_ssize_t n;
        const char *p = plain_text(uri, &n);
        if (!p) goto undecided;
        Py_ssize_t c = find(p, n, ':');
        if (c < 0 || !(name_is(p, c, "sip") || name_is(p, c, "sips") || name_is(p, c, "tel"))) goto undecided;
        if (!name_is(p, c, "tel")) {
            Py_ssize_t at = -1;
            for (i = n - 1; i >= 0; i--)
                if (p[i] == '@') { at = i; break; }
            if (find(p + at + 1, n - at - 1, '?') >= 0) goto undecided;
        }
        if (!(ruri = g_uri(p, n))) goto undecided;
    }
    res = PyTuple_Pack(4, first, vias, ruri, na);
    goto out;
undecided:
    if (!PyErr_Occurred()) res = Py_NewRef(Py_None);
out:
    Py_XDECREF(first); Py_XDECREF(vias); Py_XDECREF(ruri); Py_XDECREF(na); Py_XDECREF(vals);
    return res;
}

static int check_init(void) {
#define INTERN(v, s) if (!(v = PyUnicode_InternFromString(s))) return -1
    INTERN(K_TO, "to"); INTERN(K_FROM, "from"); INTERN(K_CALLID, "call-id"); INTERN(K_CSEQ, "cseq");
    INTERN(K_VIA, "via"); INTERN(K_MF, "max-forwards"); INTERN(K_CL, "content-length"); INTERN(K_CONTACT, "contact");
    INTERN(K_ROUTE, "route"); INTERN(K_RR, "record-route"); INTERN(K_PR, "proxy-require");
#undef INTERN
    return 0;
}
