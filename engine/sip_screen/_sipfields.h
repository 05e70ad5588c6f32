/* The fields of a plain in-dialog request, read as fastpath.py's patterns read them (included by _sipdialog.h; it
 * uses _sipfast.c's is_token, name_is, is_space, host_end and the ASCII classes). No I/O, no Python objects but
 * `ours`.
 *
 * What in_dialog() (_sipdialog.h) asks of a request's fields, answered from the caller's bytes (spans into them,
 * a header's kind, a count), a "not plain" answer making the caller undecided: a name-addr (To, From, Contact: fastpath._NAME_ADDR) and its
 * tag parameter (_TAG, _tag_keys), the kind of a header by its name (full and compact forms, RFC 3261 §7.3.3),
 * whether a Route value is exactly our own Record-Route (fastpath._our_route) and the Request-URI's next hop
 * (_URI, _TRANSPORT). tests/test_sip_fuzz.py checks the C and Python paths agree on mutated requests.
 */

/* _NAME_ADDR of fastpath.py: ("quoted" | token-ish)* <sip(s):uri> ([ \t]*;[ \t]*item)* [ \t]*$.
 * Fills the params span [*q0, *q1). */
static int is_dispchar(unsigned char c) { return is_token(c) || c == ' ' || c == '\t'; }

static int match_name_addr(const char *p, Py_ssize_t n, Py_ssize_t *q0, Py_ssize_t *q1) {
    Py_ssize_t i = 0;
    if (n > 0 && p[0] == '"') {
        i = 1;
        while (i < n && p[i] != '"' && p[i] != '\\' && p[i] != '\r' && p[i] != '\n') i++;
        if (i >= n || p[i] != '"') return 0;
        i++;
        while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    } else {
        while (i < n && is_dispchar((unsigned char)p[i])) i++;
    }
    if (i >= n || p[i] != '<') return 0;
    i++;
    if (n - i >= 4 && memcmp(p + i, "sip:", 4) == 0) i += 4;
    else if (n - i >= 5 && memcmp(p + i, "sips:", 5) == 0) i += 5;
    else return 0;
    Py_ssize_t s = i;
    while (i < n && p[i] != '<' && p[i] != '>' && p[i] != '"' && !is_space((unsigned char)p[i])) i++;
    if (i == s || i >= n || p[i] != '>') return 0;
    i++;
    *q0 = i;
    for (;;) {
        Py_ssize_t j = i;
        while (j < n && (p[j] == ' ' || p[j] == '\t')) j++;
        if (j >= n || p[j] != ';') break;
        j++;
        while (j < n && (p[j] == ' ' || p[j] == '\t')) j++;
        Py_ssize_t s2 = j;
        while (j < n && p[j] != ';' && p[j] != ',' && p[j] != '<' && p[j] != '>' && p[j] != '"'
               && !is_space((unsigned char)p[j])) j++;
        if (j == s2) break;
        i = j;
    }
    *q1 = i;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    return i == n;
}

/* _TAG.search over a name-addr's params: the first ";[ \t]*tag=" (any case) with a value */
static int find_tag(const char *p, Py_ssize_t q0, Py_ssize_t q1, Py_ssize_t *t0, Py_ssize_t *t1) {
    for (Py_ssize_t i = q0; i < q1; i++) {
        if (p[i] != ';') continue;
        Py_ssize_t j = i + 1;
        while (j < q1 && (p[j] == ' ' || p[j] == '\t')) j++;
        if (q1 - j >= 4 && name_is(p + j, 4, "tag=")) {
            Py_ssize_t s = j + 4, e = s;
            while (e < q1 && p[e] != ';' && !is_space((unsigned char)p[e])) e++;
            if (e > s) { *t0 = s; *t1 = e; return 1; }
        }
    }
    return 0;
}

/* how many parameters in [q0, q1) have the key "tag" (any case): the grammar keeps the last, the
 * search above the first, so more than one is left to the grammar (fastpath._tag_keys) */
