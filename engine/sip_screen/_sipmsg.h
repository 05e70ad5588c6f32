/* A plain request datagram to its parts, and a message back to bytes, in C: codec.parse_datagram's and
 * SipMessage.to_bytes's plain cases. Included by _sipfast.c (after _siphead.h). No I/O.
 *
 * Theory of operation: parse_request(data, memo, canon) returns (method, uri, headers, body) -- what
 * parse_datagram's Python pass puts on the SipMessage (version SIP/2.0) -- when the datagram is a plain request:
 * no CRLF before its start line, a head ending at the first CRLF CRLF of at most MAX_HEADER_LINE bytes and plain as
 * split_head reads it, at most MAX_HEADERS header fields, the start line `token SP URI SP SIP/2.0` (no '<', '>' or
 * space in the URI), and every Content-Length plain ASCII digits, all the same, at most the body's length (the body
 * is cut to it). Anything else returns None and the Python pass decides, errors and their answers included.
 * join_message(start line, headers, body) returns to_bytes()'s bytes when the start line, header names and values
 * are ASCII (else None: the Python join encodes them with surrogateescape). tests/test_sip_grammar_c.py compares
 * both with the Python functions.
 */

#define MAX_HEADER_LINE 8192                                /* codec.MAX_HEADER_LINE */
#define MAX_HEADER_FIELDS 256                               /* codec.MAX_HEADERS */

static PyObject *T_MSG, *MSG_REST, *F_METHOD, *F_MURI, *F_HEADERS, *F_BODY;  /* message.SipMessage, (slot, default) */
/* SipMessage's slots as their members (method, uri, headers, body, then MSG_REST's, in order), written straight into
 * a new message (PyObject_GenericSetAttr looked each descriptor up and called it: ~160 instructions a slot, 17 a
 * request); MSG_NSLOTS 0: not every one a plain object slot, the setattr path */
#define MSG_MAX_SLOTS 32
static PyMemberDef *MSG_SLOTS[MSG_MAX_SLOTS];
static Py_ssize_t MSG_NSLOTS;

/* a new empty default of `v` (a type stands for a new empty one of it), else `v` */
static PyObject *slot_default(PyObject *v) {
    if (!PyType_Check(v)) return Py_NewRef(v);
    if (v == (PyObject *)&PyDict_Type) return PyDict_New();
    if (v == (PyObject *)&PyList_Type) return PyList_New(0);
    return PyObject_CallNoArgs(v);
}

/* message.SipMessage(method, uri, headers=headers, body=body) without running its __init__: the other slots from
 * MSG_REST, taken from a SipMessage() by message.py (a type there stands for a new empty one of it: `_na`'s dict) */
static PyObject *new_message(PyObject *method, PyObject *uri, PyObject *headers, PyObject *body) {
    static PyObject *empty;
    if (!empty && !(empty = PyTuple_New(0))) return NULL;
    PyObject *o = PyBaseObject_Type.tp_new((PyTypeObject *)T_MSG, empty, NULL);
    if (!o) return NULL;
    if (MSG_NSLOTS) {                                     /* each slot empty (NULL) in a new object */
        PyObject *first[4] = {method, uri, headers, body};
        for (Py_ssize_t i = 0; i < MSG_NSLOTS; i++) {
            PyObject *v = i < 4 ? Py_NewRef(first[i]) : slot_default(PyTuple_GET_ITEM(PyTuple_GET_ITEM(MSG_REST, i - 4), 1));
            if (!v) goto fail;
            Py_XSETREF(*(PyObject **)((char *)o + MSG_SLOTS[i]->offset), v);
        }
        return o;
    }
    if (PyObject_GenericSetAttr(o, F_METHOD, method) < 0 || PyObject_GenericSetAttr(o, F_MURI, uri) < 0
            || PyObject_GenericSetAttr(o, F_HEADERS, headers) < 0 || PyObject_GenericSetAttr(o, F_BODY, body) < 0)
        goto fail;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(MSG_REST); i++) {
        PyObject *kv = PyTuple_GET_ITEM(MSG_REST, i), *v = PyTuple_GET_ITEM(kv, 1);
        v = slot_default(v);
        int e = !v || PyObject_GenericSetAttr(o, PyTuple_GET_ITEM(kv, 0), v) < 0;
        Py_XDECREF(v);
        if (e) goto fail;
    }
    return o;
