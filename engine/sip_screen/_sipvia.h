/* The Via of a response or request for the SIP fast paths in C (included by _sipfast.c, after its ASCII classes,
 * is_space, name_is and host_end): fastpath._NEXT (match_next), a Via value the grammar reads the same
 * (fastpath._plain_via: plain_via, odd_bytes) and the next hop it names (fastpath.next_hop: host, port, rport,
 * received, transport; RFC 3261 §18.2.2). relay_response (_sipfast.c) and in_dialog (_sipdialog.h) use them.
 * No I/O; "not plain" is 0, and the caller is then undecided.
 */

/* _NEXT: SIP/2.0/(UDP|TCP) host(:port)?(;params)*[ \t]*$ on p[0:n]. Fills the groups' spans. */
typedef struct { Py_ssize_t t0, h0, h1, p0, p1, q0, q1; } nextm;

static int match_next(const char *p, Py_ssize_t n, nextm *m) {
    Py_ssize_t i = 0;
    if (n < 12 || memcmp(p, "SIP/2.0/", 8) != 0) return 0;
    if (memcmp(p + 8, "UDP", 3) != 0 && memcmp(p + 8, "TCP", 3) != 0) return 0;
    m->t0 = 8;
    if (p[11] != ' ') return 0;
    i = 12;
    m->h0 = i;
    if ((i = host_end(p, n, i)) < 0) return 0;
    m->h1 = i;
    m->p0 = m->p1 = -1;
    if (i < n && p[i] == ':') {
        Py_ssize_t s = i + 1, j = s;
        while (j < n && j - s < 5 && DIG(p[j])) j++;
        if (j > s && !(j < n && DIG(p[j]))) {    /* \d{1,5} then not a 6th digit */
            m->p0 = s; m->p1 = j; i = j;
        }
        /* else the optional group does not match: the rest must still fit, which it cannot (':') */
    }
    m->q0 = i;
    while (i < n && p[i] == ';') {
        Py_ssize_t s = i + 1, j = s;
        while (j < n && p[j] != ';' && p[j] != ',' && p[j] != '"' && !is_space((unsigned char)p[j])) j++;
        if (j == s) break;
        i = j;
    }
    m->q1 = i;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    return i == n;
}

/* a byte other than printable ASCII or a tab (fastpath._ODD): the grammar strips Unicode blanks
 * such as \x1c-\x1f from the ends of values and parameters, where a byte edit would keep them */
static int odd_bytes(const char *p, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)p[k];
        if ((c < 0x20 && c != '\t') || c > 0x7e) return 1;
    }
    return 0;
}

/* match_next() on a Via value that also reads the same to the grammar (fastpath._plain_via): only
 * printable ASCII or tabs (the grammar strips Unicode blanks such as \x1e from its parameters, so a
 * byte edit and a parse could read a different branch), a sent-by port and any rport (any case)
 * value 1-65535 (else the grammar rejects the Via, and the full parse drops the message) */
static int plain_via(const char *v, Py_ssize_t vl, nextm *m) {
    if (odd_bytes(v, vl) || !match_next(v, vl, m)) return 0;
    if (m->p0 >= 0) {                                   /* the sent-by port, as the grammar's _port() */
        long sp = 0;
        for (Py_ssize_t k = m->p0; k < m->p1; k++) sp = sp * 10 + (v[k] - '0');
        if (sp < 1 || sp > 65535) return 0;
    }
    for (Py_ssize_t q = m->q0; q < m->q1;) {
        Py_ssize_t s = q + 1, j = s;
        while (j < m->q1 && v[j] != ';') j++;
        Py_ssize_t eq = s;
        while (eq < j && v[eq] != '=') eq++;
        if (eq - s == 5 && name_is(v + s, 5, "rport") && eq + 1 < j) {
            if (j - eq - 1 > 5) return 0;
            long pv = 0;
            for (Py_ssize_t k = eq + 1; k < j; k++) {
                if (!DIG(v[k])) return 0;
                pv = pv * 10 + (v[k] - '0');
            }
            if (pv < 1 || pv > 65535) return 0;
        }
        q = j;
    }
    return 1;
}

