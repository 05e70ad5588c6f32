/* call_line(when, call_id, caller, callee, ingress, action, score, hits, judge_us) -> str | None: the verdict
 * log's line for a judged call (verdictlog.VerdictLog.write_call), character for character the text of
 * verdictlog._call_line, in its common case: `when` a datetime (not a subclass) in timezone.utc, `call_id` None
 * or a str, caller, callee and ingress ASCII str, `score` a float within +-1e11 and `judge_us` one within +-1e15.
 * `action` (its name) and `hits` (its JSON text) are given as text. Any other case: None, and the Python form
 * makes the line. Built in Python it cost ~17,000 instructions an INVITE (the stamp, five JSON strings, two
 * floats, the "%" of nine fields); here ~3,500 (write_call 34.9k -> 21.0k, callgrind, same captured call).
 * Included by _stamps.c (the datetime C API is set up there).
 */

/* JSON text of ASCII `s` as json.encoder.encode_basestring writes it (its C form, _json.c escape_unicode): '"',
 * '\\' and the five short escapes, other controls as \u00xx (lower-case hex), the rest (DEL too) as is */
static char *json_ascii(char *o, const char *s, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        default:
            if (c < 0x20) {
                memcpy(o, "\\u00", 4);
                o[4] = hex[c >> 4];
                o[5] = hex[c & 0xf];
                o += 6;
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    return o;
}

/* a str that is ASCII: its bytes and length; else 0 */
static int ascii_of(PyObject *s, const char **p, Py_ssize_t *n)
{
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_ASCII(s))
        return 0;
    *p = (const char *)PyUnicode_DATA(s);
    *n = PyUnicode_GET_LENGTH(s);
    return 1;
}

/* "%.<prec>f" % x into o (verdictlog's "%.1f" and _score_json's "%.4f": the same PyOS_double_to_string call) */
static char *fixed(char *o, double x, int prec, int score)
{
    char *t = PyOS_double_to_string(x, 'f', prec, 0, NULL);
    if (t == NULL)
        return NULL;
    size_t n = strlen(t);
    if (score) {                        /* _score_json: trailing zeros off, a bare "." gets one back */
        while (n > 0 && t[n - 1] == '0')
            n--;
        memcpy(o, t, n);
        o += n;
        if (n > 0 && t[n - 1] == '.')
            *o++ = '0';
    } else {
        memcpy(o, t, n);
        o += n;
    }
    PyMem_Free(t);
    return o;
}

/* `v` (>= 0) in `w` decimal digits, zero-padded (sprintf's "%0wd" costs ~1,000 instructions a field) */
static char *digits(char *o, long v, int w)
{
    for (int i = w - 1; i >= 0; i--, v /= 10)
        o[i] = (char)('0' + v % 10);
    return o + w;
}

#define LIT(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) += sizeof(s) - 1)

/* `{"ts": "` and a UTC `when`'s isoformat() up to its offset (the year in at least 4 digits, datetime's are
   1..9999; the microseconds `us` when not 0): the start of every line built here (_smsline.h too) */
static char *line_start(char *o, PyObject *when, int us)
{
    LIT(o, "{\"ts\": \"");
    o = digits(o, PyDateTime_GET_YEAR(when), 4);
    *o++ = '-';
    o = digits(o, PyDateTime_GET_MONTH(when), 2);
    *o++ = '-';
    o = digits(o, PyDateTime_GET_DAY(when), 2);
    *o++ = 'T';
    o = digits(o, PyDateTime_DATE_GET_HOUR(when), 2);
    *o++ = ':';
    o = digits(o, PyDateTime_DATE_GET_MINUTE(when), 2);
    *o++ = ':';
    o = digits(o, PyDateTime_DATE_GET_SECOND(when), 2);
    if (us) {
        *o++ = '.';
        o = digits(o, us, 6);
    }
    return o;
}

static PyObject *py_call_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "call_line() takes 9 arguments");
        return NULL;
    }
    PyObject *when = args[0], *cid = args[1], *score = args[6], *judge = args[8];
    const char *s[6] = {NULL};          /* call_id, caller, callee, ingress, action, hits */
    Py_ssize_t n[6] = {0};
    PyObject *text[6] = {cid, args[2], args[3], args[4], args[5], args[7]};
    int has_cid = cid != Py_None;
    if (!(PyDateTime_CheckExact(when) && ((PyDateTime_DateTime *)when)->hastzinfo
          && ((PyDateTime_DateTime *)when)->tzinfo == PyDateTime_TimeZone_UTC))
        Py_RETURN_NONE;
    if (has_cid ? !ascii_of(cid, &s[0], &n[0]) : 0)
        Py_RETURN_NONE;
    for (int k = 1; k < 6; k++)
        if (!ascii_of(text[k], &s[k], &n[k]))
            Py_RETURN_NONE;
    if (!PyFloat_CheckExact(score) || !PyFloat_CheckExact(judge))
        Py_RETURN_NONE;
    double sc = PyFloat_AS_DOUBLE(score), ju = PyFloat_AS_DOUBLE(judge);
    if (!(sc > -1e11 && sc < 1e11 && ju > -1e15 && ju < 1e15))
        Py_RETURN_NONE;
    /* a JSON string at most 6 bytes a character; the floats under 1e15 with 4 places; the stamp 32 */
    Py_ssize_t cap = 256 + 2 * 40;
    for (int k = 0; k < 4; k++)
        cap += has_cid || k ? 6 * n[k] + 2 : 4;
    cap += n[4] + n[5];
    char *buf = PyMem_Malloc(cap), *o = buf;
    if (buf == NULL)
        return PyErr_NoMemory();
    int us = PyDateTime_DATE_GET_MICROSECOND(when);
    o = line_start(o, when, us);
    LIT(o, "+00:00\", \"kind\": \"call\", \"call_id\": ");
    if (has_cid)
        o = json_ascii(o, s[0], n[0]);
    else
        LIT(o, "null");
    LIT(o, ", \"caller\": ");
    o = json_ascii(o, s[1], n[1]);
    LIT(o, ", \"callee\": ");
    o = json_ascii(o, s[2], n[2]);
    LIT(o, ", \"ingress\": ");
    o = json_ascii(o, s[3], n[3]);
    LIT(o, ", \"action\": \"");
    memcpy(o, s[4], n[4]);
    o += n[4];
    LIT(o, "\", \"score\": ");
    if ((o = fixed(o, sc, 4, 1)) == NULL)
        goto fail;
    LIT(o, ", \"hits\": ");
    memcpy(o, s[5], n[5]);
    o += n[5];
    LIT(o, ", \"judge_us\": ");
    if ((o = fixed(o, ju, 1, 0)) == NULL)
        goto fail;
    *o++ = '}';
    PyObject *r = PyUnicode_DecodeASCII(buf, o - buf, NULL);
    PyMem_Free(buf);
    return r;
fail:
    PyMem_Free(buf);
    return NULL;
}