fail:
    Py_DECREF(o);
    return NULL;
}

static PyObject *set_message_type(PyObject *self, PyObject *args) {
    PyObject *t, *rest;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &t, &PyTuple_Type, &rest)) return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(rest); i++) {
        PyObject *kv = PyTuple_GET_ITEM(rest, i);
        if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(kv, 0)))
            return PyErr_Format(PyExc_TypeError, "set_message_type: (slot name, default) pairs");
    }
    if (!F_METHOD && (!(F_METHOD = PyUnicode_InternFromString("method")) || !(F_MURI = PyUnicode_InternFromString("uri"))
                      || !(F_HEADERS = PyUnicode_InternFromString("headers"))
                      || !(F_BODY = PyUnicode_InternFromString("body"))))
        return NULL;
    Py_XSETREF(T_MSG, Py_NewRef(t));
    Py_XSETREF(MSG_REST, Py_NewRef(rest));
    MSG_NSLOTS = 0;
    Py_ssize_t n = 4 + PyTuple_GET_SIZE(rest);
    if (n > MSG_MAX_SLOTS) Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = i == 0 ? F_METHOD : i == 1 ? F_MURI : i == 2 ? F_HEADERS : i == 3 ? F_BODY
                         : PyTuple_GET_ITEM(PyTuple_GET_ITEM(rest, i - 4), 0);
        if (slot_member(t, name, &MSG_SLOTS[i]) < 0) return NULL;
        if (!MSG_SLOTS[i]) Py_RETURN_NONE;                /* (not a plain slot: the setattr path) */
    }
    MSG_NSLOTS = n;
    Py_RETURN_NONE;
}

static PyObject *parse_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer b;
    PyObject *memo, *canon, *split = NULL, *res = NULL;
    if (fc_count("parse_request", nargs, 3) < 0 || fc_type("parse_request", 1, args[1], &PyDict_Type) < 0
            || fc_buffer("parse_request", 0, args[0], &b) < 0) return NULL;
    memo = args[1], canon = args[2];
    const char *d = b.buf;
    Py_ssize_t n = b.len, he = -1, i;
    if (n == 0 || d[0] == '\r' || d[0] == '\n') goto undecided;
    he = head_end(d, n);                            /* (_sipfast.c: memchr from CR to CR; glibc's memmem ~1,600) */
    if (he < 0 || he > MAX_HEADER_LINE) goto undecided;
    /* the start line: token SP request-URI SP "SIP/2.0" */
    Py_ssize_t sl = find(d, he, '\r'), ms, us;
    if (sl < 0) goto undecided;
    for (ms = 0; ms < sl && is_token(d[ms]); ms++) {}
    if (ms == 0 || ms >= sl || d[ms] != ' ') goto undecided;
    for (us = ms + 1; us < sl && d[us] != ' '; us++)
        if (d[us] == '<' || d[us] == '>' || (unsigned char)d[us] < 0x21 || (unsigned char)d[us] >= 0x7f) goto undecided;
    if (us == ms + 1 || sl - us != 8 || memcmp(d + us, " SIP/2.0", 8) != 0) goto undecided;
    split = head_fields((const unsigned char *)d, he, memo, canon);
    if (!split) goto done;
    if (split == Py_None) goto undecided;
    PyObject *headers = PyTuple_GET_ITEM(split, 1);
    if (PyList_GET_SIZE(headers) > MAX_HEADER_FIELDS) goto undecided;
    Py_ssize_t body = he + 4, cl = -1;
    for (i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *h = PyList_GET_ITEM(headers, i), *c = PyList_GET_ITEM(h, 2);
        if (!PyUnicode_Check(c) || PyUnicode_CompareWithASCIIString(c, "content-length") != 0) continue;
        Py_ssize_t vn;
        const char *v = plain_text(PyList_GET_ITEM(h, 1), &vn);
        if (!v || vn < 1 || vn > 10) goto undecided;
        Py_ssize_t x = 0;
        for (Py_ssize_t k = 0; k < vn; k++) {
            if (!DIG(v[k])) goto undecided;
            x = x * 10 + (v[k] - '0');
        }
        if (cl >= 0 && x != cl) goto undecided;             /* conflicting Content-Length values */
        cl = x;
    }
    if (cl > n - body) goto undecided;                      /* larger than the body */
    PyObject *method = PyUnicode_DecodeASCII(d, ms, NULL);
    PyObject *uri = method ? PyUnicode_DecodeASCII(d + ms + 1, us - ms - 1, NULL) : NULL;
    PyObject *bd = uri ? PyBytes_FromStringAndSize(d + body, cl >= 0 ? cl : n - body) : NULL;
    if (bd) res = T_MSG ? new_message(method, uri, headers, bd) : PyTuple_Pack(4, method, uri, headers, bd);
    Py_XDECREF(method); Py_XDECREF(uri); Py_XDECREF(bd);
    goto done;
