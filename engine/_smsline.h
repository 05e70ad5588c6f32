/* sms_line(when, pdu, account, sender, recipient, action, score, hits, judge_us) -> str | None: the verdict log's
 * line for a judged SMS (verdictlog.VerdictLog.write_sms), character for character the text of verdictlog._sms_line,
 * in its common case: `when` a datetime (not a subclass) in timezone.utc (the SMPP proxy's clock), pdu, account,
 * sender and recipient ASCII str, `score` a float within +-1e11 and `judge_us` one within +-1e15, and no optional
 * member (write_sms tells those: a schedule, a reading, a status, a late part, a type of number read otherwise).
 * `action` (its name, ASCII) and `hits` (its JSON text, any str: a hit's detail may be Vietnamese) are given as
 * text. Any other case: None, and the Python form makes the line. Built in Python (~240 bytecodes and the calls
 * it makes: the stamp's key, two JSON strings, two floats' text) it cost ~13,000 instructions a submit_sm.
 * Included by _stamps.c after _callline.h (its json_ascii, ascii_of, fixed, digits and LIT).
 */

static PyObject *py_sms_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "sms_line() takes 9 arguments");
        return NULL;
    }
    PyObject *when = args[0], *score = args[6], *hits = args[7], *judge = args[8];
    const char *s[5] = {NULL};          /* pdu, account, sender, recipient, action */
    Py_ssize_t n[5] = {0};
    if (!(PyDateTime_CheckExact(when) && ((PyDateTime_DateTime *)when)->hastzinfo
          && ((PyDateTime_DateTime *)when)->tzinfo == PyDateTime_TimeZone_UTC))
        Py_RETURN_NONE;
    for (int k = 0; k < 5; k++)
        if (!ascii_of(args[k + 1], &s[k], &n[k]))
            Py_RETURN_NONE;
    if (!PyFloat_CheckExact(score) || !PyFloat_CheckExact(judge) || !PyUnicode_CheckExact(hits))
        Py_RETURN_NONE;
    double sc = PyFloat_AS_DOUBLE(score), ju = PyFloat_AS_DOUBLE(judge);
    if (!(sc > -1e11 && sc < 1e11 && ju > -1e15 && ju < 1e15))
        Py_RETURN_NONE;
    /* a JSON string at most 6 bytes a character; the floats under 1e15 with 4 places; the stamp 32 */
    Py_ssize_t cap = 256 + 2 * 40 + n[4];
    for (int k = 0; k < 4; k++)
        cap += 6 * n[k] + 2;
    char *buf = PyMem_Malloc(cap), *o = buf, *at;
    if (buf == NULL)
        return PyErr_NoMemory();
    int us = PyDateTime_DATE_GET_MICROSECOND(when);
    o = line_start(o, when, us);
    LIT(o, "+00:00\", \"kind\": \"sms\", \"pdu\": ");
    o = json_ascii(o, s[0], n[0]);
    LIT(o, ", \"account\": ");
    o = json_ascii(o, s[1], n[1]);
    LIT(o, ", \"sender\": ");
    o = json_ascii(o, s[2], n[2]);
    LIT(o, ", \"recipient\": ");
    o = json_ascii(o, s[3], n[3]);
    LIT(o, ", \"action\": \"");
    memcpy(o, s[4], n[4]);
    o += n[4];
    LIT(o, "\", \"score\": ");
    if (sc == 0.0) {                    /* most lines; -0.0 keeps its sign, as "%.4f" does */
        if (signbit(sc))
            *o++ = '-';
        LIT(o, "0.0");
    } else if ((o = fixed(o, sc, 4, 1)) == NULL)
        goto fail;
    LIT(o, ", \"hits\": ");
    at = o;                             /* the hits go here */
    LIT(o, ", \"judge_us\": ");
    if ((o = fixed(o, ju, 1, 0)) == NULL)
        goto fail;
    *o++ = '}';
    Py_ssize_t head = at - buf, tail = o - at, nh = PyUnicode_GET_LENGTH(hits);
    PyObject *r;
    if (PyUnicode_IS_ASCII(hits)) {     /* one ASCII string: the hits moved in between */
        r = PyUnicode_New(head + nh + tail, 127);
        if (r != NULL) {
            char *d = (char *)PyUnicode_DATA(r);
            memcpy(d, buf, head);
            memcpy(d + head, PyUnicode_DATA(hits), nh);
            memcpy(d + head + nh, at, tail);
        }
    } else {                            /* the width of the hits' widest character */
        r = PyUnicode_New(head + nh + tail, PyUnicode_MAX_CHAR_VALUE(hits));
        if (r != NULL) {
            int kind = PyUnicode_KIND(r);
            void *d = PyUnicode_DATA(r);
            for (Py_ssize_t i = 0; i < head; i++)
                PyUnicode_WRITE(kind, d, i, (Py_UCS1)buf[i]);
            if (PyUnicode_CopyCharacters(r, head, hits, 0, nh) < 0) {
                Py_CLEAR(r);
            } else {
                for (Py_ssize_t i = 0; i < tail; i++)
                    PyUnicode_WRITE(kind, d, head + nh + i, (Py_UCS1)at[i]);
            }
        }
    }
    PyMem_Free(buf);
    return r;
fail:
    PyMem_Free(buf);
    return NULL;
}
