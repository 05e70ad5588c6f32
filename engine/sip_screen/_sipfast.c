/* The response fast path of the SIP screen in C (fastpath.relay_response's plain case). No I/O.
 *
 * Theory of operation: relay_response(data, our_via_prefixes) does what fastpath.py's Python
 * relay_response does, for the plain messages that are nearly all of the traffic, in one pass
 * over the head: every line CRLF-terminated and `token [ \t]* : value`, exactly one
 * Content-Length equal to the body length, no quotes in Vias, the top Via ours and the next Via
 * in its plain form. It returns the same values as the Python function: the tuple
 * (bytes to send, (host, port, TRANSPORT), b"Call-ID CSeq-number" of a final response to an
 * INVITE or b""), or () for
 * "not ours". A response bound for a TCP Via is undecided too (fastpath.py: the full path picks its
 * connection). Whenever anything is less than plain it returns None, which means "undecided":
 * the caller then runs the Python function, which decides (itself possibly deferring to the full
 * parse). So this code can only ever agree with the Python path; tests/test_sip_fuzz.py checks
 * that on mutated messages.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE                      /* recvmmsg(2), for the pump */
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>               /* T_OBJECT_EX, READONLY: SipMessage's slots (_sipmsg.h) */

/* ASCII classes (the C library's depend on the locale Python sets) */
#define DIG(c) ((c) >= '0' && (c) <= '9')
#define HEX(c) (DIG(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define ALNUM(c) (DIG(c) || ((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define LOWER(c) ((c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c))

#define MAX_FAST_RESPONSE 8000
#define MAX_HEADERS 64

/* METH_FASTCALL's argument checks: what PyArg_ParseTuple's "O!", "U" and "y*" check, without its format's parse and
 * the arguments' tuple (~700 instructions a call of the functions an INVITE calls from Python: instrbench) */
static int fc_count(const char *fn, Py_ssize_t n, Py_ssize_t want) {
    if (n == want) return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", fn, want, n);
    return -1;
}

static int fc_type(const char *fn, int i, PyObject *o, PyTypeObject *t) {
    if (PyObject_TypeCheck(o, t)) return 0;
    PyErr_Format(PyExc_TypeError, "%s() argument %d must be %.50s, not %.50s", fn, i + 1, t->tp_name, Py_TYPE(o)->tp_name);
    return -1;
}

static int fc_buffer(const char *fn, int i, PyObject *o, Py_buffer *b) {      /* "y*": bytes-like, not str */
    if (!PyUnicode_Check(o) && PyObject_GetBuffer(o, b, PyBUF_SIMPLE) == 0) return 0;
    if (!PyErr_Occurred() || PyUnicode_Check(o))
        PyErr_Format(PyExc_TypeError, "%s() argument %d must be a bytes-like object, not %.50s", fn, i + 1,
                     Py_TYPE(o)->tp_name);
    return -1;
}

/* the member of class `t`'s slot `name` (*m NULL: not a plain writable object slot); -1: an error is set. A new
 * object's slots are written through their members' offsets: a setattr looked the descriptor up and called it */
static int slot_member(PyObject *t, PyObject *name, PyMemberDef **m) {
    PyObject *d = PyObject_GetAttr(t, name);              /* (a class's member descriptor is itself) */
    if (!d) return -1;
    *m = Py_IS_TYPE(d, &PyMemberDescr_Type) ? ((PyMemberDescrObject *)d)->d_member : NULL;
    Py_DECREF(d);                                         /* (the type holds it, and we the type) */
    if (*m && ((*m)->type != T_OBJECT_EX || ((*m)->flags & READONLY))) *m = NULL;
    return 0;
}

typedef struct { Py_ssize_t ls, vs, ve; int kind; } hdr;   /* line start ("\r\n" before name), value span */

enum { H_OTHER, H_VIA, H_CL, H_CSEQ, H_CALLID };

/* RFC 3261 §25.1 token characters: alphanumerics and -.!%*_+`'~ (a table: a header name's every byte is looked at) */
static unsigned char token_chars[256];