undecided:
    Py_CLEAR(split);
    res = Py_NewRef(Py_None);
done:
    Py_XDECREF(split);
    PyBuffer_Release(&b);
    return res;
}

static PyObject *join_message(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *start, *headers;
    Py_buffer body;
    if (fc_count("join_message", nargs, 3) < 0 || fc_type("join_message", 0, args[0], &PyUnicode_Type) < 0
            || fc_type("join_message", 1, args[1], &PyList_Type) < 0 || fc_buffer("join_message", 2, args[2], &body) < 0)
        return NULL;
    start = args[0], headers = args[1];
    PyObject *res = NULL;
    Py_ssize_t total = PyUnicode_GET_LENGTH(start) + 4 + body.len, nh = PyList_GET_SIZE(headers), i;
    if (!PyUnicode_IS_ASCII(start)) goto undecided;
    for (i = 0; i < nh; i++) {
        PyObject *h = PyList_GET_ITEM(headers, i);
        if (!PyList_Check(h) || PyList_GET_SIZE(h) < 2) goto undecided;
        PyObject *a = PyList_GET_ITEM(h, 0), *v = PyList_GET_ITEM(h, 1);
        if (!PyUnicode_Check(a) || !PyUnicode_Check(v) || !PyUnicode_IS_ASCII(a) || !PyUnicode_IS_ASCII(v))
            goto undecided;
        total += PyUnicode_GET_LENGTH(a) + PyUnicode_GET_LENGTH(v) + 4;
    }
    if (!(res = PyBytes_FromStringAndSize(NULL, total))) goto out;
    char *o = PyBytes_AS_STRING(res);
#define PUT(s) do { Py_ssize_t l_ = PyUnicode_GET_LENGTH(s); memcpy(o, PyUnicode_1BYTE_DATA(s), l_); o += l_; } while (0)
    PUT(start);
    *o++ = '\r'; *o++ = '\n';
    for (i = 0; i < nh; i++) {
        PyObject *h = PyList_GET_ITEM(headers, i);
        PUT(PyList_GET_ITEM(h, 0));
        *o++ = ':'; *o++ = ' ';
        PUT(PyList_GET_ITEM(h, 1));
        *o++ = '\r'; *o++ = '\n';
    }
#undef PUT
    *o++ = '\r'; *o++ = '\n';
    memcpy(o, body.buf, body.len);
    goto out;
undecided:
    res = Py_NewRef(Py_None);
out:
    PyBuffer_Release(&body);
    return res;
}