/* next_hop() of fastpath.py for the plain forms; 0 = undecided (the caller returns None) */
static int next_hop(const char *p, Py_ssize_t n, PyObject **out) {
    nextm m;
    if (odd_bytes(p, n)) return 0;                      /* the grammar decides */
    while (n > 0 && is_space((unsigned char)p[0])) { p++; n--; }
    while (n > 0 && is_space((unsigned char)p[n - 1])) n--;
    if (!plain_via(p, n, &m)) return 0;
    char host[300];
    Py_ssize_t hl = m.h1 - m.h0;
    const char *hp = p + m.h0;
    if (hp[0] == '[') { hp++; hl -= 2; }
    if (hl <= 0 || hl >= (Py_ssize_t)sizeof host) return 0;
    for (Py_ssize_t k = 0; k < hl; k++) host[k] = (char)LOWER(hp[k]);
    long port = 5060;
    if (m.p0 >= 0) {
        port = 0;
        for (Py_ssize_t k = m.p0; k < m.p1; k++) port = port * 10 + (p[k] - '0');
    }
    const char *rcv = NULL; Py_ssize_t rcvl = 0;
    int nr = 0, nrec = 0;
    Py_ssize_t i = m.q0;
    while (i < m.q1) {                                   /* ;key[=value] ... */
        Py_ssize_t s = i + 1, j = s;
        while (j < m.q1 && p[j] != ';') j++;
        Py_ssize_t eq = s;
        while (eq < j && p[eq] != '=') eq++;
        Py_ssize_t kl = eq - s;
        int starts_r = j - s >= 5 && name_is(p + s, 5, "rport");
        int starts_rec = j - s >= 8 && name_is(p + s, 8, "received");
        if (starts_r || starts_rec) {
            /* only the exact lower-case key with a plain value; anything else: the grammar decides */
            if (starts_r && !(kl == 5 && memcmp(p + s, "rport", 5) == 0)) return 0;
            if (starts_rec && !(kl == 8 && memcmp(p + s, "received", 8) == 0)) return 0;
            if (starts_r) {
                nr++;
                if (eq < j) {
                    Py_ssize_t dl = j - eq - 1;
                    if (dl < 1 || dl > 5) return 0;
                    long v = 0;
                    for (Py_ssize_t k = eq + 1; k < j; k++) {
                        if (!DIG(p[k])) return 0;
                        v = v * 10 + (p[k] - '0');
                    }
                    port = v;
                }
            } else {
                nrec++;
                if (eq >= j) return 0;                   /* ";received" without a value */
                if (j - eq - 1 < 1) return 0;
                for (Py_ssize_t k = eq + 1; k < j; k++)
                    if (!(HEX(p[k]) || p[k] == '.' || p[k] == ':')) return 0;
                rcv = p + eq + 1; rcvl = j - eq - 1;
            }
        }
        i = j;
    }
    if (nr > 1 || nrec > 1) return 0;
    if (!(port > 0 && port < 65536)) return 0;
    PyObject *h = rcv ? PyUnicode_DecodeASCII(rcv, rcvl, NULL) : PyUnicode_DecodeASCII(host, hl, NULL);
    if (!h) return -1;
    /* (host, port, TRANSPORT) as Py_BuildValue("(Nls#)") built it, without its format parsed at every relayed
     * response (~700 instructions, instrbench) */
    PyObject *t = PyTuple_New(3), *pt = t ? PyLong_FromLong(port) : NULL;
    PyObject *tr = pt ? PyUnicode_FromStringAndSize(p + m.t0, 3) : NULL;
    if (!tr) {
        Py_DECREF(h); Py_XDECREF(pt); Py_XDECREF(t);
        *out = NULL;
        return -1;
    }
    PyTuple_SET_ITEM(t, 0, h);
    PyTuple_SET_ITEM(t, 1, pt);
    PyTuple_SET_ITEM(t, 2, tr);
    *out = t;
    return 1;
}
