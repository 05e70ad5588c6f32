/* spool_record(ring, head, end, written, cap, mid, name, note) -> int | None: a forwarded message's id record put
 * into the message-id log's crash spool (smpp_proxy/idspool.py SpoolJournal.noted, then crashspool.Spool.append of
 * a ring not to overwrite), byte for byte what those two write: the record "<HHQQ" (the id's and the account name's
 * lengths in UTF-8, the note's low and high 64 bits) then the id and the name, at `end` modulo `cap` in `ring`
 * (split at its end), and `end` plus its length in head[2] (native order, the Spool's header words). Returns that
 * new end, or -1 with nothing written when the ring has no room for it beside the bytes not yet `written`; None
 * when the record is not its common case (an id not ASCII, the note not an int of 0 .. 2**128 - 1, a length over
 * 65,535, buffers not as a Spool makes them): the Python form writes it. In Python the two calls cost ~8,400
 * instructions a forwarded message (callgrind, 10,000 records); here ~1,000.
 * Included by _stamps.c.
 */

static PyObject *py_spool_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "spool_record() takes 8 arguments");
        return NULL;
    }
    PyObject *mid = args[5], *name = args[6], *note = args[7];
    if (!PyUnicode_CheckExact(mid) || !PyUnicode_IS_ASCII(mid) || !PyBytes_CheckExact(name) || !PyLong_CheckExact(note)
            || !PyLong_CheckExact(args[2]) || !PyLong_CheckExact(args[3]) || !PyLong_CheckExact(args[4]))
        Py_RETURN_NONE;
    Py_ssize_t nb = PyUnicode_GET_LENGTH(mid), na = PyBytes_GET_SIZE(name);
    if (nb > 0xFFFF || na > 0xFFFF || _PyLong_Sign(note) < 0 || _PyLong_NumBits(note) > 128)
        Py_RETURN_NONE;
    long long end = PyLong_AsLongLong(args[2]), written = PyLong_AsLongLong(args[3]), cap = PyLong_AsLongLong(args[4]);
    if ((end == -1 || written == -1 || cap == -1) && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    unsigned char rec[20];
    rec[0] = (unsigned char)(nb & 0xFF);
    rec[1] = (unsigned char)(nb >> 8);
    rec[2] = (unsigned char)(na & 0xFF);
    rec[3] = (unsigned char)(na >> 8);
    /* the note's 16 bytes little-endian: its low 64 bits then its high ones, each little-endian ("<QQ") */
#if PY_VERSION_HEX >= 0x030D0000               /* 3.13 added with_exceptions */
    if (_PyLong_AsByteArray((PyLongObject *)note, rec + 4, 16, 1, 0, 1) < 0) {
#else
    if (_PyLong_AsByteArray((PyLongObject *)note, rec + 4, 16, 1, 0) < 0) {
#endif
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    long long n = 20 + nb + na;
    if (cap <= 0 || end < 0 || written < 0)
        Py_RETURN_NONE;
    if (end + n - written > cap)
        return PyLong_FromLong(-1);             /* Spool.append's refusal: nothing written */
    Py_buffer rv, hv;
    if (PyObject_GetBuffer(args[0], &rv, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (PyObject_GetBuffer(args[1], &hv, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        PyBuffer_Release(&rv);
        Py_RETURN_NONE;
    }
    if (rv.len < cap || hv.len < 3 * (Py_ssize_t)sizeof(unsigned long long)) {
        PyBuffer_Release(&rv);
        PyBuffer_Release(&hv);
        Py_RETURN_NONE;
    }
    const char *parts[3] = {(const char *)rec, (const char *)PyUnicode_DATA(mid), PyBytes_AS_STRING(name)};
    long long sizes[3] = {20, nb, na}, o = end % cap;
    char *ring = (char *)rv.buf;
    for (int k = 0; k < 3; k++) {               /* each part at o, split at the ring's end */
        long long m = sizes[k], first = cap - o < m ? cap - o : m;
        memcpy(ring + o, parts[k], (size_t)first);
        if (first < m)
            memcpy(ring, parts[k] + first, (size_t)(m - first));
        o = (o + m) % cap;
    }
    unsigned long long e = (unsigned long long)(end + n);
    memcpy((char *)hv.buf + 2 * sizeof e, &e, sizeof e);       /* head[2] = end, once the record is all in */
    PyBuffer_Release(&rv);
    PyBuffer_Release(&hv);
    return PyLong_FromLongLong(end + n);
}
