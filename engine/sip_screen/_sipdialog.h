/* The in-dialog request fast path of the SIP screen in C (fastpath.in_dialog's plain case): the decision and the
 * edit. Included by _sipfast.c (it uses that file's header_line and has, and _sipvia.h's match_next, odd_bytes and
 * plain_via; the fields' readers are _sipfields.h's). No I/O.
 *
 * Theory of operation: in_dialog(data, src_ip, src_port[, ours]) answers, for a plain in-dialog request
 * (a To tag; no Route, or one Route header that is exactly our own Record-Route -- fastpath._our_route --, which
 * goes as RFC 3261 §16.4 says; checked and edited as §16.3/§16.6 require), the same tuple as
 * fastpath.py's py_in_dialog, or None ("undecided": the Python function decides, itself possibly
 * deferring to the full parse). tests/test_sip_fuzz.py checks the agreement on mutated requests.
 */
#define MAX_FAST_REQUEST 1200

#include "_sipfields.h"

/* v (>= 0) in decimal at o, as snprintf's "%ld" writes it, at most 19 characters (no snprintf: ~2,000 instructions
 * each, three an ACK or BYE; also _sipmsg.h's port); its length */
static int put_dec(char *o, long v) {
    char t[20];
    int n = 0;
    do { t[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (int k = 0; k < n; k++) o[k] = t[n - 1 - k];
    return n;
}

/* in_dialog's answer, built as Py_BuildValue("(s#y#y#s#s#Os#s#)") built it (its format parsed at every request cost
 * ~2,000 instructions an ACK or BYE, instrbench): (method, out[:cut], out[cut:], branch, base, dest, call_id, to_tag);
 * `dest` a new reference, taken (and released on failure) */
static PyObject *dialog_result(const char *m, Py_ssize_t ml, const char *out, Py_ssize_t cut, Py_ssize_t outl,
                               const char *br, Py_ssize_t brl, const char *base, Py_ssize_t bl, PyObject *dest,
                               const char *cid, Py_ssize_t cidl, const char *tt, Py_ssize_t ttl) {
    PyObject *res = PyTuple_New(8);
    if (!res) { Py_DECREF(dest); return NULL; }
    PyObject *it[8] = {PyUnicode_FromStringAndSize(m, ml), PyBytes_FromStringAndSize(out, cut),
                       PyBytes_FromStringAndSize(out + cut, outl - cut), PyUnicode_FromStringAndSize(br, brl),
                       PyUnicode_FromStringAndSize(base, bl), dest, PyUnicode_FromStringAndSize(cid, cidl),
                       PyUnicode_FromStringAndSize(tt, ttl)};
    int ok = 1;
    for (int k = 0; k < 8; k++) {
        PyTuple_SET_ITEM(res, k, it[k]);            /* (a NULL item: the tuple's dealloc skips it) */
        ok = ok && it[k];
    }
    if (!ok) Py_CLEAR(res);
    return res;
}

/* in_dialog(data, src_ip, src_port[, ours[, hop]]) -> (method, before, after, top_branch, base, (host, port,
 * TRANSPORT), call_id, to_tag) or None (undecided: the Python in_dialog decides). `hop`: the configured next hop
 * (host, port, TRANSPORT) or None, where a request whose Request-URI names the screen itself goes */
static PyObject *dialog_plain(const char *d, Py_ssize_t len, const char *ip, Py_ssize_t ipl, long sport, PyObject *ours,
                              PyObject *hop);

static PyObject *in_dialog(PyObject *self, PyObject *args) {
    Py_buffer b;
    const char *ip;
    Py_ssize_t ipl;
    long sport;
    PyObject *ours = NULL;                                /* tuple of bytes: the starts of our Vias */
    PyObject *hop = NULL;                                 /* (host, port, TRANSPORT) or None: the next hop */
    if (!PyArg_ParseTuple(args, "y*s#l|O!O", &b, &ip, &ipl, &sport, &PyTuple_Type, &ours, &hop)) return NULL;
    PyObject *res = dialog_plain(b.buf, b.len, ip, ipl, sport, ours, hop);
    PyBuffer_Release(&b);
    return res;
}

/* in_dialog's answer for the bytes d[0:len] from ip:sport (the pump calls it so, no arguments' tuple to pack and
 * parse); `ours`, `hop`: NULL when not given */
static PyObject *dialog_plain(const char *d, Py_ssize_t len, const char *ip, Py_ssize_t ipl, long sport, PyObject *ours,
                              PyObject *hop) {
    PyObject *res = NULL;
    char *out = NULL;
    Py_ssize_t i;
    /* a source port is 0-65535 (rp below holds its text); any other value: the Python path writes it */
    if (len > MAX_FAST_REQUEST || len < 16 || ipl > 64 || !all_ascii(ip, ipl) || sport < 0 || sport > 65535)
        goto undecided;
    /* (a MESSAGE is judged in a dialog too: messaging.py; fastpath.NOT_IN_DIALOG) */
    if (memcmp(d, "INVITE ", 7) == 0 || memcmp(d, "CANCEL ", 7) == 0 || memcmp(d, "MESSAGE", 7) == 0) goto undecided;
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
    Py_ssize_t he = head_end(d, len);
    if (he < rl_end || !crlf_only(d, rl_end, he + 2)) goto undecided;
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
    /* the Request-URI: where it goes (host, port, transport) */
    const char *u = d + u0;
    Py_ssize_t ul = u1 - u0, h0, h1;
    long port;
    char transport[4];
    if (!ruri_hop(u, ul, &h0, &h1, &port, transport)) goto undecided;
    /* to us: on to the next hop, as routing._in_dialog_dest sends it (none configured: the full path decides) */
    int to_hop = names_us(u + h0, h1 - h0, port, ours);
    if (to_hop && !(hop && PyTuple_Check(hop) && PyTuple_GET_SIZE(hop) == 3)) goto undecided;
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
    /* the stamped Via: rport=<source port> for a bare rport, received=<source> if the host differs or there is an
       rport (RFC 3581 §4: even when identical) */
    char add[96];
    int addl = 0;
    {
        Py_ssize_t hl = tm.h1 - tm.h0;
        int same = hl == ipl;
        for (Py_ssize_t x = 0; same && x < hl; x++) if (LOWER(v[tm.h0 + x]) != ip[x]) same = 0;
        if ((!same || rport_bare >= 0) && !has_received) {      /* (ipl <= 64: checked above) */
            memcpy(add, ";received=", 10);
            memcpy(add + 10, ip, ipl);
            addl = 10 + (int)ipl;
        }
    }
    char rp[16];
    int rpl = 0;
    if (rport_bare >= 0) {
        rp[0] = '=';
        rpl = 1 + put_dec(rp + 1, sport);                  /* (0-65535: checked above) */
    }
    /* Call-ID, tags: ASCII (the Python path decodes anything else) */
    const char *cid = d + hv[R_CALLID][0], *cide = d + hv[R_CALLID][1];
    while (cid < cide && (*cid == ' ' || *cid == '\t')) cid++;
    while (cide > cid && (cide[-1] == ' ' || cide[-1] == '\t')) cide--;
    if (!all_ascii(cid, cide - cid) || !all_ascii(tv + tt0, tt1 - tt0) || (has_ftag && !all_ascii(fv + ft0, ft1 - ft0)))
        goto undecided;
    /* out = data with the top Via value and the Max-Forwards value replaced */
    char mfs[8];
    int mfl = put_dec(mfs, mfv - 1);                       /* (0-254) */
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
    if (to_hop) {
        Py_INCREF(hop);
        res = dialog_result(d, ml, out, cut, outl, v + br0, br1 - br0, base, bl, hop, cid, cide - cid, tv + tt0,
                            tt1 - tt0);
        goto done;
    }
    char host[300];
    const char *hp = u + h0;
    Py_ssize_t hl = h1 - h0;
    if (hp[0] == '[') { hp++; hl -= 2; }
    if (hl <= 0 || hl >= (Py_ssize_t)sizeof host) goto undecided;
    for (Py_ssize_t x = 0; x < hl; x++) host[x] = (char)LOWER(hp[x]);
    PyObject *dest = PyTuple_New(3);
    if (!dest) goto done;
    PyObject *dh = PyUnicode_FromStringAndSize(host, hl), *dp = PyLong_FromLong(port), *dt = PyUnicode_FromString(transport);
    PyTuple_SET_ITEM(dest, 0, dh);
    PyTuple_SET_ITEM(dest, 1, dp);
    PyTuple_SET_ITEM(dest, 2, dt);
    if (!dh || !dp || !dt) { Py_DECREF(dest); goto done; }
    res = dialog_result(d, ml, out, cut, outl, v + br0, br1 - br0, base, bl, dest, cid, cide - cid, tv + tt0, tt1 - tt0);
    goto done;
undecided:
    res = Py_None;
    Py_INCREF(res);
done:
    PyMem_Free(out);
    return res;
}
