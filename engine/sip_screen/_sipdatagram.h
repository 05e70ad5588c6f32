/* One datagram of the UDP pump (included by _sippump.h, after its Pump, bump and _sipaddr.h): pump_one() decides
 * it as the bullets of _sippump.h's theory of operation say -- a response that relay_response() (_sipfast.c) proves
 * plain is relayed (on_final first for a final response to an INVITE), a plain in-dialog request in_dialog()
 * (_sipdialog.h) answers gets our Via with server._branch's branch (blake2b) and is sent (on_bye for a BYE,
 * send_failed when its send fails, else watch_put, unless it is an ACK), an ACK that may be ours and anything else go to slow()
 * untouched.
 * Both Pump.handle() and Pump.run() (_sippump.h) call it.
 */

static int call_void(PyObject *f, PyObject *a, PyObject *b, PyObject *c) {
    PyObject *r = PyObject_CallFunctionObjArgs(f, a, b, c, NULL);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

/* A BYE's From tag, read as dialogs._fast_bye reads it (its twin, for the Python fast path; the pump calls
 * on_bye -- server._call_ended -- with it, not that frame: ~9,000 instructions a BYE) out of in_dialog()'s branch key
 * `base`, "uri|call-id|cseq|from-tag|to-tag|" (ASCII: in_dialog() checked it): the request line in `before` says
 * where the Call-ID starts (a URI holding '|<Call-ID>|' is not taken for it), the tag is what lies between the
 * CSeq number's '|' and the To tag's (read whole, '|' and all); "" when the key is not so */
static PyObject *bye_from_tag(PyObject *before, PyObject *base, PyObject *call_id, PyObject *to_tag) {
    Py_ssize_t bl, cl, tl, i = -1;
    const char *b = PyUnicode_AsUTF8AndSize(base, &bl), *c = PyUnicode_AsUTF8AndSize(call_id, &cl);
    const char *t = b && c ? PyUnicode_AsUTF8AndSize(to_tag, &tl) : NULL;
    if (!t) return NULL;
    const char *bf = PyBytes_AS_STRING(before);
    Py_ssize_t bfl = PyBytes_GET_SIZE(before);
    const char *sp = memchr(bf, ' ', (size_t)bfl);
    if (sp && sp > bf) {                          /* the Request-URI's length */
        const char *sp2 = memchr(sp + 1, ' ', (size_t)(bf + bfl - sp - 1));
        i = (sp2 ? sp2 - bf : -1) - (sp - bf) - 1;
    } else {                                      /* (base.find("|<Call-ID>|")) */
        for (Py_ssize_t k = 0; k + cl + 2 <= bl && i < 0; k++)
            if (b[k] == '|' && memcmp(b + k + 1, c, (size_t)cl) == 0 && b[k + 1 + cl] == '|') i = k;
    }
    Py_ssize_t s0 = i + cl + 2, s1 = bl - tl - 2;  /* the "cseq|from-tag" between head and tail */
    if (i > 0 && s0 <= bl && b[i] == '|' && memcmp(b + i + 1, c, (size_t)cl) == 0 && b[i + 1 + cl] == '|'
        && s1 >= 0 && b[s1] == '|' && memcmp(b + s1 + 1, t, (size_t)tl) == 0 && b[bl - 1] == '|' && s0 <= s1) {
        const char *bar = memchr(b + s0, '|', (size_t)(s1 - s0));
        if (bar)
            return PyUnicode_FromStringAndSize(bar + 1, b + s1 - bar - 1);
    }
    return PyUnicode_FromStringAndSize("", 0);
}

/* One datagram: 0 done, -1 a Python exception is set */
static int pump_one(Pump *p, PyObject *data, PyObject *src) {
    const char *d = PyBytes_AS_STRING(data);
    Py_ssize_t len = PyBytes_GET_SIZE(data);
    PyObject *r = NULL, *a = NULL;
    PumpAddr to;
    int rc = -1;
    if (len >= 4 && memcmp(d, "SIP/", 4) == 0) {
        if (!(r = relay_plain(d, len, p->prefixes))) goto out;    /* (p->prefixes: a tuple, Pump's "O!") */
        if (r == Py_None) goto slow;
        if (PyTuple_GET_SIZE(r) == 0) {           /* not ours, or meant for us */
            rc = bump(p, K_RESPONSES, 1) || bump(p, K_FAST, 1) || bump(p, K_DROPPED, 1) ? -1 : 0;
            goto out;
        }
        PyObject *outb = PyTuple_GET_ITEM(r, 0), *dest = PyTuple_GET_ITEM(r, 1), *fin = PyTuple_GET_ITEM(r, 2);
        if (!pump_dest(p, dest, &to)) goto slow;
        if (bump(p, K_RESPONSES, 1) || bump(p, K_FAST, 1)) goto out;
        if (PyBytes_GET_SIZE(fin)) {
            PyObject *code = PyUnicode_DecodeASCII(PyBytes_AS_STRING(outb) + 8, 3, NULL);
            if (!code) goto out;
            /* the source: only the callee's answer counts; the response: its To tag names the dialog answered */
            PyObject *fr = PyObject_CallFunctionObjArgs(p->on_final, code, fin, src, outb, NULL);
            Py_DECREF(code);
            if (!fr) goto out;
            Py_DECREF(fr);
        }
        if (pump_send(p, PyBytes_AS_STRING(outb), PyBytes_GET_SIZE(outb), &to, dest) < 0) goto out;
        rc = 0;                                   /* a response lost on a send error: as on the network */
        goto out;
    }
    if (!PyTuple_Check(src) || PyTuple_GET_SIZE(src) < 2) goto slow;
    /* an INVITE or a CANCEL is never in_dialog()'s (undecided at once): straight to the full path, without its
     * arguments' tuple and parse (~600 instructions an INVITE) */
    if (len >= 16 && (memcmp(d, "INVITE ", 7) == 0 || memcmp(d, "CANCEL ", 7) == 0)) goto slow;
    /* our Vias' starts name our Record-Route too: an in-dialog request whose only Route is ours stays here */
    PyObject *sh = PyTuple_GET_ITEM(src, 0), *sp = PyTuple_GET_ITEM(src, 1);
    if (PyUnicode_Check(sh) && PyLong_CheckExact(sp)) {
        /* in_dialog's "s#" and "l" read here: dialog_plain called without the arguments' tuple and its parse */
        Py_ssize_t ipl;
        const char *ip = PyUnicode_AsUTF8AndSize(sh, &ipl);
        long sport = ip ? PyLong_AsLong(sp) : -1;
        if (!ip || (sport == -1 && PyErr_Occurred())) goto out;
        r = dialog_plain(d, len, ip, ipl, sport, p->prefixes, p->hop ? p->hop : Py_None);
    } else {                                      /* (a caller's own source tuple: in_dialog's checks and errors) */
        a = PyTuple_Pack(5, data, sh, sp, p->prefixes, p->hop ? p->hop : Py_None);
        r = a ? in_dialog(NULL, a) : NULL;
    }
    if (!r) goto out;
    if (r == Py_None) goto slow;
    /* (method, before, after, top_branch, base, dest, call_id, to_tag) */
    PyObject *method = PyTuple_GET_ITEM(r, 0), *before = PyTuple_GET_ITEM(r, 1), *after = PyTuple_GET_ITEM(r, 2);
    PyObject *dest = PyTuple_GET_ITEM(r, 5), *to_tag = PyTuple_GET_ITEM(r, 7);
    if (!pump_dest(p, dest, &to)) goto slow;
    /* the branch key and the forwarded message must fit p->out (they always do: in_dialog() takes
     * at most MAX_FAST_REQUEST bytes); checked before anything is counted or called */
    Py_ssize_t tbl, bsl;
    const char *tb = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(r, 3), &tbl);
    const char *bs = tb ? PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(r, 4), &bsl) : NULL;
    if (!bs) goto out;
    Py_ssize_t bl = PyBytes_GET_SIZE(before), al = PyBytes_GET_SIZE(after), hl = PyBytes_GET_SIZE(p->via_head);
    const Py_ssize_t brl = 20;
    Py_ssize_t n = bl + hl + brl + 8 + al;
    if (tbl + 1 + bsl > (Py_ssize_t)sizeof p->out || n > (Py_ssize_t)sizeof p->out) goto slow;
    int is_ack = PyUnicode_CompareWithASCIIString(method, "ACK") == 0;
    if (!is_ack && n > PUMP_UDP_MAX) goto slow;   /* the full path sends it over TCP (RFC 3261 §18.1.1) */
    if (is_ack) {
        Py_ssize_t tl = PyUnicode_GET_LENGTH(p->tag_prefix);
        int t = PyUnicode_Tailmatch(to_tag, p->tag_prefix, 0, tl, -1);
        if (t < 0) goto out;
        if (t == 1) goto slow;                    /* perhaps for an answer of ours: Python decides */
        int rej = p->rejected != Py_None && PyDict_GET_SIZE(p->rejected);
        if (PyDict_GET_SIZE(p->invites) || rej) { /* the ACK of a non-2xx final of an INVITE we forwarded, or of
                                                     a rejection of ours? */
            Py_ssize_t cl;
            const char *ci = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(r, 6), &cl);
            if (!ci) goto out;
            if (tbl + 1 + cl > (Py_ssize_t)sizeof p->out) goto slow;
            memcpy(p->out, tb, tbl);
            p->out[tbl] = '|';
            memcpy(p->out + tbl + 1, ci, cl);
            uint8_t kd[16];
            blake2b(kd, sizeof kd, (const uint8_t *)p->out, (size_t)(tbl + 1 + cl));
            PyObject *k = PyBytes_FromStringAndSize((const char *)kd, sizeof kd);
            int c = k ? PyDict_Contains(p->invites, k) : -1;
            if (c == 0 && rej) c = PyDict_Contains(p->rejected, k);
            Py_XDECREF(k);
            if (c < 0) goto out;
            if (c) goto slow;                     /* its branch and destination are the INVITE's; or absorbed */
        }
    }
    if (bump(p, K_REQUESTS, 1) || bump(p, K_FAST, 1)) goto out;
    if (!is_ack && PyUnicode_CompareWithASCIIString(method, "BYE") == 0) {
        /* on_bye(call_id, (from_tag, to_tag)) */
        PyObject *ft = bye_from_tag(before, PyTuple_GET_ITEM(r, 4), PyTuple_GET_ITEM(r, 6), to_tag);
        PyObject *tags = ft ? PyTuple_Pack(2, ft, to_tag) : NULL;
        Py_XDECREF(ft);
        if (!tags) goto out;
        PyObject *br = PyObject_CallFunctionObjArgs(p->on_bye, PyTuple_GET_ITEM(r, 6), tags, NULL);
        Py_DECREF(tags);
        if (!br) goto out;
        Py_DECREF(br);
    }
    /* the branch: server._branch(top_branch, base), i.e. blake2b(top_branch "|" base, 10) in hex.
     * in_dialog() checked both are ASCII, so their UTF-8 is the surrogateescape encoding it hashes. */
    memcpy(p->out, tb, tbl);
    p->out[tbl] = '|';
    memcpy(p->out + tbl + 1, bs, bsl);
    uint8_t dg[10];
    char brs[20];
    blake2b(dg, sizeof dg, (const uint8_t *)p->out, (size_t)(tbl + 1 + bsl));
    for (int k = 0; k < 10; k++) { brs[2 * k] = "0123456789abcdef"[dg[k] >> 4]; brs[2 * k + 1] = "0123456789abcdef"[dg[k] & 15]; }
    char *o = p->out;
    memcpy(o, PyBytes_AS_STRING(before), bl);
    memcpy(o + bl, PyBytes_AS_STRING(p->via_head), hl);
    memcpy(o + bl + hl, brs, brl);
    memcpy(o + bl + hl + brl, ";rport\r\n", 8);
    memcpy(o + bl + hl + brl + 8, PyBytes_AS_STRING(after), al);
    int e = pump_send(p, o, n, &to, dest);
    if (e < 0) goto out;
    if (!e && !is_ack)                            /* an ICMP error about it: 503 (_sipwatch.h, unreachable.py) */
        watch_put(p, brs, data, src, p->now ? p->now : monotonic());
    if (e > 0 && !is_ack) {                       /* §16.9: the sender hears 503 */
        PyObject *m = PyBytes_FromStringAndSize(NULL, bl + al);
        if (!m) goto out;
        memcpy(PyBytes_AS_STRING(m), PyBytes_AS_STRING(before), bl);
        memcpy(PyBytes_AS_STRING(m) + bl, PyBytes_AS_STRING(after), al);
        PyObject *why = PyUnicode_FromFormat("UDP send failed: [Errno %d] %s", e, strerror(e));   /* as str(OSError) */
        int e2 = why ? call_void(p->send_failed, m, src, why) : -1;
        Py_DECREF(m); Py_XDECREF(why);
        if (e2) goto out;
    }
    rc = 0;
    goto out;
slow:
    rc = call_void(p->slow, data, src, NULL);
out:
    Py_XDECREF(a); Py_XDECREF(r);
    return rc;
}
