/* The response fast path of the SIP screen in C (fastpath.relay_response's plain case). No I/O.
 *
 * Theory of operation: relay_response(data, our_via_prefixes) does what fastpath.py's Python
 * relay_response does, for the plain messages that are nearly all of the traffic, in one pass
 * over the head: every line CRLF-terminated and `token [ \t]* : value`, exactly one
 * Content-Length equal to the body length, no quotes in Vias, the top Via ours and the next Via
 * in its plain form. It returns the same values as the Python function: the tuple
 * (bytes to send, (host, port, TRANSPORT), Call-ID of an answered INVITE or b""), or () for
 * "not ours". Whenever anything is less than plain it returns None, which means "undecided":
 * the caller then runs the Python function, which decides (itself possibly deferring to the full
 * parse). So this code can only ever agree with the Python path; tests/test_sip_fuzz.py checks
 * that on mutated messages.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* ASCII classes (the C library's depend on the locale Python sets) */
#define DIG(c) ((c) >= '0' && (c) <= '9')
#define HEX(c) (DIG(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define ALNUM(c) (DIG(c) || ((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define LOWER(c) ((c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c))

#define MAX_FAST_RESPONSE 8000
#define MAX_HEADERS 64

typedef struct { Py_ssize_t ls, vs, ve; int kind; } hdr;   /* line start ("\r\n" before name), value span */

enum { H_OTHER, H_VIA, H_CL, H_CSEQ, H_CALLID };

static int is_token(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c && strchr("-.!%*_+`'~", c) != NULL;
}

static int name_is(const char *p, Py_ssize_t n, const char *want) {
    Py_ssize_t w = (Py_ssize_t)strlen(want);
    if (n != w) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c != want[i]) return 0;
    }
    return 1;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

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
    if (i < n && p[i] == '[') {
        i++;
        Py_ssize_t s = i;
        while (i < n && (HEX(p[i]) || p[i] == ':' || p[i] == '.')) i++;
        if (i == s || i >= n || p[i] != ']') return 0;
        i++;
    } else {
        Py_ssize_t s = i;
        while (i < n && (ALNUM(p[i]) || p[i] == '.' || p[i] == '-')) i++;
        if (i == s) return 0;
    }
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

/* next_hop() of fastpath.py for the plain forms; 0 = undecided (the caller returns None) */
static int next_hop(const char *p, Py_ssize_t n, PyObject **out) {
    nextm m;
    while (n > 0 && is_space((unsigned char)p[0])) { p++; n--; }
    while (n > 0 && is_space((unsigned char)p[n - 1])) n--;
    if (!match_next(p, n, &m)) return 0;
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
    *out = Py_BuildValue("(Nls#)", h, port, p + m.t0, (Py_ssize_t)3);
    return *out ? 1 : -1;
}

static int has(const char *p, Py_ssize_t n, const char *needle) {
    Py_ssize_t w = (Py_ssize_t)strlen(needle);
    for (Py_ssize_t i = 0; i + w <= n; i++)
        if (p[i] == needle[0] && memcmp(p + i, needle, w) == 0) return 1;
    return 0;
}

