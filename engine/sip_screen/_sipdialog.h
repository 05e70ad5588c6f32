/* The in-dialog request fast path of the SIP screen in C (fastpath.in_dialog's plain case).
 * Included by _sipfast.c (it uses that file's is_token, name_is, is_space, match_next, odd_bytes, plain_via, header_line
 * and has). No I/O.
 *
 * Theory of operation: in_dialog(data, src_ip, src_port[, ours]) answers, for a plain in-dialog request
 * (a To tag; no Route, or one Route header that is exactly our own Record-Route -- fastpath._our_route --, which
 * goes as RFC 3261 §16.4 says; checked and edited as §16.3/§16.6 require), the same tuple as
 * fastpath.py's py_in_dialog, or None ("undecided": the Python function decides, itself possibly
 * deferring to the full parse). tests/test_sip_fuzz.py checks the agreement on mutated requests.
 */
#define MAX_FAST_REQUEST 1200

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

/* in_dialog(data, src_ip, src_port[, ours]) -> (method, before, after, top_branch, base, (host, port,
 * TRANSPORT), call_id, to_tag) or None (undecided: the Python in_dialog decides) */
static PyObject *in_dialog(PyObject *self, PyObject *args) {
    Py_buffer b;
    const char *ip;
    Py_ssize_t ipl;
    long sport;
    PyObject *ours = NULL;                                /* tuple of bytes: the starts of our Vias */
    if (!PyArg_ParseTuple(args, "y*s#l|O!", &b, &ip, &ipl, &sport, &PyTuple_Type, &ours)) return NULL;
    const char *d = b.buf;
    Py_ssize_t len = b.len;
    PyObject *res = NULL;
    char *out = NULL;
    Py_ssize_t i, j;
    if (len > MAX_FAST_REQUEST || len < 16 || ipl > 64 || !all_ascii(ip, ipl)) goto undecided;
    if (memcmp(d, "INVITE ", 7) == 0 || memcmp(d, "CANCEL ", 7) == 0) goto undecided;
    /* request line: ([A-Z]+) (sip:[^ \r\n?"<>]+) SIP/2.0\r\n (a method written in any other case -- "invite",
     * "Bye" -- takes the full parse, which refuses a known method's case variant: checks.check_request) */
    i = 0;
    while (i < len && d[i] >= 'A' && d[i] <= 'Z') i++;
    Py_ssize_t ml = i;
    if (ml == 0 || i >= len || d[i] != ' ') goto undecided;
    Py_ssize_t u0 = ++i;
    while (i < len && d[i] != ' ' && d[i] != '\r' && d[i] != '\n' && d[i] != '?' && d[i] != '"'
           && d[i] != '<' && d[i] != '>') i++;
    Py_ssize_t u1 = i;
    if (u1 - u0 < 5 || memcmp(d + u0, "sip:", 4) != 0 || len - i < 10 || memcmp(d + i, " SIP/2.0\r\n", 10) != 0)
        goto undecided;
    Py_ssize_t rl_end = i + 8;                            /* the request line's CRLF */
    Py_ssize_t he = -1;
    for (i = 0; i + 3 < len; i++)
        if (d[i] == '\r' && d[i + 1] == '\n' && d[i + 2] == '\r' && d[i + 3] == '\n') { he = i; break; }
    if (he < rl_end) goto undecided;
    for (i = rl_end; i < he + 2; i++) {
        if (d[i] == '\r') { if (d[i + 1] != '\n') goto undecided; }
        else if (d[i] == '\n' && d[i - 1] != '\r') goto undecided;
    }
    if (has(d + rl_end, he + 2 - rl_end, "z9hG4bKtf")) goto undecided;
    /* headers */
    Py_ssize_t via_ls = -1, via_vs = 0, via_ve = 0, mf_vs = -1, mf_ve = 0, rt_ls = -1, rt_ve = 0;
    Py_ssize_t hv[R_FULL][2];
    int seen[R_FULL] = {0};
    int vias = 0;
    Py_ssize_t ls = rl_end;
    while (ls < he) {
        Py_ssize_t s = ls + 2, ne, vs, ve;
        if (!header_line(d, he, ls, &ne, &vs, &ve)) goto undecided;
        int k = req_kind(d + s, ne - s);
        const char *v = d + vs;
        Py_ssize_t vl = ve - vs;
        nextm m;
        switch (k) {
        case R_FULL: goto undecided;
        case R_ROUTE:                                    /* one, exactly ours: its whole line ("\r\nRoute: ...") goes */
            if (rt_ls >= 0 || !our_route(v, vl, ours)) goto undecided;
            rt_ls = ls; rt_ve = ve;
            break;
        case R_VIA:
            if (memchr(v, ',', vl) || !plain_via(v, vl, &m)) goto undecided;
            if (vias++ == 0) { via_ls = s; via_vs = vs; via_ve = ve; }
            break;
        case R_CONTACT:
            if (!(vl == 1 && v[0] == '*')) {
                Py_ssize_t a, z;
                if (memchr(v, ',', vl) || !match_name_addr(v, vl, &a, &z)) goto undecided;
            }
            /* fall through: remembered like any other */
        default:
            if (k != R_OTHER && k != R_CONTACT) {
                if (seen[k]) goto undecided;            /* one of each (_ONCE) */
                if (k == R_MF) { mf_vs = vs; mf_ve = ve; }
            }
            seen[k] = 1; hv[k][0] = vs; hv[k][1] = ve;
        }
        ls = ve;
    }
    if (!vias || !seen[R_TO] || !seen[R_FROM] || !seen[R_CALLID] || !seen[R_CSEQ] || !seen[R_MF] || !seen[R_CL])
        goto undecided;
    /* CSeq: (\d{1,10}) (method)[ \t]*$ */
    {
        const char *c = d + hv[R_CSEQ][0], *ce = d + hv[R_CSEQ][1];
        const char *q = c;
        while (q < ce && DIG(*q)) q++;
        if (q == c || q - c > 10 || q >= ce || *q != ' ') goto undecided;
        long long num = 0;
        for (const char *x = c; x < q; x++) num = num * 10 + (*x - '0');
        if (num > 2147483647LL) goto undecided;
        const char *mstart = q + 1, *me = mstart;
        while (me < ce && ((*me >= 'a' && *me <= 'z') || (*me >= 'A' && *me <= 'Z'))) me++;
        const char *t = me;
        while (t < ce && (*t == ' ' || *t == '\t')) t++;
        if (t != ce || me - mstart != ml || memcmp(mstart, d, ml) != 0) goto undecided;
    }
    const char *cseq_num = d + hv[R_CSEQ][0];
    Py_ssize_t cseq_numl = 0;
    while (DIG(cseq_num[cseq_numl])) cseq_numl++;
    /* Content-Length and Max-Forwards: digits (trailing blanks allowed) */
    long clv = 0, mfv = 0;
    {
        Py_ssize_t a = hv[R_CL][0], z = hv[R_CL][1];
        while (z > a && (d[z - 1] == ' ' || d[z - 1] == '\t')) z--;
        if (z == a || z - a > 9) goto undecided;
        for (Py_ssize_t q = a; q < z; q++) { if (!DIG(d[q])) goto undecided; clv = clv * 10 + (d[q] - '0'); }
        if (clv != len - he - 4) goto undecided;
        a = hv[R_MF][0]; z = hv[R_MF][1];
        while (z > a && (d[z - 1] == ' ' || d[z - 1] == '\t')) z--;
        if (z == a || z - a > 9) goto undecided;
        for (Py_ssize_t q = a; q < z; q++) { if (!DIG(d[q])) goto undecided; mfv = mfv * 10 + (d[q] - '0'); }
        if (mfv < 1 || mfv > 255) goto undecided;
    }
    /* To (with a tag) and From */
    Py_ssize_t tq0, tq1, fq0, fq1, tt0, tt1, ft0 = 0, ft1 = 0;
    const char *tv = d + hv[R_TO][0], *fv = d + hv[R_FROM][0];
    if (!match_name_addr(tv, hv[R_TO][1] - hv[R_TO][0], &tq0, &tq1)
            || !match_name_addr(fv, hv[R_FROM][1] - hv[R_FROM][0], &fq0, &fq1))
        goto undecided;
    if (!find_tag(tv, tq0, tq1, &tt0, &tt1)) goto undecided;
    int has_ftag = find_tag(fv, fq0, fq1, &ft0, &ft1);
    /* the fields of the branch key read as the grammar reads them (no bytes it would strip) */
    if (odd_bytes(tv + tq0, tq1 - tq0) || odd_bytes(fv + fq0, fq1 - fq0)
            || tag_keys(tv, tq0, tq1) > 1 || tag_keys(fv, fq0, fq1) > 1
            || odd_bytes(d + hv[R_CALLID][0], hv[R_CALLID][1] - hv[R_CALLID][0]) || odd_bytes(d + u0, u1 - u0))
        goto undecided;
    /* the Request-URI: sip:(user@)?host(:port)?(;params)* */
    const char *u = d + u0;
    Py_ssize_t ul = u1 - u0;
    if (!all_ascii(u, ul)) goto undecided;
    for (j = 0; j < ul; j++) if (is_space((unsigned char)u[j])) goto undecided;
    i = 4;
    {
        Py_ssize_t at = -1;
        for (j = 4; j < ul; j++) {
            if (u[j] == '@') { at = j; break; }
            if (u[j] == ';') break;
        }
        if (at >= 0) {
            for (j = at + 1; j < ul; j++) if (u[j] == '@') goto undecided;
            i = at + 1;
        } else {
            for (j = 4; j < ul; j++) if (u[j] == '@') goto undecided;    /* ";...@": the pattern decides */
        }
    }
    Py_ssize_t h0 = i;
    if (i < ul && u[i] == '[') {
        i++;
        Py_ssize_t s = i;
        while (i < ul && (HEX(u[i]) || u[i] == ':' || u[i] == '.')) i++;
        if (i == s || i >= ul || u[i] != ']') goto undecided;
        i++;
    } else {
        Py_ssize_t s = i;
        while (i < ul && (ALNUM(u[i]) || u[i] == '.' || u[i] == '-')) i++;
        if (i == s) goto undecided;
    }
    Py_ssize_t h1 = i;
    long port = 5060;
    if (i < ul && u[i] == ':') {
        Py_ssize_t s = ++i;
        port = 0;
        while (i < ul && DIG(u[i]) && i - s < 5) { port = port * 10 + (u[i] - '0'); i++; }
        if (i == s || (i < ul && u[i] != ';')) goto undecided;
    }
    if (i < ul && u[i] != ';') goto undecided;
    if (!(port > 0 && port < 65536)) goto undecided;
    /* URI params: ;transport= at most once, udp or tcp */
    int ntr = 0;
    char transport[4] = "UDP";
    for (Py_ssize_t q = i; q < ul; q++) {
        if (u[q] != ';') continue;
        Py_ssize_t ke = q + 1;                            /* the key: up to '=' or the next ';' */
        while (ke < ul && u[ke] != '=' && u[ke] != ';') ke++;
        if (ke == q + 1 || (ke - q - 1 == 9 && name_is(u + q + 1, 9, "transport") && (ke == ul || u[ke] != '=')))
            goto undecided;                               /* an empty key, or transport without a value */
        if (ul - q - 1 >= 10 && name_is(u + q + 1, 10, "transport=")) {
            Py_ssize_t s = q + 11, e = s;
            while (e < ul && u[e] != ';') e++;
            if (++ntr > 1 || e - s != 3) goto undecided;
            for (int c = 0; c < 3; c++) transport[c] = (char)(u[s + c] >= 'a' && u[s + c] <= 'z' ? u[s + c] - 32 : u[s + c]);
            if (memcmp(transport, "UDP", 3) != 0 && memcmp(transport, "TCP", 3) != 0) goto undecided;
        }
    }
    /* the top Via: plain, ours to stamp */
    const char *v = d + via_vs;
    Py_ssize_t vl = via_ve - via_vs;
    nextm tm;
    if (!match_next(v, vl, &tm) || !has(v, vl, ";branch=")) goto undecided;
    if (tm.p0 >= 0) {
        long vp = 0;
        for (Py_ssize_t q = tm.p0; q < tm.p1; q++) vp = vp * 10 + (v[q] - '0');
        if (!(vp > 0 && vp < 65536)) goto undecided;
    }
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    /* params: no key twice (any case); rport / received only in their plain lower-case forms */
    Py_ssize_t keys[32][2];
    int nk = 0, rport_bare = -1, has_rport_val = 0, has_received = 0;
    Py_ssize_t br0 = -1, br1 = -1;
    for (Py_ssize_t q = tm.q0; q < tm.q1;) {
        Py_ssize_t s = q + 1, e = s;
        while (e < tm.q1 && v[e] != ';') e++;
        Py_ssize_t eq = s;
        while (eq < e && v[eq] != '=') eq++;
        if (nk == 32) goto undecided;
        for (int k = 0; k < nk; k++)
            if (keys[k][1] - keys[k][0] == eq - s) {
                Py_ssize_t x = 0;
                while (x < eq - s && LOWER(v[keys[k][0] + x]) == LOWER(v[s + x])) x++;
                if (x == eq - s) goto undecided;
            }
        keys[nk][0] = s; keys[nk][1] = eq; nk++;
        if (e - s >= 5 && name_is(v + s, 5, "rport")) {
            if (eq - s != 5 || memcmp(v + s, "rport", 5) != 0) goto undecided;
            if (eq == e) rport_bare = (int)s;
            else {
                if (e - eq - 1 < 1 || e - eq - 1 > 5) goto undecided;
                for (Py_ssize_t x = eq + 1; x < e; x++) if (!DIG(v[x])) goto undecided;
                has_rport_val = 1;
            }
        }
        if (e - s >= 9 && name_is(v + s, 9, "received=")) has_received = 1;
        if (e - s == 8 && name_is(v + s, 8, "received")) goto undecided;   /* bare: as the Python version */
        if (br0 < 0 && e - s >= 7 && memcmp(v + s, "branch=", 7) == 0) { br0 = s + 7; br1 = e; }
        q = e;
    }
    if (br0 < 0) goto undecided;
    if (has_received || has_rport_val) goto undecided;      /* the sender wrote its own: Python overwrites it */
    if (!all_ascii(v + br0, br1 - br0)) goto undecided;
    /* the stamped Via: rport=<source port> for a bare rport, received=<source> if the host differs */
    char add[96];
    int addl = 0;
    {
        Py_ssize_t hl = tm.h1 - tm.h0;
        int same = hl == ipl;
        for (Py_ssize_t x = 0; same && x < hl; x++) if (LOWER(v[tm.h0 + x]) != ip[x]) same = 0;
        if (!same && !has_received) addl = snprintf(add, sizeof add, ";received=%.*s", (int)ipl, ip);
    }
    char rp[16];
    int rpl = rport_bare >= 0 ? snprintf(rp, sizeof rp, "=%ld", sport) : 0;
    /* Call-ID, tags: ASCII (the Python path decodes anything else) */
    const char *cid = d + hv[R_CALLID][0], *cide = d + hv[R_CALLID][1];
    while (cid < cide && (*cid == ' ' || *cid == '\t')) cid++;
    while (cide > cid && (cide[-1] == ' ' || cide[-1] == '\t')) cide--;
    if (!all_ascii(cid, cide - cid) || !all_ascii(tv + tt0, tt1 - tt0) || (has_ftag && !all_ascii(fv + ft0, ft1 - ft0)))
        goto undecided;
    /* out = data with the top Via value and the Max-Forwards value replaced */
    char mfs[8];
    int mfl = snprintf(mfs, sizeof mfs, "%ld", mfv - 1);
    Py_ssize_t newvl = vl + rpl + addl;
    Py_ssize_t outl = len - (via_ve - via_vs) + newvl - (mf_ve - mf_vs) + mfl - (rt_ls >= 0 ? rt_ve - rt_ls : 0);
    out = PyMem_Malloc(outl);
    if (!out) { PyErr_NoMemory(); goto done; }
    Py_ssize_t o = 0, pos = 0, cut = -1;
    /* the edits in the order they occur: the top Via's value, Max-Forwards' value, our Route's line (if any) */
    Py_ssize_t ed[3][2] = {{via_vs, via_ve}, {mf_vs, mf_ve}, {rt_ls, rt_ve}};
    int ne = rt_ls >= 0 ? 3 : 2;
    for (int x = 1; x < ne; x++)
        for (int y = x; y > 0 && ed[y][0] < ed[y - 1][0]; y--) {
            Py_ssize_t t0 = ed[y][0], t1 = ed[y][1];
            ed[y][0] = ed[y - 1][0]; ed[y][1] = ed[y - 1][1]; ed[y - 1][0] = t0; ed[y - 1][1] = t1;
        }
    for (int pass = 0; pass < ne; pass++) {
        Py_ssize_t es = ed[pass][0], ee = ed[pass][1];
        int is_via = (es == via_vs);
        if (es == rt_ls) {
            memcpy(out + o, d + pos, es - pos); o += es - pos;       /* removed */
        } else if (is_via) {
            memcpy(out + o, d + pos, via_ls - pos); o += via_ls - pos;
            cut = o;                                         /* our Via goes before the top Via line */
            memcpy(out + o, d + via_ls, es - via_ls); o += es - via_ls;
            if (rport_bare >= 0) {
                Py_ssize_t after = (Py_ssize_t)rport_bare + 5;    /* right after "rport" */
                memcpy(out + o, v, after); o += after;
                memcpy(out + o, rp, rpl); o += rpl;
                memcpy(out + o, v + after, vl - after); o += vl - after;
            } else {
                memcpy(out + o, v, vl); o += vl;
            }
            memcpy(out + o, add, addl); o += addl;
        } else {
            memcpy(out + o, d + pos, es - pos); o += es - pos;
            memcpy(out + o, mfs, mfl); o += mfl;
        }
        pos = ee;
    }
    memcpy(out + o, d + pos, len - pos); o += len - pos;
    if (o != outl) { PyErr_SetString(PyExc_SystemError, "in_dialog: length"); goto done; }
    /* branch value as stamped: unchanged by the edits (they only touch rport and the end) */
    char base[MAX_FAST_REQUEST * 2];
    Py_ssize_t bl = 0;
#define PUT(p, n) do { memcpy(base + bl, (p), (n)); bl += (n); } while (0)
    PUT(u, ul); PUT("|", 1); PUT(cid, cide - cid); PUT("|", 1); PUT(cseq_num, cseq_numl); PUT("|", 1);
    if (has_ftag) PUT(fv + ft0, ft1 - ft0);
    PUT("|", 1); PUT(tv + tt0, tt1 - tt0); PUT("|", 1);
#undef PUT
    char host[300];
    const char *hp = u + h0;
    Py_ssize_t hl = h1 - h0;
    if (hp[0] == '[') { hp++; hl -= 2; }
    if (hl <= 0 || hl >= (Py_ssize_t)sizeof host) goto undecided;
    for (Py_ssize_t x = 0; x < hl; x++) host[x] = (char)LOWER(hp[x]);
    res = Py_BuildValue("(s#y#y#s#s#(s#ls)s#s#)", d, ml, out, cut, out + cut, outl - cut,
                        v + br0, br1 - br0, base, bl, host, hl, port, transport,
                        cid, cide - cid, tv + tt0, tt1 - tt0);
    goto done;
undecided:
    res = Py_None;
    Py_INCREF(res);
done:
    PyMem_Free(out);
    PyBuffer_Release(&b);
    return res;
}