static int tag_keys(const char *p, Py_ssize_t q0, Py_ssize_t q1) {
    int n = 0;
    for (Py_ssize_t i = q0; i < q1; i++) {
        if (p[i] != ';') continue;
        Py_ssize_t j = i + 1;
        while (j < q1 && (p[j] == ' ' || p[j] == '\t')) j++;
        Py_ssize_t e = j;
        while (e < q1 && p[e] != '=' && p[e] != ';' && p[e] != ' ' && p[e] != '\t') e++;
        if (e - j == 3 && name_is(p + j, 3, "tag")) n++;
    }
    return n;
}

static int all_ascii(const char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) if ((unsigned char)p[i] >= 0x80) return 0;
    return 1;
}

enum { R_OTHER, R_VIA, R_TO, R_FROM, R_CALLID, R_CSEQ, R_MF, R_CL, R_CONTACT, R_ROUTE, R_FULL };

static int req_kind(const char *np, Py_ssize_t nl) {
    if (name_is(np, nl, "via") || name_is(np, nl, "v")) return R_VIA;
    if (name_is(np, nl, "to") || name_is(np, nl, "t")) return R_TO;
    if (name_is(np, nl, "from") || name_is(np, nl, "f")) return R_FROM;
    if (name_is(np, nl, "call-id") || name_is(np, nl, "i")) return R_CALLID;
    if (name_is(np, nl, "cseq")) return R_CSEQ;
    if (name_is(np, nl, "max-forwards")) return R_MF;
    if (name_is(np, nl, "content-length") || name_is(np, nl, "l")) return R_CL;
    if (name_is(np, nl, "contact") || name_is(np, nl, "m")) return R_CONTACT;
    if (name_is(np, nl, "route")) return R_ROUTE;
    if (name_is(np, nl, "record-route") || name_is(np, nl, "proxy-require")) return R_FULL;
    return R_OTHER;
}

/* fastpath._our_route: the Route value is byte for byte `<sip:HOST:PORT;transport=t;lr>` (what proxying._screened
 * writes as Record-Route) for a prefix `SIP/2.0/T HOST:PORT;branch=...` of `ours` (t: T in lower case) */
static int our_route(const char *v, Py_ssize_t vl, PyObject *ours) {
    if (!ours || vl < 9 || memcmp(v, "<sip:", 5) != 0 || memcmp(v + vl - 4, ";lr>", 4) != 0) return 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ours); k++) {
        PyObject *o = PyTuple_GET_ITEM(ours, k);
        if (!PyBytes_Check(o)) continue;
        const char *pre = PyBytes_AS_STRING(o);
        Py_ssize_t pl = PyBytes_GET_SIZE(o), sp = 8, semi;
        while (sp < pl && pre[sp] != ' ') sp++;
        semi = sp;
        while (semi < pl && pre[semi] != ';') semi++;
        if (sp >= pl || semi >= pl) continue;
        Py_ssize_t hl = semi - sp - 1, tl = sp - 8;      /* HOST:PORT, T */
        if (vl != 5 + hl + 11 + tl + 4 || memcmp(v + 5, pre + sp + 1, hl) != 0
                || memcmp(v + 5 + hl, ";transport=", 11) != 0) continue;
        Py_ssize_t x = 0;
        while (x < tl && v[5 + hl + 11 + x] == LOWER(pre[8 + x])) x++;
        if (x == tl) return 1;
    }
    return 0;
}

/* fastpath._names_us: whether HOST:PORT of a Request-URI (h, hl: the host as written, an IPv6 reference with its
 * brackets) is one of the addresses of `ours` (the starts of our Vias, "SIP/2.0/T HOST:PORT;branch=...", host in
 * lower case). Such an in-dialog request goes to the next hop (in_dialog's `hop`), not back to us. No snprintf:
 * compared in place, host (the URI's in any case) and port apart, as this runs for every in-dialog request */