static PyObject *relay_response(PyObject *self, PyObject *args) {
    Py_buffer b;
    PyObject *prefixes;
    if (!PyArg_ParseTuple(args, "y*O!", &b, &PyTuple_Type, &prefixes)) return NULL;
    const char *d = b.buf;
    Py_ssize_t len = b.len;
    PyObject *res = NULL;
    hdr hs[MAX_HEADERS];
    int nh = 0;
    if (len > MAX_FAST_RESPONSE || len < 13 || memcmp(d, "SIP/2.0 ", 8) != 0 || d[8] < '1' || d[8] > '6'
            || !DIG(d[9]) || !DIG(d[10]) || d[11] != ' ')
        goto undecided;
    Py_ssize_t he = -1;
    for (Py_ssize_t i = 0; i + 3 < len; i++)
        if (d[i] == '\r' && d[i + 1] == '\n' && d[i + 2] == '\r' && d[i + 3] == '\n') { he = i; break; }
    if (he < 0) goto undecided;
    /* every CR is followed by LF and every LF preceded by CR, in the head incl. its last CRLF */
    Py_ssize_t i = 0, first_crlf = -1;
    for (i = 0; i < he + 2; i++) {
        if (d[i] == '\r') {
            if (d[i + 1] != '\n') goto undecided;
            if (first_crlf < 0) first_crlf = i;
        } else if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r')) goto undecided;
    }
    /* header lines: "\r\n" token [ \t]* ":" [ \t]* value */
    Py_ssize_t ls = first_crlf;
    while (ls < he) {
        Py_ssize_t s = ls + 2, j = s;
        while (j < he && is_token((unsigned char)d[j])) j++;
        if (j == s) goto undecided;
        Py_ssize_t ne = j;
        while (j < he && (d[j] == ' ' || d[j] == '\t')) j++;
        if (j >= he || d[j] != ':') goto undecided;
        j++;
        while (j < he && (d[j] == ' ' || d[j] == '\t')) j++;
        Py_ssize_t ve = j;
        while (ve < he && d[ve] != '\r') ve++;
        if (nh == MAX_HEADERS) goto undecided;
        hdr *h = &hs[nh++];
        h->ls = ls; h->vs = j; h->ve = ve;
        Py_ssize_t nl = ne - s;
        const char *np = d + s;
        h->kind = (name_is(np, nl, "via") || name_is(np, nl, "v")) ? H_VIA
                : (name_is(np, nl, "content-length") || name_is(np, nl, "l")) ? H_CL
                : name_is(np, nl, "cseq") ? H_CSEQ
                : (name_is(np, nl, "call-id") || name_is(np, nl, "i")) ? H_CALLID : H_OTHER;
        ls = ve;
    }
    int ncl = 0, top = -1, second = -1, cseq = -1, callid = -1;
    long clv = -1;
    for (int k = 0; k < nh; k++) {
        hdr *h = &hs[k];
        if (h->kind == H_CL) {
            if (++ncl > 1) goto undecided;
            Py_ssize_t a = h->vs, z = h->ve;
            while (z > a && (d[z - 1] == ' ' || d[z - 1] == '\t')) z--;
            if (z == a || z - a > 9) goto undecided;
            clv = 0;
            for (Py_ssize_t q = a; q < z; q++) {
                if (!DIG(d[q])) goto undecided;
                clv = clv * 10 + (d[q] - '0');
            }
        } else if (h->kind == H_VIA) {
            if (memchr(d + h->vs, '"', h->ve - h->vs)) goto undecided;
            if (top < 0) top = k; else if (second < 0) second = k;
        } else if (h->kind == H_CSEQ && cseq < 0) cseq = k;
        else if (h->kind == H_CALLID && callid < 0) callid = k;
    }
    if (ncl != 1 || clv != len - he - 4 || top < 0) goto undecided;
    const char *v = d + hs[top].vs;
    Py_ssize_t vl = hs[top].ve - hs[top].vs;
    int ours = 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(prefixes); k++) {
        PyObject *pf = PyTuple_GET_ITEM(prefixes, k);
        if (!PyBytes_Check(pf)) goto undecided;
        Py_ssize_t pl = PyBytes_GET_SIZE(pf);
        if (pl <= vl && memcmp(v, PyBytes_AS_STRING(pf), pl) == 0) { ours = 1; break; }
    }
    if (!ours) {
        if (has(v, vl, "z9hG4bKtf")) goto undecided;
        res = PyTuple_New(0);
        goto done;
    }
    if (memchr(v, '<', vl)) goto undecided;
    const char *comma = memchr(v, ',', vl);
    Py_ssize_t fl = comma ? comma - v : vl;
    nextm m;
    if (!match_next(v, fl, &m)) goto undecided;
    int nb = 0;
    for (Py_ssize_t q = 0; q + 7 <= fl; q++)
        if (v[q] == ';' && name_is(v + q, 7, ";branch")) nb++;
    if (nb != 1) goto undecided;
    PyObject *out;
    const char *nx;
    Py_ssize_t nxl;
    if (comma) {
        const char *r = comma + 1, *re = v + vl;
        while (r < re && is_space((unsigned char)*r)) r++;
        while (re > r && is_space((unsigned char)re[-1])) re--;
        const char *c2 = memchr(r, ',', re - r);
        nx = r; nxl = c2 ? c2 - r : re - r;
        Py_ssize_t a = hs[top].vs, z = hs[top].ve;
        out = PyBytes_FromStringAndSize(NULL, len - (z - a) + (re - r));
        if (!out) goto done;
        char *o = PyBytes_AS_STRING(out);
        memcpy(o, d, a); memcpy(o + a, r, re - r); memcpy(o + a + (re - r), d + z, len - z);
    } else {
        if (second < 0) { res = PyTuple_New(0); goto done; }
        const char *sv = d + hs[second].vs;
        Py_ssize_t sl = hs[second].ve - hs[second].vs;
        const char *c2 = memchr(sv, ',', sl);
        nx = sv; nxl = c2 ? c2 - sv : sl;
        Py_ssize_t a = hs[top].ls, z = hs[top].ve;
        out = PyBytes_FromStringAndSize(NULL, len - (z - a));
        if (!out) goto done;
        char *o = PyBytes_AS_STRING(out);
        memcpy(o, d, a); memcpy(o + a, d + z, len - z);
    }
    PyObject *dest = NULL;
    int r = next_hop(nx, nxl, &dest);
    if (r <= 0) { Py_DECREF(out); goto done_or_undecided_nh; }
    const char *cid = "";
    Py_ssize_t cidl = 0;
    if (d[8] == '2' && d[9] == '0' && d[10] == '0' && cseq >= 0) {
        const char *cs = d + hs[cseq].vs, *ce = d + hs[cseq].ve;
        while (ce > cs && is_space((unsigned char)ce[-1])) ce--;
        if (ce - cs >= 6 && name_is(ce - 6, 6, "invite") && callid >= 0) {
            const char *a = d + hs[callid].vs, *z = d + hs[callid].ve;
            while (a < z && (*a == ' ' || *a == '\t')) a++;
            while (z > a && (z[-1] == ' ' || z[-1] == '\t')) z--;
            cid = a; cidl = z - a;
        }
    }
    res = Py_BuildValue("(NNy#)", out, dest, cid, cidl);
    goto done;
done_or_undecided_nh:
    if (r < 0) goto done;              /* an exception is set */
undecided:
    res = Py_None;
    Py_INCREF(res);
done:
    PyBuffer_Release(&b);
    return res;
}

static PyMethodDef methods[] = {
    {"relay_response", relay_response, METH_VARARGS, "fastpath.relay_response for plain responses; None: undecided"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_sipfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__sipfast(void) { return PyModule_Create(&mod); }