static void token_init(void) {
    for (int c = 0; c < 256; c++)
        token_chars[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                         || (c && strchr("-.!%*_+`'~", c) != NULL);
}

static inline int is_token(unsigned char c) { return token_chars[c]; }

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

/* The host of fastpath's _NEXT and _URI, ([0-9A-Za-z.\-]+|\[[0-9A-Fa-f:.]+\]), from p[i]: where it ends, -1 for
 * none (RFC 3261 §25.1 host: a name, an IPv4 address or an IPv6 reference, read loosely as the patterns do).
 * inline: out of line (gcc -O2) it cost each relayed response ~30 instructions more (instrbench) */
static inline Py_ssize_t host_end(const char *p, Py_ssize_t n, Py_ssize_t i) {
    Py_ssize_t s;
    if (i < n && p[i] == '[') {
        s = ++i;
        while (i < n && (HEX(p[i]) || p[i] == ':' || p[i] == '.')) i++;
        if (i == s || i >= n || p[i] != ']') return -1;
        return i + 1;
    }
    s = i;
    while (i < n && (ALNUM(p[i]) || p[i] == '.' || p[i] == '-')) i++;
    return i == s ? -1 : i;
}

#include "_sipvia.h"                     /* match_next, plain_via, odd_bytes, next_hop */

#include "_sipscan.h"                    /* has, head_end, crlf_only */

/* the header line after the CRLF at ls, up to the next CR (he: where the head ends):
 * `token [ \t]* ":" [ \t]* value`; fills the name's end and the value's span, else returns 0 */
static int header_line(const char *d, Py_ssize_t he, Py_ssize_t ls, Py_ssize_t *ne, Py_ssize_t *vs, Py_ssize_t *ve) {
    Py_ssize_t s = ls + 2, j = s;
    while (j < he && is_token((unsigned char)d[j])) j++;
    if (j == s) return 0;
    *ne = j;
    while (j < he && (d[j] == ' ' || d[j] == '\t')) j++;
    if (j >= he || d[j] != ':') return 0;
    j++;
    while (j < he && (d[j] == ' ' || d[j] == '\t')) j++;
    const char *cr = j < he ? memchr(d + j, '\r', (size_t)(he - j)) : NULL;
    *vs = j; *ve = cr ? cr - d : (j < he ? he : j);
    return 1;
}

static PyObject *relay_plain(const char *d, Py_ssize_t len, PyObject *prefixes);

static PyObject *relay_response(PyObject *self, PyObject *args) {
    Py_buffer b;
    PyObject *prefixes;
    if (!PyArg_ParseTuple(args, "y*O!", &b, &PyTuple_Type, &prefixes)) return NULL;
    PyObject *res = relay_plain(b.buf, b.len, prefixes);
    PyBuffer_Release(&b);
    return res;
}

/* relay_response's answer for the bytes d[0:len] (the pump calls it so, no arguments' tuple to pack and parse) */
static PyObject *relay_plain(const char *d, Py_ssize_t len, PyObject *prefixes) {
    PyObject *res = NULL;
    hdr hs[MAX_HEADERS];
    int nh = 0;
    if (len > MAX_FAST_RESPONSE || len < 13 || memcmp(d, "SIP/2.0 ", 8) != 0 || d[8] < '1' || d[8] > '6'
            || !DIG(d[9]) || !DIG(d[10]) || d[11] != ' ')
        goto undecided;
    Py_ssize_t he = head_end(d, len);
    if (he < 0) goto undecided;
    /* every CR is followed by LF and every LF preceded by CR, in the head incl. its last CRLF */
    if (!crlf_only(d, 0, he + 2)) goto undecided;
    Py_ssize_t ls = (const char *)memchr(d, '\r', (size_t)(he + 2)) - d;      /* the first CRLF (he's, if no other) */
    while (ls < he) {
        Py_ssize_t s = ls + 2, ne, j, ve;
        if (!header_line(d, he, ls, &ne, &j, &ve)) goto undecided;
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
            if (memchr(d + h->vs, '"', h->ve - h->vs) || memchr(d + h->vs, '<', h->ve - h->vs)) goto undecided;
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
    const char *comma = memchr(v, ',', vl);
    Py_ssize_t fl = comma ? comma - v : vl;
    nextm m;
    if (!plain_via(v, fl, &m)) goto undecided;
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
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(dest, 2), "TCP") == 0) {
        Py_DECREF(out); Py_DECREF(dest);        /* RFC 3261 §18.2.2: the connection is the full path's choice */
        goto undecided;
    }
    char key[MAX_FAST_RESPONSE + 2];
    Py_ssize_t keyl = 0;
    if (d[8] != '1' && cseq >= 0 && callid >= 0) {          /* a final response to an INVITE */
        const char *cs = d + hs[cseq].vs, *ce = d + hs[cseq].ve;
        while (ce > cs && is_space((unsigned char)ce[-1])) ce--;
        if (ce - cs >= 6 && name_is(ce - 6, 6, "invite")) {
            const char *a = d + hs[callid].vs, *z = d + hs[callid].ve;
            while (a < z && (*a == ' ' || *a == '\t')) a++;
            while (z > a && (z[-1] == ' ' || z[-1] == '\t')) z--;
            while (cs < ce && is_space((unsigned char)*cs)) cs++;
            const char *te = cs;
            while (te < ce && !is_space((unsigned char)*te)) te++;
            memcpy(key, a, z - a); keyl = z - a;
            key[keyl++] = ' ';
            memcpy(key + keyl, cs, te - cs); keyl += te - cs;
        }
    }
    PyObject *kb = PyBytes_FromStringAndSize(key, keyl);      /* (out, dest, key): no Py_BuildValue format to parse */
    if (!kb || !(res = PyTuple_New(3))) { Py_DECREF(out); Py_DECREF(dest); Py_XDECREF(kb); goto done; }
    PyTuple_SET_ITEM(res, 0, out);
    PyTuple_SET_ITEM(res, 1, dest);
    PyTuple_SET_ITEM(res, 2, kb);
    goto done;
done_or_undecided_nh:
    if (r < 0) goto done;              /* an exception is set */
undecided:
    res = Py_None;
    Py_INCREF(res);
done:
    return res;
}

