/* grammar.py's parse_uri, parse_name_addr, parse_via and split_list for plain values, in C. Included by
 * _sipfast.c. No I/O.
 *
 * Theory of operation: each g_* function reads one str value and returns what its Python twin returns (a SipUri,
 * NameAddr or Via built without running the dataclass's __init__, or a list) when the value is plain: ASCII, no
 * control bytes but tab, the common spelling of each construct. Anything else -- an error the Python function
 * would raise, an escape, an IPv6 reference, a phone-context, a port written with blanks -- returns NULL with no
 * exception set, "undecided": the caller then runs the Python function, which decides. So these can only ever
 * agree with grammar.py; tests/test_sip_grammar_c.py checks that on the RFC 4475 vectors, the tests' messages
 * and mutations of them. (NULL with an exception set is a real error: no memory.)
 */

static PyObject *T_URI, *T_NA, *T_VIA;              /* grammar.SipUri, NameAddr, Via (set_types) */
static PyObject *F_SCHEME, *F_USER, *F_HOST, *F_PORT, *F_PARAMS, *F_DISPLAY, *F_URI, *F_TRANSPORT, *F_RAW;
static PyObject *K_RPORT;
/* each type's fields as members, in make()'s order (set_types; a NULL first: not all plain slots, the setattr path) */
static PyMemberDef *URI_M[5], *NA_M[3], *VIA_M[5];

#define WS(c) ((c) == ' ' || (c) == '\t')
#define UNDECIDED NULL

/* a plain value: ASCII with no control bytes but tab (so str.strip() and str.split() see only ' ' and '\t') */
static const char *plain_text(PyObject *s, Py_ssize_t *n) {
    if (!PyUnicode_Check(s) || !PyUnicode_IS_ASCII(s)) return NULL;
    const char *p = (const char *)PyUnicode_1BYTE_DATA(s);
    *n = PyUnicode_GET_LENGTH(s);
    Py_ssize_t i = 0;
    /* eight bytes at a time (ASCII: each below 0x80) while none is below 0x20 or 0x7f; the bytes from the first word
     * that has one (a tab, or a control byte) are looked at one by one */
    for (; i + 8 <= *n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t x = w ^ 0x7f7f7f7f7f7f7f7fULL;
        if (((w - 0x2020202020202020ULL) | (x - 0x0101010101010101ULL)) & 0x8080808080808080ULL) break;
    }
    for (; i < *n; i++)
        if (((unsigned char)p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) return NULL;
    return p;
}

static PyObject *astr(const char *p, Py_ssize_t n, int lower) {
    PyObject *s = PyUnicode_New(n, 127);
    if (!s) return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(s);
    if (!lower) {
        if (n) memcpy(d, p, (size_t)n);
        return s;
    }
    for (Py_ssize_t i = 0; i < n; i++) d[i] = LOWER(p[i]);
    return s;
}

static void strip(const char **p, Py_ssize_t *n) {
    while (*n && WS((*p)[0])) { (*p)++; (*n)--; }
    while (*n && WS((*p)[*n - 1])) (*n)--;
}

static Py_ssize_t find(const char *p, Py_ssize_t n, char c) {
    const char *q = memchr(p, c, n);
    return q ? q - p : -1;
}

/* grammar._port: 1-65535 written as plain digits (else undecided: -1) */
static long g_port(const char *p, Py_ssize_t n) {
    if (n < 1 || n > 5) return -1;
    long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!DIG(p[i])) return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v >= 1 && v <= 65535 ? v : -1;
}

