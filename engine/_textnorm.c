/* engine._textnorm: the compiled half of textnorm.template_key (optional; textnorm.py keeps the
 * pure-Python path, used when this module is absent or TELFILTER_TEXT_PURE=1, and a test checks
 * both give the same key on every text).
 *
 * template_mask(text, min_words) -> str | None   (and maybe_host(text), find_hosts' prefilter;
 * fold(text, fold_one), textnorm.fold for non-ASCII text; collapse_spaces(text) for content_key)
 *
 * Theory of operation: one pass over the code points does what template_key's three regexes and
 * its per-word loop do, with the predicates Python's own str methods and `re` use:
 *   1. every whitespace-delimited run (Py_UNICODE_ISSPACE, as `\s`) holding a letter or digit,
 *      one of . / @ : and a letter or digit in a row (a link, an e-mail address, a time, an
 *      amount) is replaced by "0" (textnorm._LINKISH_RUN);
 *   2. the words are the maximal runs of Py_UNICODE_ISALNUM code points (`[^\W_]+`);
 *   3. a word with a non-alphabetic code point becomes "0", a title-case word "N" (str.istitle),
 *      any other word stays as it is (str.islower / str.isalpha / str.istitle spelled out as
 *      CPython's unicodeobject.c spells them);
 *   4. fewer than `min_words` unmasked words: None; else the words joined by single spaces.
 * Folding the result (case, diacritics) and the digest stay in Python: they are C calls there.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int is_sep(Py_UCS4 c) { return c == '.' || c == '/' || c == '@' || c == ':'; }

/* ASCII first: the Unicode database look-ups are function calls, and most SMS text is ASCII */
static inline int is_alnum(Py_UCS4 c)
{
    if (c < 128) return (Py_UCS4)((c | 32) - 'a') < 26 || (Py_UCS4)(c - '0') < 10;
    return Py_UNICODE_ISALNUM(c);
}

/* 0: keep the word, 1: "0" (not alphabetic), 2: "N" (title case) */
static int word_class(int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    int lower_only = 1, lower_cased = 0;        /* str.islower */
    int title = 1, title_cased = 0, prev_cased = 0;   /* str.istitle */
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 128) {
            if ((Py_UCS4)(c - 'a') < 26) {
                lower_cased = 1;
                if (!prev_cased) title = 0;
                prev_cased = 1; title_cased = 1;
                continue;
            }
            if ((Py_UCS4)(c - 'A') < 26) {
                lower_only = 0;
                if (prev_cased) title = 0;
                prev_cased = 1; title_cased = 1;
                continue;
            }
            return 1;                           /* an ASCII digit */
        }
        if (!Py_UNICODE_ISALPHA(c))
            return 1;
        if (Py_UNICODE_ISUPPER(c) || Py_UNICODE_ISTITLE(c)) {
            lower_only = 0;
            if (prev_cased) title = 0;
            prev_cased = 1; title_cased = 1;
        } else if (Py_UNICODE_ISLOWER(c)) {
            lower_cased = 1;
            if (!prev_cased) title = 0;
            prev_cased = 1; title_cased = 1;
        } else {
            prev_cased = 0;
        }
    }
    if (lower_only && lower_cased)
        return 0;                               /* islower() and isalpha(): most words */
    return (title && title_cased) ? 2 : 0;
}

/* template_mask's scan: the words of `text` as spans into it, (-1, 1) for "0" and (-1, 2) for "N",
 * in *words (PyMem_Malloc'ed, the caller frees it). Returns the number of words, -1 on error;
 * *kept_out the unmasked ones, *len_out the joined length, *maxc_out the widest code point kept. */