static int names_us(const char *h, Py_ssize_t hl, long port, PyObject *ours) {
    if (!ours || hl <= 0) return 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ours); k++) {
        PyObject *o = PyTuple_GET_ITEM(ours, k);
        if (!PyBytes_Check(o)) continue;
        const char *pre = PyBytes_AS_STRING(o);
        Py_ssize_t pl = PyBytes_GET_SIZE(o), sp = 0, semi = 0;
        while (sp < pl && pre[sp] != ' ') sp++;
        while (semi < pl && pre[semi] != ';') semi++;
        if (sp >= pl || semi >= pl || semi <= sp) continue;
        Py_ssize_t a = sp + 1, colon = semi - 1;     /* pre[a, semi): HOST:PORT, the port after the last ':' */
        while (colon > a && pre[colon] != ':') colon--;
        if (colon - a != hl || colon + 1 >= semi) continue;
        long pp = 0;
        Py_ssize_t x;
        for (x = colon + 1; x < semi && DIG(pre[x]) && pp <= 65535; x++) pp = pp * 10 + (pre[x] - '0');
        if (x != semi || pp != port) continue;
        for (x = 0; x < hl && (char)LOWER(h[x]) == pre[a + x]; x++) {}
        if (x == hl) return 1;
    }
    return 0;
}

/* _URI and _TRANSPORT of fastpath.py on the Request-URI u (its "sip:" checked by the caller):
 * sip:(user@)?host(:port)?(;params)*, at most one ;transport= (udp or tcp, any case). Fills the host span
 * [*h0, *h1) of u (an IPv6 reference with its brackets), the port (5060 when none) and `transport` ("UDP" or
 * "TCP", upper case); 0: undecided. */
static int ruri_hop(const char *u, Py_ssize_t ul, Py_ssize_t *h0, Py_ssize_t *h1, long *port_out, char transport[4]) {
    Py_ssize_t i, j;
    if (!all_ascii(u, ul)) return 0;
    for (j = 0; j < ul; j++) if (is_space((unsigned char)u[j])) return 0;
    i = 4;
    {
        Py_ssize_t at = -1;
        for (j = 4; j < ul; j++) {
            if (u[j] == '@') { at = j; break; }
            if (u[j] == ';') break;
        }
        if (at >= 0) {
            for (j = at + 1; j < ul; j++) if (u[j] == '@') return 0;
            i = at + 1;
        } else {
            for (j = 4; j < ul; j++) if (u[j] == '@') return 0;    /* ";...@": the pattern decides */
        }
    }
    *h0 = i;
    if ((i = host_end(u, ul, i)) < 0) return 0;
    *h1 = i;
    long port = 5060;
    if (i < ul && u[i] == ':') {
        Py_ssize_t s = ++i;
        port = 0;
        while (i < ul && DIG(u[i]) && i - s < 5) { port = port * 10 + (u[i] - '0'); i++; }
        if (i == s || (i < ul && u[i] != ';')) return 0;
    }
    if (i < ul && u[i] != ';') return 0;
    if (!(port > 0 && port < 65536)) return 0;
    *port_out = port;
    /* URI params: ;transport= at most once, udp or tcp */
    int ntr = 0;
    memcpy(transport, "UDP", 4);
    for (Py_ssize_t q = i; q < ul; q++) {
        if (u[q] != ';') continue;
        Py_ssize_t ke = q + 1;                            /* the key: up to '=' or the next ';' */
        while (ke < ul && u[ke] != '=' && u[ke] != ';') ke++;
        if (ke == q + 1 || (ke - q - 1 == 9 && name_is(u + q + 1, 9, "transport") && (ke == ul || u[ke] != '=')))
            return 0;                                     /* an empty key, or transport without a value */
        if (ul - q - 1 >= 10 && name_is(u + q + 1, 10, "transport=")) {
            Py_ssize_t s = q + 11, e = s;
            while (e < ul && u[e] != ';') e++;
            if (++ntr > 1 || e - s != 3) return 0;
            for (int c = 0; c < 3; c++) transport[c] = (char)(u[s + c] >= 'a' && u[s + c] <= 'z' ? u[s + c] - 32 : u[s + c]);
            if (memcmp(transport, "UDP", 3) != 0 && memcmp(transport, "TCP", 3) != 0) return 0;
        }
    }
    return 1;
}