/* an instance of `type` with its fields set, without the dataclass __init__; steals the values */
static PyObject *make(PyObject *type, int n, PyObject **names, PyObject **vals) {
    PyObject *o = NULL;
    for (int i = 0; i < n; i++)
        if (!vals[i]) goto out;
    static PyObject *empty;
    if (!empty && !(empty = PyTuple_New(0))) goto out;
    if (!(o = PyBaseObject_Type.tp_new((PyTypeObject *)type, empty, NULL))) goto out;
    PyMemberDef **mm = type == T_URI ? URI_M : type == T_NA ? NA_M : type == T_VIA ? VIA_M : NULL;
    if (mm && mm[0]) {                                     /* each slot empty (NULL) in a new object */
        for (int i = 0; i < n; i++) Py_XSETREF(*(PyObject **)((char *)o + mm[i]->offset), Py_NewRef(vals[i]));
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (PyObject_GenericSetAttr(o, names[i], vals[i]) < 0) { Py_CLEAR(o); goto out; }
out:
    for (int i = 0; i < n; i++) Py_XDECREF(vals[i]);
    return o;
}

/* grammar.parse_params(s) (and parse_via's parameters, read the same way): {} or {name lowered: value} */
static PyObject *g_params(const char *p, Py_ssize_t n) {
    strip(&p, &n);
    PyObject *out = PyDict_New();
    if (!out || n == 0) return out;
    if (p[0] != ';') goto undecided;
    for (Py_ssize_t i = 1;;) {
        Py_ssize_t j = find(p + i, n - i, ';');
        j = j < 0 ? n : i + j;
        const char *kv = p + i;
        Py_ssize_t kn = j - i;
        strip(&kv, &kn);
        if (kn == 0) goto undecided;                        /* "empty header parameter" */
        Py_ssize_t eq = find(kv, kn, '=');
        const char *k = kv, *v = kv + (eq < 0 ? kn : eq + 1);
        Py_ssize_t kl = eq < 0 ? kn : eq, vl = eq < 0 ? 0 : kn - eq - 1;
        strip(&k, &kl);
        strip(&v, &vl);
        PyObject *ks = astr(k, kl, 1), *vs = ks ? astr(v, vl, 0) : NULL;
        int e = !vs || PyDict_SetItem(out, ks, vs) < 0;
        Py_XDECREF(ks); Py_XDECREF(vs);
        if (e) { Py_DECREF(out); return NULL; }
        if (j == n) break;
        i = j + 1;
    }
    return out;
undecided:
    Py_DECREF(out);
    return UNDECIDED;
}

/* grammar.parse_uri's reading of a URI, up to the object it builds: 0 undecided (the Python function decides), 1 read.
 * One scan for g_uri (the SipUri) and g_uri_user (its user only: _user_of, no object built) */
struct uri_scan {
    int kind;                       /* 0 tel, 1 another scheme (no user, no host), 2 sip / sips */
    Py_ssize_t c;                   /* the scheme's length */
    const char *user, *r;           /* the user (un bytes); what follows the '@' (rn bytes: host, port, params) */
    Py_ssize_t un, rn, semi, hn, pc, host_n;
    long port;
};

static int uri_scan(const char *p, Py_ssize_t n, struct uri_scan *u) {
    Py_ssize_t c = find(p, n, ':'), i;
    if (c <= 0) return 0;
    for (i = 0; i < c; i++)
        if (!is_token(p[i])) return 0;
    for (i = c; i < n; i++)
        if (WS(p[i])) return 0;
    const char *r = p + c + 1;
    Py_ssize_t rn = n - c - 1;
    u->c = c;
    if (name_is(p, c, "tel")) {
        Py_ssize_t semi = find(r, rn, ';'), nl = semi < 0 ? rn : semi;
        if (find(r, nl, '%') >= 0) return 0;                /* escapes: _unescaped */
        if (semi >= 0 && (nl == 0 || r[0] != '+') && has(r + semi, rn - semi, "phone-context=")) return 0;
        u->kind = 0; u->user = r; u->un = nl;
        return 1;
    }
    if (!name_is(p, c, "sip") && !name_is(p, c, "sips")) {
        u->kind = 1; u->user = ""; u->un = 0;
        return 1;
    }
    Py_ssize_t q = find(r, rn, '?');
    if (q >= 0) rn = q;                                     /* ?headers */
    const char *user = "";
    Py_ssize_t un = 0, at = find(r, rn, '@');
    if (at >= 0) {
        Py_ssize_t ui = find(r, at, ':'), semi;
        un = ui < 0 ? at : ui;                              /* without a password */
        semi = find(r, un, ';');
        if (find(r, un, '%') >= 0) return 0;                /* escapes: _unescaped */
        if (semi >= 0) {
            if ((semi == 0 || r[0] != '+') && has(r + semi, un - semi, "phone-context=")) return 0;
            un = semi;
        }
        user = r;
        r += at + 1;
        rn -= at + 1;
    }
    Py_ssize_t semi = find(r, rn, ';'), hn = semi < 0 ? rn : semi;
    if (hn > 0 && r[0] == '[') return 0;                    /* an IPv6 reference: the Python function */
    long port = 0;
    Py_ssize_t pc = -1;
    for (Py_ssize_t k = hn - 1; k >= 0; k--)
        if (r[k] == ':') { pc = k; break; }
    if (pc >= 0 && (port = g_port(r + pc + 1, hn - pc - 1)) < 0) return 0;
    Py_ssize_t host_n = pc >= 0 ? pc : hn;
    if (host_n == 0) return 0;                              /* "URI without host" */
    u->kind = 2; u->user = user; u->un = un; u->r = r; u->rn = rn; u->semi = semi; u->hn = hn; u->pc = pc;
    u->host_n = host_n; u->port = port;
    return 1;
}

/* grammar.parse_uri: a SipUri */
static PyObject *g_uri(const char *p, Py_ssize_t n) {
    struct uri_scan u;
    if (!uri_scan(p, n, &u)) return UNDECIDED;
    PyObject *v[5];
    if (u.kind == 0) {
        v[0] = astr("tel", 3, 0); v[1] = astr(u.user, u.un, 0); v[2] = astr("", 0, 0); v[3] = Py_NewRef(Py_None);
        v[4] = PyDict_New();
        return make(T_URI, 5, (PyObject *[]){F_SCHEME, F_USER, F_HOST, F_PORT, F_PARAMS}, v);
    }
    if (u.kind == 1) {
        v[0] = astr(p, u.c, 1); v[1] = astr("", 0, 0); v[2] = astr("", 0, 0); v[3] = Py_NewRef(Py_None);
        v[4] = PyDict_New();
        return make(T_URI, 5, (PyObject *[]){F_SCHEME, F_USER, F_HOST, F_PORT, F_PARAMS}, v);
    }
    const char *r = u.r;
    Py_ssize_t rn = u.rn;
    PyObject *prm = PyDict_New();
    if (!prm) return NULL;
    for (Py_ssize_t s = u.semi < 0 ? rn : u.semi + 1; s < rn;) {
        Py_ssize_t e = find(r + s, rn - s, ';');
        e = e < 0 ? rn : s + e;
        if (e > s) {
            Py_ssize_t eq = find(r + s, e - s, '=');
            Py_ssize_t kl = eq < 0 ? e - s : eq;
            PyObject *ks = astr(r + s, kl, 1), *vs = ks ? astr(r + s + kl + (eq < 0 ? 0 : 1), eq < 0 ? 0 : e - s - kl - 1, 0) : NULL;
            int bad = !vs || PyDict_SetItem(prm, ks, vs) < 0;
            Py_XDECREF(ks); Py_XDECREF(vs);
            if (bad) { Py_DECREF(prm); return NULL; }
        }
        s = e + 1;
    }
    v[0] = astr(p, u.c, 1); v[1] = astr(u.user, u.un, 0); v[2] = astr(r, u.host_n, 1);
    v[3] = u.pc >= 0 ? PyLong_FromLong(u.port) : Py_NewRef(Py_None); v[4] = prm;
    return make(T_URI, 5, (PyObject *[]){F_SCHEME, F_USER, F_HOST, F_PORT, F_PARAMS}, v);
}

/* grammar.parse_uri(uri).user, without the SipUri (identity._user_of: the From and To users of an INVITE) */
static PyObject *g_uri_user(const char *p, Py_ssize_t n) {
    struct uri_scan u;
    if (!uri_scan(p, n, &u)) return UNDECIDED;
    return astr(u.user, u.un, 0);
}

/* grammar.parse_name_addr: a NameAddr */
static PyObject *g_name_addr(const char *p, Py_ssize_t n) {
    strip(&p, &n);
    const char *disp = "", *uri, *rest;
    Py_ssize_t dn = 0, un, restn, i;
    int quoted = 0;
    if (n && p[0] == '"') {
        int esc = 0;
        for (i = 1; i < n; i++) {
            if (esc) esc = 0;
            else if (p[i] == '\\') esc = 1;
            else if (p[i] == '"') break;
        }
        if (i >= n) return UNDECIDED;                       /* unterminated */
        disp = p + 1; dn = i - 1; quoted = 1;
        p += i + 1; n -= i + 1;
        strip(&p, &n);
        if (!n || p[0] != '<') return UNDECIDED;
    }
    Py_ssize_t lt = find(p, n, '<');
    if (lt >= 0) {
        if (!dn) {
            disp = p; dn = lt;
            strip(&disp, &dn);
            for (i = 0; i < dn; i++)                        /* tokens separated by LWS (baddn) */
                if (!is_token(disp[i]) && !WS(disp[i])) return UNDECIDED;
        }
        Py_ssize_t gt = find(p + lt, n - lt, '>');
        if (gt < 0) return UNDECIDED;
        gt += lt;
        uri = p + lt + 1; un = gt - lt - 1;
        strip(&uri, &un);
        rest = p + gt + 1; restn = n - gt - 1;
    } else {
        Py_ssize_t semi = find(p, n, ';');
        uri = p; un = semi < 0 ? n : semi;
        rest = semi < 0 ? "" : p + semi;                    /* `";" + rest if rest else ""` */
        restn = semi < 0 || semi == n - 1 ? 0 : n - semi;
        strip(&uri, &un);
        for (i = 0; i < un; i++)
            if (uri[i] == '?' || uri[i] == ',' || uri[i] == ' ') return UNDECIDED;
    }
    (void)quoted;
    if (!un || find(uri, un, ':') < 0) return UNDECIDED;
    PyObject *prm = g_params(rest, restn);
    if (!prm) return NULL;
    PyObject *v[3] = {astr(disp, dn, 0), astr(uri, un, 0), prm};
    return make(T_NA, 3, (PyObject *[]){F_DISPLAY, F_URI, F_PARAMS}, v);
}

/* grammar.parse_via: a Via (its raw value stripped) */
static PyObject *g_via(const char *p, Py_ssize_t n) {
    strip(&p, &n);
    if (n < 9 || memcmp(p, "SIP/2.0/", 8) != 0) return UNDECIDED;
    Py_ssize_t t = 8, i;
    for (i = t; i < n && is_token(p[i]); i++) {}
    if (i == t || i >= n || !WS(p[i])) return UNDECIDED;
    Py_ssize_t te = i;
    while (i < n && WS(p[i])) i++;
    Py_ssize_t sb = i;
    while (i < n && p[i] != ';' && !WS(p[i])) i++;
    Py_ssize_t se = i;
    if (se == sb || p[sb] == '[') return UNDECIDED;
    Py_ssize_t pc = -1;
    for (Py_ssize_t k = se - 1; k >= sb; k--)
        if (p[k] == ':') { pc = k; break; }
    long port = 0;
    if (pc >= 0 && (port = g_port(p + pc + 1, se - pc - 1)) < 0) return UNDECIDED;
    Py_ssize_t he = pc >= 0 ? pc : se;
    if (he == sb) return UNDECIDED;
    PyObject *prm = g_params(p + se, n - se);
    if (!prm) return NULL;
    PyObject *rp = PyDict_GetItemWithError(prm, K_RPORT);
    if (rp && PyUnicode_GET_LENGTH(rp)) {                   /* RFC 3581: a port when it has a value */
        Py_ssize_t rn;
        const char *r = PyUnicode_AsUTF8AndSize(rp, &rn);
        if (!r || g_port(r, rn) < 0) { Py_DECREF(prm); return r ? UNDECIDED : NULL; }
    }
    PyObject *tr = PyUnicode_New(te - t, 127);
    if (tr)
        for (i = t; i < te; i++) PyUnicode_1BYTE_DATA(tr)[i - t] = p[i] >= 'a' && p[i] <= 'z' ? p[i] - 32 : p[i];
    PyObject *v[5] = {tr, astr(p + sb, he - sb, 1), pc >= 0 ? PyLong_FromLong(port) : Py_NewRef(Py_None), prm,
                      astr(p, n, 0)};
    return make(T_VIA, 5, (PyObject *[]){F_TRANSPORT, F_HOST, F_PORT, F_PARAMS, F_RAW}, v);
}

/* grammar.split_list: the values of a list header, appended to `out` (0), or -1 undecided / error */
static int g_split(const char *p, Py_ssize_t n, PyObject *out) {
    Py_ssize_t s = 0, i;
    int q = 0, esc = 0, ang = 0;
    for (i = 0; i <= n; i++) {
        if (i < n) {
            char ch = p[i];
            if (esc) { esc = 0; continue; }
            if (q) {
                if (ch == '\\') esc = 1;
                else if (ch == '"') q = 0;
                continue;
            }
            if (ch == '"') q = 1;
            else if (ch == '<') ang++;
            else if (ch == '>') ang = ang > 0 ? ang - 1 : 0;
            if (ch != ',' || ang) continue;
        } else if (q) {
            return -1;                                      /* unterminated quoted string */
        }
        const char *v = p + s;
        Py_ssize_t vn = i - s;
        strip(&v, &vn);
        PyObject *x = astr(v, vn, 0);
        if (!x || PyList_Append(out, x) < 0) { Py_XDECREF(x); return -1; }
        Py_DECREF(x);
        s = i + 1;
    }
    return 0;
}

/* the Python-facing twins: the parsed value, or None (undecided: run the Python function) */
static PyObject *twin(PyObject *arg, PyObject *(*f)(const char *, Py_ssize_t)) {
    Py_ssize_t n;
    const char *p = plain_text(arg, &n);
    PyObject *r = p && T_URI ? f(p, n) : NULL;
    if (r || PyErr_Occurred()) return r;
    Py_RETURN_NONE;
}

static PyObject *py_parse_uri(PyObject *self, PyObject *a) { return twin(a, g_uri); }
static PyObject *py_uri_user(PyObject *self, PyObject *a) { return twin(a, g_uri_user); }
static PyObject *py_parse_name_addr(PyObject *self, PyObject *a) { return twin(a, g_name_addr); }
static PyObject *py_parse_via(PyObject *self, PyObject *a) { return twin(a, g_via); }

static PyObject *set_types(PyObject *self, PyObject *args) {
    PyObject *u, *na, *via;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyType_Type, &u, &PyType_Type, &na, &PyType_Type, &via)) return NULL;