static Py_ssize_t mask_words(PyObject *text, Py_ssize_t **words, Py_ssize_t *kept_out, Py_ssize_t *len_out,
                             Py_UCS4 *maxc_out)
{
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    /* (start, end) of each kept word, or a marker for "0"/"N"; at most n/2+1 words */
    Py_ssize_t cap = n / 2 + 2;
    Py_ssize_t *ws = PyMem_Malloc(sizeof(Py_ssize_t) * 2 * cap);
    if (!ws) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t nw = 0, masked = 0, out_len = 0;
    Py_UCS4 maxc = 127;
    Py_ssize_t i = 0;
    while (i < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (Py_UNICODE_ISSPACE(c)) { i++; continue; }
        /* a whitespace-delimited run [i, e) */
        Py_ssize_t e = i;
        int linkish = 0;
        while (e < n && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, e))) {
            if (!linkish && e + 2 < n && is_sep(PyUnicode_READ(kind, data, e + 1))
                && is_alnum(PyUnicode_READ(kind, data, e))
                && is_alnum(PyUnicode_READ(kind, data, e + 2)))
                linkish = 1;
            e++;
        }
        if (linkish) {                          /* the whole run is one "0" word */
            ws[2 * nw] = -1; ws[2 * nw + 1] = 1;
            nw++; masked++; out_len += 2;
            i = e;
            continue;
        }
        /* words of the run */
        while (i < e) {
            if (!is_alnum(PyUnicode_READ(kind, data, i))) { i++; continue; }
            Py_ssize_t a = i;
            while (i < e && is_alnum(PyUnicode_READ(kind, data, i))) i++;
            if (nw >= cap) {                    /* cannot happen (words are separated), but stay safe */
                Py_ssize_t *w2 = PyMem_Realloc(ws, sizeof(Py_ssize_t) * 4 * cap);
                if (!w2) { PyMem_Free(ws); PyErr_NoMemory(); return -1; }
                ws = w2; cap *= 2;
            }
            int k = word_class(kind, data, a, i);
            if (k) {
                ws[2 * nw] = -1; ws[2 * nw + 1] = k;
                masked++; out_len += 2;
            } else {
                ws[2 * nw] = a; ws[2 * nw + 1] = i;
                out_len += i - a + 1;
                for (Py_ssize_t j = a; j < i; j++) {
                    Py_UCS4 d = PyUnicode_READ(kind, data, j);
                    if (d > maxc) maxc = d;
                }
            }
            nw++;
        }
    }
    *words = ws;
    *kept_out = nw - masked;
    *len_out = out_len;
    *maxc_out = maxc;
    return nw;
}

static PyObject *template_mask(PyObject *self, PyObject *args)
{
    PyObject *text;
    Py_ssize_t min_words, *ws, kept, out_len;
    Py_UCS4 maxc;
    if (!PyArg_ParseTuple(args, "Un", &text, &min_words))
        return NULL;
    Py_ssize_t nw = mask_words(text, &ws, &kept, &out_len, &maxc);
    if (nw < 0)
        return NULL;
    if (kept < min_words) {
        PyMem_Free(ws);
        Py_RETURN_NONE;
    }
    if (nw == 0) {
        PyMem_Free(ws);
        return PyUnicode_New(0, 127);
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    PyObject *out = PyUnicode_New(out_len - 1, maxc);
    if (!out) { PyMem_Free(ws); return NULL; }
    int okind = PyUnicode_KIND(out);
    void *odata = PyUnicode_DATA(out);
    Py_ssize_t p = 0;
    for (Py_ssize_t w = 0; w < nw; w++) {
        if (w) PyUnicode_WRITE(okind, odata, p++, ' ');
        if (ws[2 * w] < 0) {
            PyUnicode_WRITE(okind, odata, p++, ws[2 * w + 1] == 1 ? '0' : 'N');
        } else {
            for (Py_ssize_t j = ws[2 * w]; j < ws[2 * w + 1]; j++)
                PyUnicode_WRITE(okind, odata, p++, PyUnicode_READ(kind, data, j));
        }
    }
    PyMem_Free(ws);
    return out;
}

/* maybe_host(text) -> bool: False only when textnorm._URL_RE cannot find a host in `text`, which
 * needs "://" or a letter or digit, a dot and a letter in a row (textnorm._MAYBE_HOST, case-
 * insensitive). Any non-ASCII code point counts as a possible letter (case-insensitive matching
 * relates a few of them to ASCII letters), so this is a superset: a True is confirmed by the regex. */
static PyObject *maybe_host(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "maybe_host() needs a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t i = 0; i + 1 < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '.' && i > 0) {
            Py_UCS4 a = PyUnicode_READ(kind, data, i - 1), b = PyUnicode_READ(kind, data, i + 1);
            if ((a > 127 || is_alnum(a)) && (b > 127 || (Py_UCS4)((b | 32) - 'a') < 26))
                Py_RETURN_TRUE;
        } else if (c == ':' && i + 2 < n && PyUnicode_READ(kind, data, i + 1) == '/'
                   && PyUnicode_READ(kind, data, i + 2) == '/') {
            Py_RETURN_TRUE;
        }
    }
    Py_RETURN_FALSE;
}