/* ------------------------------------------------------------ in-dialog requests */

#include "_sipdialog.h"

/* ------------------------------------------------------------ the branch hash */

/* the branch hash of server._branch (hashlib.blake2b(key, digest_size=10)), computed here so the pump
 * needs no Python call for it: the BLAKE2b shared with engine/_textnorm.c */
#include "../_blake2b.h"

/* digest_size of blake2b_hex / blake2b_digest ("i": an int in C's int range, else -1 with the error) */
static int fc_size(PyObject *o) {
    if (!PyLong_Check(o)) { PyErr_SetString(PyExc_TypeError, "digest_size: an int"); return -1; }
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    return v < 1 || v > 64 ? 0 : (int)v;                   /* (0: out of range, refused below) */
}

/* blake2b_hex(data, digest_size) -> str: hashlib.blake2b(data, digest_size=n).hexdigest() (routing._branch) */
static PyObject *blake2b_hex(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer b;
    int n;
    if (fc_count("blake2b_hex", nargs, 2) < 0 || (n = fc_size(args[1])) < 0
            || fc_buffer("blake2b_hex", 0, args[0], &b) < 0) return NULL;
    if (n < 1 || n > 64) { PyBuffer_Release(&b); PyErr_SetString(PyExc_ValueError, "digest_size: 1 to 64"); return NULL; }
    uint8_t d[64];
    char hex[129];
    blake2b(d, (size_t)n, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    for (int i = 0; i < n; i++) { hex[2 * i] = "0123456789abcdef"[d[i] >> 4]; hex[2 * i + 1] = "0123456789abcdef"[d[i] & 15]; }
    return PyUnicode_DecodeASCII(hex, 2 * n, NULL);
}

/* blake2b_digest(data, digest_size) -> bytes: hashlib.blake2b(data, digest_size=n).digest() (recent.ack_key) */
static PyObject *blake2b_digest(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer b;
    int n;
    if (fc_count("blake2b_digest", nargs, 2) < 0 || (n = fc_size(args[1])) < 0
            || fc_buffer("blake2b_digest", 0, args[0], &b) < 0) return NULL;
    if (n < 1 || n > 64) { PyBuffer_Release(&b); PyErr_SetString(PyExc_ValueError, "digest_size: 1 to 64"); return NULL; }
    uint8_t d[64];
    blake2b(d, (size_t)n, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return PyBytes_FromStringAndSize((const char *)d, n);
}

#include "_sippump.h"

#include "_siphead.h"
#include "_sipgrammar.h"                 /* parse_uri, parse_name_addr, parse_via, split_list twins */
#include "_sipcheck.h"                   /* check_plain: check_request's pass */
#include "_siprecent.h"                  /* RecentCore: recent.Recent's hot methods */
#include "_sipmsg.h"                     /* parse_request, join_message: parse_datagram's and to_bytes's plain cases */

static PyMethodDef methods[] = {
    {"relay_response", relay_response, METH_VARARGS, "fastpath.relay_response for plain responses; None: undecided"},
    {"in_dialog", in_dialog, METH_VARARGS, "fastpath.in_dialog for plain in-dialog requests; None: undecided"},
    {"split_head", split_head, METH_VARARGS, "codec._parse_head's plain pass: (start line, headers); None: undecided"},
    {"blake2b_hex", (PyCFunction)(void (*)(void))blake2b_hex, METH_FASTCALL, "hashlib.blake2b(data, digest_size=n).hexdigest()"},
    {"blake2b_digest", (PyCFunction)(void (*)(void))blake2b_digest, METH_FASTCALL, "hashlib.blake2b(data, digest_size=n).digest()"},
    {"parse_uri", py_parse_uri, METH_O, "grammar.parse_uri for a plain URI; None: undecided"},
    {"uri_user", py_uri_user, METH_O, "grammar.parse_uri(uri).user for a plain URI, no SipUri built; None: undecided"},
    {"parse_name_addr", py_parse_name_addr, METH_O, "grammar.parse_name_addr for a plain value; None: undecided"},
    {"parse_via", py_parse_via, METH_O, "grammar.parse_via for a plain Via value; None: undecided"},
    {"set_types", set_types, METH_VARARGS, "the classes the twins build: (SipUri, NameAddr, Via)"},
    {"parse_request", (PyCFunction)(void (*)(void))parse_request, METH_FASTCALL, "codec.parse_datagram for a plain request: its SipMessage; None: undecided"},
    {"header_index", (PyCFunction)(void (*)(void))header_index, METH_FASTCALL, "the index of the first header of a canonical name, -1: none"},
    {"stamp_params", (PyCFunction)(void (*)(void))stamp_params, METH_FASTCALL, "routing._stamp_received's received/rport rewrite; None: Python"},
    {"to_values", to_values, METH_O, "fastpath._TO.findall over a message's head; None: no blank line"},
    {"set_message_type", set_message_type, METH_VARARGS, "the class parse_request builds: (SipMessage, defaults)"},
    {"to_tag", to_tag, METH_O, "fastpath.response_to_tag's reading of a plain To value; None: not plain"},
    {"digest", digest, METH_VARARGS, "recent.digest: hash(parts)"},
    {"dialog_digest", (PyCFunction)(void (*)(void))dialog_digest, METH_FASTCALL, "recent.dialog_digest: keyed BLAKE2b of parts, 64 bits"},
    {"join_message", (PyCFunction)(void (*)(void))join_message, METH_FASTCALL, "SipMessage.to_bytes for ASCII heads; None: undecided"},
    {"check_plain", (PyCFunction)(void (*)(void))check_plain, METH_FASTCALL, "checks.check_request's pass when it proceeds; None: undecided"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_sipfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__sipfast(void) {
    token_init();
    if (PyType_Ready(&PumpType) < 0 || PyType_Ready(&RecentCoreType) < 0) return NULL;
    if (!zero_now && !(zero_now = PyFloat_FromDouble(0.0))) return NULL;
    if (!(str_put = PyUnicode_InternFromString("put"))
            || !(rc_put_descr = PyDict_GetItemWithError(RecentCoreType.tp_dict, str_put)))     /* (borrowed: the type's) */
        return NULL;
    if (!(K_RESPONSES = PyUnicode_InternFromString("responses")) || !(K_REQUESTS = PyUnicode_InternFromString("requests"))
            || !(K_FAST = PyUnicode_InternFromString("fast_path")) || !(K_DROPPED = PyUnicode_InternFromString("dropped"))
            || !(K_INTERNAL = PyUnicode_InternFromString("internal_errors"))
            || !(K_REFUSED = PyUnicode_InternFromString("source_refused")) || check_init() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&mod);
    if (!m) return NULL;
    Py_INCREF(&PumpType);
    if (PyModule_AddObject(m, "Pump", (PyObject *)&PumpType) < 0) { Py_DECREF(&PumpType); Py_DECREF(m); return NULL; }
    Py_INCREF(&RecentCoreType);
    if (PyModule_AddObject(m, "RecentCore", (PyObject *)&RecentCoreType) < 0) {
        Py_DECREF(&RecentCoreType); Py_DECREF(m); return NULL;
    }
    return m;
}