#define INTERN(v, s) if (!v && !(v = PyUnicode_InternFromString(s))) return NULL
    INTERN(F_SCHEME, "scheme"); INTERN(F_USER, "user"); INTERN(F_HOST, "host"); INTERN(F_PORT, "port");
    INTERN(F_PARAMS, "params"); INTERN(F_DISPLAY, "display"); INTERN(F_URI, "uri");
    INTERN(F_TRANSPORT, "transport"); INTERN(F_RAW, "raw"); INTERN(K_RPORT, "rport");
#undef INTERN
    Py_XSETREF(T_URI, Py_NewRef(u)); Py_XSETREF(T_NA, Py_NewRef(na)); Py_XSETREF(T_VIA, Py_NewRef(via));
    struct { PyObject *t; PyMemberDef **m; int n; PyObject *names[5]; } types[] = {
        {u, URI_M, 5, {F_SCHEME, F_USER, F_HOST, F_PORT, F_PARAMS}}, {na, NA_M, 3, {F_DISPLAY, F_URI, F_PARAMS}},
        {via, VIA_M, 5, {F_TRANSPORT, F_HOST, F_PORT, F_PARAMS, F_RAW}}};
    for (int k = 0; k < 3; k++) {
        PyMemberDef *got[5];
        int plain = 1;
        for (int i = 0; i < types[k].n; i++) {
            if (slot_member(types[k].t, types[k].names[i], &got[i]) < 0) return NULL;
            plain = plain && got[i];
        }
        for (int i = 0; i < types[k].n; i++) types[k].m[i] = plain ? got[i] : NULL;
    }
    Py_RETURN_NONE;
}
