/* The head of a SIP message split into header fields, in C: codec._parse_head's plain case.
 * Included by _sipfast.c. No I/O.
 *
 * Theory of operation: split_head(head, memo, canon) takes the header block of a message (up to,
 * not including, the blank line) and returns (start line, [[name, value, canonical name], ...])
 * exactly as codec._parse_head's one-regular-expression pass builds them -- the start line and
 * the values decoded as UTF-8 with surrogateescape, a value without the blanks around it, the
 * canonical name memo[name] or else canon(name) -- when the head is plain: it does not start with
 * whitespace, every CR is followed by LF and every LF preceded by CR, there is at least one header
 * line, and every line after the start line is `token [ \t]* : [ \t]* value`. Anything else
 * returns None, and the Python code (which knows folding, bare LFs, leading CRLFs and every error)
 * decides. Only the plain case is done here, so this can only agree with the Python pass;
 * tests/test_sip_fuzz.py checks that on mutated heads. It spares the INVITE's path the decode of
 * the whole head, three counts, a findall and one list per header built in Python.
 */

/* Header names seen, by their bytes: the name as a str and its canonical name, kept so the next message's same name
 * (Via, From, To, Call-ID, CSeq... nine an INVITE) is neither decoded, nor hashed, nor looked up in `memo` again
 * (~350 instructions a header). A canonical name is canon(name) whatever the memo (a pure function of the name), so a
 * name's slot is the answer for any memo; one slot per hash of length and end bytes, replaced on a miss. */
#define NAME_SLOTS 64
#define HEAD_NAME_MAX 24
static struct { Py_ssize_t len; unsigned char b[HEAD_NAME_MAX]; PyObject *name, *canon; } name_slots[NAME_SLOTS];

static int name_slot(const unsigned char *p, Py_ssize_t n) {
    return (int)(((size_t)n * 31u + p[0] * 7u + p[n - 1]) & (NAME_SLOTS - 1));
}

static PyObject *head_fields(const unsigned char *d, Py_ssize_t n, PyObject *memo, PyObject *canon) {
    PyObject *headers = NULL, *start = NULL, *res = NULL;
    Py_ssize_t sl = -1;
    /* not starting with whitespace as str.isspace() sees it (a non-ASCII first byte: undecided) */
    if (n == 0 || d[0] >= 0x80 || d[0] == ' ' || (d[0] >= '\t' && d[0] <= '\r') || (d[0] >= 0x1c && d[0] <= 0x1f))
        goto undecided;
    /* CRLF line ends only: every CR followed by LF and every LF preceded by CR (memchr's jumps from one to the
     * next, not a test of every byte) */
    for (const unsigned char *r = d, *e = d + n; (r = memchr(r, '\r', (size_t)(e - r))) != NULL; r += 2) {
        if (r + 1 >= e || r[1] != '\n') goto undecided;
        if (sl < 0) sl = r - d;
    }
    for (const unsigned char *f = d, *e = d + n; (f = memchr(f, '\n', (size_t)(e - f))) != NULL; f++)
        if (f == d || f[-1] != '\r') goto undecided;
    if (sl <= 0) goto undecided;                     /* no header line */
    if (!(headers = PyList_New(0))) goto out;
    for (Py_ssize_t pos = sl; pos < n;) {           /* at a CRLF */
        Py_ssize_t q = pos + 2, ne, vs, ve, le;
        for (ne = q; ne < n && is_token(d[ne]); ne++) {}
        if (ne == q) goto undecided_free;
        for (vs = ne; vs < n && (d[vs] == ' ' || d[vs] == '\t'); vs++) {}
        if (vs >= n || d[vs] != ':') goto undecided_free;
        for (vs++; vs < n && (d[vs] == ' ' || d[vs] == '\t'); vs++) {}
        const unsigned char *cr = memchr(d + vs, '\r', (size_t)(n - vs));
        le = cr ? cr - d : n;
        for (ve = le; ve > vs && (d[ve - 1] == ' ' || d[ve - 1] == '\t'); ve--) {}
        Py_ssize_t nl = ne - q;
        int k = name_slot(d + q, nl);
        int known = nl <= HEAD_NAME_MAX && name_slots[k].len == nl && memcmp(name_slots[k].b, d + q, (size_t)nl) == 0;
        PyObject *name = known ? Py_NewRef(name_slots[k].name) : PyUnicode_DecodeASCII((const char *)d + q, nl, NULL);
        PyObject *value = name ? PyUnicode_DecodeUTF8((const char *)d + vs, ve - vs, "surrogateescape") : NULL;
        PyObject *c = NULL, *h = NULL;
        if (value && known) {
            c = Py_NewRef(name_slots[k].canon);
        } else if (value) {
            c = PyDict_GetItemWithError(memo, name);
            if (c) Py_INCREF(c);
            else if (!PyErr_Occurred()) c = PyObject_CallOneArg(canon, name);
            if (c && PyUnicode_Check(c) && PyUnicode_GET_LENGTH(c) == 0) {   /* `memo.get(name) or canon(name)` */
                Py_DECREF(c);
                c = PyObject_CallOneArg(canon, name);
            }
            if (c && PyUnicode_CheckExact(c) && nl <= HEAD_NAME_MAX) {        /* kept for the next message's same name */
                Py_XSETREF(name_slots[k].name, Py_NewRef(name));
                Py_XSETREF(name_slots[k].canon, Py_NewRef(c));
                memcpy(name_slots[k].b, d + q, (size_t)nl);
                name_slots[k].len = nl;
            }
        }
        if (c && (h = PyList_New(3))) {
            PyList_SET_ITEM(h, 0, name);
            PyList_SET_ITEM(h, 1, value);
            PyList_SET_ITEM(h, 2, c);
        } else {
            Py_XDECREF(name); Py_XDECREF(value); Py_XDECREF(c);
        }
        if (!h) goto out;
        int e = PyList_Append(headers, h);
        Py_DECREF(h);
        if (e) goto out;
        pos = le;
    }
    if (!(start = PyUnicode_DecodeUTF8((const char *)d, sl, "surrogateescape"))) goto out;
    res = PyTuple_Pack(2, start, headers);
    goto out;
undecided_free:
undecided:
    res = Py_None;
    Py_INCREF(res);
out:
    Py_XDECREF(start);
    Py_XDECREF(headers);
    return res;
}

static PyObject *split_head(PyObject *self, PyObject *args) {
    Py_buffer b;
    PyObject *memo, *canon;
    if (!PyArg_ParseTuple(args, "y*O!O", &b, &PyDict_Type, &memo, &canon)) return NULL;
    PyObject *res = head_fields(b.buf, b.len, memo, canon);
    PyBuffer_Release(&b);
    return res;
}