/* the index of the first header whose canonical name is `c`, else -1 (SipMessage's lookups) */
static PyObject *header_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *headers, *c;
    if (fc_count("header_index", nargs, 2) < 0 || fc_type("header_index", 0, args[0], &PyList_Type) < 0
            || fc_type("header_index", 1, args[1], &PyUnicode_Type) < 0) return NULL;
    headers = args[0], c = args[1];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *h = PyList_GET_ITEM(headers, i);
        if (!PyList_Check(h) || PyList_GET_SIZE(h) < 3) return PyLong_FromLong(-2);    /* not codec's: Python */
        int eq = PyObject_RichCompareBool(PyList_GET_ITEM(h, 2), c, Py_EQ);
        if (eq < 0) return NULL;
        if (eq) return PyLong_FromSsize_t(i);
    }
    return PyLong_FromLong(-1);
}

/* routing._stamp_received's rewrite of a top Via value that has a received or rport parameter: each such
 * parameter (its name as the grammar reads it, stripped and lowered) given the source's host or port, the
 * rest as it was. None when the value or the host is not plain (the Python pass does it). */
static PyObject *stamp_params(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *value, *host, *port;
    if (fc_count("stamp_params", nargs, 3) < 0 || fc_type("stamp_params", 0, args[0], &PyUnicode_Type) < 0
            || fc_type("stamp_params", 1, args[1], &PyUnicode_Type) < 0
            || fc_type("stamp_params", 2, args[2], &PyLong_Type) < 0) return NULL;
    value = args[0], host = args[1], port = args[2];
    Py_ssize_t n, hn, i;
    const char *p = plain_text(value, &n), *h = plain_text(host, &hn);
    long pt = PyLong_AsLong(port);
    if (pt == -1 && PyErr_Occurred()) return NULL;
    if (!p || !h || pt < 0) Py_RETURN_NONE;
    char ps[24];
    int pn = put_dec(ps, pt);                               /* (_sipdialog.h: "%ld", pt >= 0) */
    Py_ssize_t semi = find(p, n, ';');
    if (semi < 0) Py_RETURN_NONE;                           /* (never called so: it has parameters) */
    /* at most every parameter rewritten: the old value's length plus the host or port for each */
    Py_ssize_t cap = n + 1, params = 1;
    for (i = semi; i < n; i++) params += p[i] == ';';
    cap += params * ((hn > pn ? hn : pn) + 1);
    char *o = PyMem_Malloc(cap), *w = o;
    if (!o) return PyErr_NoMemory();
    memcpy(w, p, semi + 1);
    w += semi + 1;
    for (Py_ssize_t s = semi + 1;;) {
        Py_ssize_t e = find(p + s, n - s, ';');
        e = e < 0 ? n : s + e;
        Py_ssize_t eq = find(p + s, e - s, '=');
        const char *k = p + s;
        Py_ssize_t kn = eq < 0 ? e - s : eq, ko = kn;       /* k: the name as written, up to '=' */
        strip(&k, &kn);
        if (name_is(k, kn, "received") || name_is(k, kn, "rport")) {
            memcpy(w, p + s, ko);
            w += ko;
            *w++ = '=';
            if (kn == 8) { memcpy(w, h, hn); w += hn; }
            else { memcpy(w, ps, pn); w += pn; }
        } else {
            memcpy(w, p + s, e - s);
            w += e - s;
        }
        if (e >= n) break;
        *w++ = ';';
        s = e + 1;
    }
    PyObject *r = PyUnicode_DecodeASCII(o, w - o, NULL);
    PyMem_Free(o);
    return r;
}

/* fastpath.response_to_tag's search: _TO.findall(data, 0, he + 2) (every `CRLF (to|t) [ \t]* : [ \t]* value`,
 * any case, in the head), where he is the first CRLF CRLF; None without one. A regular expression over the whole
 * head cost the 200 that answers a call ~10,000 instructions. */