/* the test of maybe_host at position i: "://" there, or a letter or digit, a dot and a letter
 * (any non-ASCII code point counting as a possible letter or digit) centred on i */
static inline int host_triple(int kind, const void *data, Py_ssize_t n, Py_ssize_t i, Py_UCS4 c)
{
    if (c == '.' && i > 0 && i + 1 < n) {
        Py_UCS4 a = PyUnicode_READ(kind, data, i - 1), b = PyUnicode_READ(kind, data, i + 1);
        return (a > 127 || is_alnum(a)) && (b > 127 || (Py_UCS4)((b | 32) - 'a') < 26);
    }
    return c == ':' && i + 2 < n && PyUnicode_READ(kind, data, i + 1) == '/'
           && PyUnicode_READ(kind, data, i + 2) == '/';
}

/* host_tokens(text) -> list of str: the whitespace-delimited runs of `text` (Py_UNICODE_ISSPACE,
 * as str.split() and the regex's \s) that hold a maybe_host triple. A host match of
 * textnorm._URL_RE holds no whitespace and its look-arounds see whitespace or an end of the
 * string at a run's edges, so scanning these runs alone finds the same hosts in the same order
 * as scanning the whole text: the regex (~0.1 us a character) then reads a few short runs. */
static PyObject *host_tokens(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "host_tokens() needs a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    while (i < n) {
        if (Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) { i++; continue; }
        Py_ssize_t a = i;
        int hit = 0;
        for (; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (Py_UNICODE_ISSPACE(c)) break;
            if (!hit && (c == '.' || c == ':'))
                hit = host_triple(kind, data, n, i, c);
        }
        if (hit) {
            PyObject *tok = PyUnicode_Substring(text, a, i);
            if (!tok || PyList_Append(out, tok) < 0) { Py_XDECREF(tok); Py_DECREF(out); return NULL; }
            Py_DECREF(tok);
        }
    }
    return out;
}

/* fold(text, fold_one) -> str: textnorm.fold of a non-ASCII text as the concatenation of the
 * folds of its code points. Folding (zero-width removal, d-stroke, NFKD, combining marks removed,
 * casefold) maps each code point on its own: NFKD decomposes each one by itself and only reorders
 * combining marks, which are all removed, and casefold has no context; so the fold of a text is
 * the folds of its code points end to end (a test checks this against textnorm's own path).
 * `fold_one(ch)` computes one code point's fold the first time it is seen; the results for the
 * Basic Multilingual Plane and the Supplementary Multilingual Plane are kept here, at most 131,072
 * short strings (a few MB) for the life of the process; code points beyond them (CJK extensions,
 * tags, private use: rare) are folded each time. Plane 1 holds the emoji and the mathematical
 * letters real traffic is full of: asked each time, an emoji cost a Python call (~0.8 us) at every
 * fold, a text of 30,000 of them 24 ms (found by a probe of odd encodings). */
#define FOLD_CACHED 0x20000
static PyObject *fold_cache[FOLD_CACHED];

