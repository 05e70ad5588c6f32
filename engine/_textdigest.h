/* engine._textnorm: the digests, computed while the text is scanned (included once, by
 * _textnorm.c, after the folding and masking helpers they use). */

/* ---------------------------------------------------------------- digests
 *
 * content_digest(folded) and template_digest(text, min_words, fold_one): textnorm's
 * int.from_bytes(blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
 * of the collapsed folded text and of the folded template mask, computed while the string is
 * scanned: no intermediate str, bytes or hashlib object (those cost ~1 us of a message's ~2).
 * BLAKE2b is RFC 7693's (unkeyed, 8-byte digest); the little-endian int of an 8-byte digest is
 * the first state word. A test holds both to hashlib on the traffic mix and random text. */
#include "_blake2b.h"

/* one code point as UTF-8 (surrogates too, as "surrogatepass" writes them) */
static inline void b2b_cp(b2b *s, Py_UCS4 c)
{
    if (c < 0x80) {
        b2b_byte(s, (uint8_t)c);
    } else if (c < 0x800) {
        b2b_byte(s, (uint8_t)(0xC0 | c >> 6));
        b2b_byte(s, (uint8_t)(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        b2b_byte(s, (uint8_t)(0xE0 | c >> 12));
        b2b_byte(s, (uint8_t)(0x80 | (c >> 6 & 0x3F)));
        b2b_byte(s, (uint8_t)(0x80 | (c & 0x3F)));
    } else {
        b2b_byte(s, (uint8_t)(0xF0 | c >> 18));
        b2b_byte(s, (uint8_t)(0x80 | (c >> 12 & 0x3F)));
        b2b_byte(s, (uint8_t)(0x80 | (c >> 6 & 0x3F)));
        b2b_byte(s, (uint8_t)(0x80 | (c & 0x3F)));
    }
}

static PyObject *b2b_final_int(b2b *s)
{
    b2b_finish(s);
    return PyLong_FromUnsignedLongLong(s->h[0]);
}

/* content_digest(folded) -> int: the digest of " ".join(folded.split()) */
static PyObject *content_digest(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "content_digest() needs a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    b2b s;
    b2b_init(&s, 8);
    int gap = 0, any = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (Py_UNICODE_ISSPACE(c)) { gap = any; continue; }
        if (gap) { b2b_byte(&s, ' '); gap = 0; }
        b2b_cp(&s, c);
        any = 1;
    }
    return b2b_final_int(&s);
}

/* one code point folded into the digest: ASCII lower-cased (its fold), any other by fold_one's
 * result, cached as fold() caches it */
static int b2b_folded(b2b *s, PyObject *fn, Py_UCS4 c)
{
    if (c < 128) {
        b2b_byte(s, (uint8_t)((Py_UCS4)(c - 'A') < 26 ? c | 32 : c));
        return 0;
    }
    PyObject *r;
    if (c < 0x10000) {
        r = fold_cache[c];
        if (!r) {
            r = fold_one(fn, c);
            if (!r) return -1;
            fold_cache[c] = r;                  /* the cache keeps this reference */
        }
        Py_INCREF(r);
    } else {
        r = fold_one(fn, c);
        if (!r) return -1;
    }
    int k = PyUnicode_KIND(r);
    const void *d = PyUnicode_DATA(r);
    for (Py_ssize_t j = 0, m = PyUnicode_GET_LENGTH(r); j < m; j++)
        b2b_cp(s, PyUnicode_READ(k, d, j));
    Py_DECREF(r);
    return 0;
}

/* template_digest(text, min_words, fold_one) -> int | None: the digest of
 * fold(template_mask(text, min_words)), None when template_mask gives None */
static PyObject *template_digest(PyObject *self, PyObject *args)
{
    PyObject *text, *fn;
    Py_ssize_t min_words, *ws, kept, out_len;
    Py_UCS4 maxc;
    if (!PyArg_ParseTuple(args, "UnO", &text, &min_words, &fn))
        return NULL;
    Py_ssize_t nw = mask_words(text, &ws, &kept, &out_len, &maxc);
    if (nw < 0)
        return NULL;
    if (kept < min_words) {
        PyMem_Free(ws);
        Py_RETURN_NONE;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    b2b s;
    b2b_init(&s, 8);
    for (Py_ssize_t w = 0; w < nw; w++) {
        if (w) b2b_byte(&s, ' ');
        if (ws[2 * w] < 0) {
            b2b_byte(&s, ws[2 * w + 1] == 1 ? '0' : 'n');      /* "N" folded */
        } else {
            for (Py_ssize_t j = ws[2 * w]; j < ws[2 * w + 1]; j++)
                if (b2b_folded(&s, fn, PyUnicode_READ(kind, data, j)) < 0) {
                    PyMem_Free(ws);
                    return NULL;
                }
        }
    }
    PyMem_Free(ws);
    return b2b_final_int(&s);
}