static PyObject *to_values(PyObject *self, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    const char *d = b.buf;
    Py_ssize_t n = b.len, he = -1, i;
    PyObject *out = NULL;
    he = head_end(d, n);
    if (he < 0) {
        out = Py_NewRef(Py_None);
        goto out;
    }
    Py_ssize_t end = he + 2;
    if (!(out = PyList_New(0))) goto out;
    for (i = 0; i + 1 < end; i++) {
        const char *cr = memchr(d + i, '\r', end - 1 - i);
        if (!cr) break;
        i = cr - d;
        if (d[i + 1] != '\n') continue;
        Py_ssize_t j = i + 2;
        if (j >= end || LOWER(d[j]) != 't') continue;
        j++;
        if (j < end && LOWER(d[j]) == 'o') {                /* "to", else "t" (then an 'o' is no blank nor ':') */
            Py_ssize_t k = j + 1;
            while (k < end && (d[k] == ' ' || d[k] == '\t')) k++;
            if (k < end && d[k] == ':') j++;
        }
        while (j < end && (d[j] == ' ' || d[j] == '\t')) j++;
        if (j >= end || d[j] != ':') continue;
        for (j++; j < end && (d[j] == ' ' || d[j] == '\t'); j++) {}
        Py_ssize_t ve = j;
        while (ve < end && d[ve] != '\r' && d[ve] != '\n') ve++;
        PyObject *v = PyBytes_FromStringAndSize(d + j, ve - j);
        if (!v || PyList_Append(out, v) < 0) { Py_XDECREF(v); Py_CLEAR(out); goto out; }
        Py_DECREF(v);
        i = ve - 1;
    }
out:
    PyBuffer_Release(&b);
    return out;
}

/* fastpath.response_to_tag's reading of its one To value, for a plain one: _NAME_ADDR matches it, no _ODD byte,
 * at most one "tag" parameter; the tag _TAG finds ("" for none). None: not plain, the regular expressions decide. */
static PyObject *to_tag(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) Py_RETURN_NONE;
    const char *v = PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg), i = 0, j, tag = -1, tl = 0;
    int tags = 0;
    for (j = 0; j < n; j++)
        if (v[j] != '\t' && (v[j] < 0x20 || v[j] > 0x7e)) Py_RETURN_NONE;       /* _ODD */
    if (n && v[0] == '"') {                                 /* "display" [ \t]* */
        for (i = 1; i < n && v[i] != '"'; i++)
            if (v[i] == '\\') Py_RETURN_NONE;
        if (i >= n) Py_RETURN_NONE;
        for (i++; i < n && WS(v[i]); i++) {}
    } else {
        while (i < n && (is_token(v[i]) || WS(v[i]))) i++;
    }
    if (i >= n || v[i] != '<') Py_RETURN_NONE;
    i++;
    if (n - i >= 5 && memcmp(v + i, "sips:", 5) == 0) i += 5;
    else if (n - i >= 4 && memcmp(v + i, "sip:", 4) == 0) i += 4;
    else Py_RETURN_NONE;
    for (j = i; j < n && v[j] != '>' && v[j] != '<' && v[j] != '"' && !WS(v[j]); j++) {}
    if (j == i || j >= n || v[j] != '>') Py_RETURN_NONE;
    for (i = j + 1;;) {                                     /* ([ \t]* ; [ \t]* param)* */
        Py_ssize_t at = i, s;
        while (i < n && WS(v[i])) i++;
        if (i >= n || v[i] != ';') { i = at; break; }
        for (i++; i < n && WS(v[i]); i++) {}
        for (s = i; i < n && !strchr(";,<>\" \t", v[i]); i++) {}
        if (i == s) { i = at; break; }
        Py_ssize_t eq = find(v + s, i - s, '=');
        if (name_is(v + s, eq < 0 ? i - s : eq, "tag")) {
            if (++tags > 1) Py_RETURN_NONE;                 /* the grammar keeps the last, _TAG finds the first */
            if (eq == 3 && i - s > 4) { tag = s + 4; tl = i - s - 4; }
        }
    }
    while (i < n && WS(v[i])) i++;
    if (i != n) Py_RETURN_NONE;
    return tag < 0 ? PyUnicode_FromStringAndSize("", 0) : PyUnicode_DecodeASCII(v + tag, tl, NULL);
}