static PyObject *fold_one(PyObject *fn, Py_UCS4 c)
{
    PyObject *ch = PyUnicode_FromOrdinal((int)c);
    if (!ch) return NULL;
    PyObject *r = PyObject_CallOneArg(fn, ch);
    Py_DECREF(ch);
    if (r && !PyUnicode_Check(r)) {
        PyErr_SetString(PyExc_TypeError, "fold_one() must return a str");
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

static PyObject *fold(PyObject *self, PyObject *args)
{
    PyObject *text, *fn;
    if (!PyArg_ParseTuple(args, "UO", &text, &fn))
        return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject **parts = PyMem_Malloc(sizeof(PyObject *) * (n ? n : 1));
    if (!parts) return PyErr_NoMemory();
    Py_ssize_t total = 0, i;
    Py_UCS4 maxc = 127;
    PyObject *out = NULL;
    for (i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        PyObject *r;
        if (c < FOLD_CACHED) {
            r = fold_cache[c];
            if (!r) {
                r = fold_one(fn, c);
                if (!r) goto fail;
                fold_cache[c] = r;              /* the cache keeps this reference */
            }
            Py_INCREF(r);
        } else {
            r = fold_one(fn, c);
            if (!r) goto fail;
        }
        parts[i] = r;
        total += PyUnicode_GET_LENGTH(r);
        Py_UCS4 m = PyUnicode_MAX_CHAR_VALUE(r);
        if (m > maxc) maxc = m;
    }
    out = PyUnicode_New(total, maxc);
    if (out) {
        Py_ssize_t p = 0;
        for (Py_ssize_t j = 0; j < n; j++) {
            Py_ssize_t len = PyUnicode_GET_LENGTH(parts[j]);
            if (len == 1) {
                PyUnicode_WRITE(PyUnicode_KIND(out), PyUnicode_DATA(out), p, PyUnicode_READ_CHAR(parts[j], 0));
            } else if (len && PyUnicode_CopyCharacters(out, p, parts[j], 0, len) < 0) {
                Py_CLEAR(out);
                break;
            }
            p += len;
        }
    }
fail:
    for (Py_ssize_t j = 0; j < i; j++)
        Py_DECREF(parts[j]);
    PyMem_Free(parts);
    return out;
}

/* collapse_spaces(text) -> " ".join(text.split()) without the list of words (str.split's
 * whitespace is Py_UNICODE_ISSPACE) */
static PyObject *collapse_spaces(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "collapse_spaces() needs a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), len = 0;
    Py_UCS4 maxc = 127;
    int gap = 0;
    for (Py_ssize_t i = 0; i < n; i++) {         /* first pass: the length and widest character */
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (Py_UNICODE_ISSPACE(c)) { gap = len > 0; continue; }
        len += gap + 1; gap = 0;
        if (c > maxc) maxc = c;
    }
    PyObject *out = PyUnicode_New(len, maxc);
    if (!out) return NULL;
    int okind = PyUnicode_KIND(out);
    void *odata = PyUnicode_DATA(out);
    Py_ssize_t p = 0;
    gap = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (Py_UNICODE_ISSPACE(c)) { gap = p > 0; continue; }
        if (gap) { PyUnicode_WRITE(okind, odata, p++, ' '); gap = 0; }
        PyUnicode_WRITE(okind, odata, p++, c);
    }
    return out;
}

#include "_textdigest.h"

static PyMethodDef methods[] = {
    {"collapse_spaces", collapse_spaces, METH_O, "collapse_spaces(text) -> ' '.join(text.split())"},
    {"content_digest", content_digest, METH_O, "content_digest(folded) -> the 64-bit digest of ' '.join(folded.split())"},
    {"template_digest", template_digest, METH_VARARGS,
     "template_digest(text, min_words, fold_one) -> the 64-bit digest of fold(template_mask(text, min_words)), or None"},
    {"fold", fold, METH_VARARGS, "fold(text, fold_one) -> textnorm.fold(text), one code point at a time (see textnorm.fold)"},
    {"maybe_host", maybe_host, METH_O, "maybe_host(text) -> False when text holds no link host (see textnorm.find_hosts)"},
    {"host_tokens", host_tokens, METH_O, "host_tokens(text) -> the whitespace-delimited runs that may hold a link host"},
    {"template_mask", template_mask, METH_VARARGS,
     "template_mask(text, min_words) -> the masked words joined by spaces, or None (see textnorm.template_key)"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_textnorm", NULL, -1, methods};

PyMODINIT_FUNC PyInit__textnorm(void) { return PyModule_Create(&module); }
