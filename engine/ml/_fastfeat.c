/* Compiled accelerator for engine/ml/features.py: the same feature ids and the same
 * decision value of the linear model pair as the numpy reference path, computed in one pass.
 *
 * Theory of operation. Python keeps the definition of the normalised text (its regexes
 * in features.normalise); this module starts from that normalised text and does, per
 * message and without allocating Python objects:
 *   1. tokenise like re.findall(r"_[a-z]+\d*_|[^\W_]+|[!?£$€%]") (sre's \w is
 *      Py_UNICODE_ISALNUM or '_', its \d is Py_UNICODE_ISDECIMAL, so the same classes
 *      are used here), write teencode words out (set_teencode), and join the tokens with
 *      single spaces, truncated and wrapped in spaces exactly like features._canonical;
 *   2. fold diacritics with the per-code-point table features.py builds (set_fold_table);
 *   3. hash char 3-5-grams (of the folded text), char 3-5-grams of the raw text as sent (its first
 *      MAXLEN code points, case kept) that hold a character other than a-z or space, words, word bigrams, folded words and the four shape tokens
 *      with the polynomial hash of features.feature_ids (sum c[i] R^i mod 2^64 + salt,
 *      then xor-shift-multiply, top DIM_BITS bits);
 *   4. tell Vietnamese from other text like features.language (Vietnamese-only letters in
 *      the raw text, share of well-formed Vietnamese syllables among the folded words);
 *   5. for decision(): find the distinct ids in a generation-stamped open-addressing table
 *      (no clearing between messages, no sort) and accumulate, for both members of the
 *      model pair (binary features), |v|^2 and v . coef in one loop, reading r, r w1, idf,
 *      idf w2 as one interleaved float32 quad per id (one cache miss per distinct feature in
 *      the 16 MB weight table), summed in double.
 * Summation order differs from numpy's (which sums the same float32 values in float64), so
 * results agree to rounding (~1e-15), inside the tests' 1e-9 parity.
 * Steps 1-4 are _featids.h's (compute_ids), step 5 and the module's functions are here.
 * The GIL is held throughout; the static buffers are therefore never shared.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_fastnorm.h"
#include "_featids.h"        /* compute_ids(): the feature ids and language of one message */
#include "../_blake2b.h"     /* text_digest(): the score cache's key */

#define TBITS 15                     /* counting table: 32768 slots > MAXIDS (18,440): never full */
#define TSIZE (1u << TBITS)
_Static_assert(MAXIDS < TSIZE, "the counting table must hold every id of one message");
typedef struct { uint32_t gen, id, cnt; } slot_t;
static slot_t slots[TSIZE];
static uint32_t used[TSIZE];
static uint32_t generation = 0;

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

static int check_args(PyObject *raw, PyObject *norm) {
    if (!PyUnicode_Check(raw) || !PyUnicode_Check(norm)) {
        PyErr_SetString(PyExc_TypeError, "text and normalised text must be str");
        return -1;
    }
    if (!fold_ready) {
        PyErr_SetString(PyExc_RuntimeError, "set_fold_table() has not been called");
        return -1;
    }
    return 0;
}

static PyObject *py_ids(PyObject *self, PyObject *args) {
    PyObject *raw, *norm;
    if (!PyArg_ParseTuple(args, "UU", &raw, &norm) || check_args(raw, norm)) return NULL;
    Py_ssize_t k = compute_ids(raw, norm);
    return PyBytes_FromStringAndSize((const char *)ids_buf, k * (Py_ssize_t)sizeof(int64_t));
}

/* decision(text, normalised, weights, intercept): called once per message, so its arguments are read as
 * PyArg_ParseTuple's "UUy*d" would read them, without parsing that format on each call (METH_FASTCALL) */
static PyObject *py_decision(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *raw, *norm;
    Py_buffer wb;
    double intercept;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "decision() takes exactly 4 arguments (%zd given)", nargs);
        return NULL;
    }
    raw = args[0];
    norm = args[1];
    if (check_args(raw, norm)) return NULL;
    intercept = PyFloat_AsDouble(args[3]);
    if (intercept == -1.0 && PyErr_Occurred()) return NULL;
    if (PyObject_GetBuffer(args[2], &wb, PyBUF_SIMPLE) < 0) return NULL;
    if (!PyBuffer_IsContiguous(&wb, 'C')) {
        PyErr_SetString(PyExc_TypeError, "weights must be a contiguous buffer");
        goto fail;
    }
    if (wb.len != (Py_ssize_t)(4 * sizeof(float) << DIM_BITS)) {
        PyErr_SetString(PyExc_ValueError, "weights must be float32 (r, r * w1, idf, idf * w2) quads for 2**DIM_BITS ids");
        goto fail;
    }
    /* One 16-byte float32 quad per id: a single cache line fetch per distinct feature. */
    const float *w = (const float *)wb.buf;
    Py_ssize_t k = compute_ids(raw, norm);
    /* Table sized to the message (load <= 1/2) so it stays in L1/L2; stamps avoid clearing. At most TSIZE: a
     * message of more than TSIZE / 2 ids (none seen; 15,345 the most a fuzzer found) is counted at a higher load
     * (its size was doubled past the array, 65,536 slots indexed in 32,768: a write past it) */
    uint32_t size = 1024;
    while (size < 2 * (uint32_t)k && size < TSIZE) size <<= 1;
    const uint32_t mask = size - 1;
    if (++generation == 0) {                 /* stamp wrapped: clear once every 2^32 calls */
        memset(slots, 0, sizeof slots);
        generation = 1;
    }
    Py_ssize_t nu = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        uint32_t id = (uint32_t)ids_buf[i], s = id & mask;
        while (slots[s].gen == generation && slots[s].id != id) s = (s + 1) & mask;
        if (slots[s].gen != generation) {
            slots[s].gen = generation;
            slots[s].id = id;
            slots[s].cnt = 1;
            used[nu++] = s;
            /* its quad's cache line is fetched while the other ids are placed, not when the sum
             * below waits for it (the fetches overlap: the weight table is far larger than the caches) */
            PREFETCH(w + 4 * (size_t)id);
        } else {
            slots[s].cnt++;
        }
    }
    /* binary features: each distinct id once, in both members (train.Pair) */
    double ss1 = 0.0, dot1 = 0.0, ss2 = 0.0, dot2 = 0.0;
    for (Py_ssize_t i = 0; i < nu; i++) {
        const float *p = w + 4 * (size_t)slots[used[i]].id;
        ss1 += (double)p[0] * p[0];
        dot1 += p[1];
        ss2 += (double)p[2] * p[2];
        dot2 += p[3];
    }
    PyBuffer_Release(&wb);
    double d = (ss1 > 0.0 ? dot1 / sqrt(ss1) : 0.0) + (ss2 > 0.0 ? dot2 / sqrt(ss2) : 0.0) + intercept;
    PyObject *dv = PyFloat_FromDouble(d), *vv = dv ? PyLong_FromLong(last_vi) : NULL, *res = NULL;
    if (vv) res = PyTuple_Pack(2, dv, vv);
    Py_XDECREF(dv);
    Py_XDECREF(vv);
    return res;
fail:
    PyBuffer_Release(&wb);
    return NULL;
}

static PyObject *py_set_teencode(PyObject *self, PyObject *arg) {
    if (!PyList_Check(arg) || PyList_GET_SIZE(arg) > TEEN_MAX) {
        PyErr_Format(PyExc_ValueError, "teencode must be a list of at most %d (word, replacement) pairs", TEEN_MAX);
        return NULL;
    }
    int n = (int)PyList_GET_SIZE(arg);
    memset(teen_lens, 0, sizeof teen_lens);     /* (indexed once all are read: a failed call leaves none) */
    memset(teen_n_at, 0, sizeof teen_n_at);
    for (int i = 0; i < n; i++) {
        PyObject *k, *v;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(arg, i), "UU", &k, &v)) return NULL;
        Py_ssize_t kl = PyUnicode_GET_LENGTH(k), vl = PyUnicode_GET_LENGTH(v);
        if (kl < 1 || kl > TEEN_KEY || vl > TEEN_VAL) {
            PyErr_Format(PyExc_ValueError, "teencode word of 1-%d and replacement of at most %d characters",
                         TEEN_KEY, TEEN_VAL);
            return NULL;
        }
        for (Py_ssize_t j = 0; j < kl; j++) teen_key[i][j] = PyUnicode_READ_CHAR(k, j);
        for (Py_ssize_t j = 0; j < vl; j++) teen_val[i][j] = PyUnicode_READ_CHAR(v, j);
        teen_klen[i] = kl;
        teen_vlen[i] = vl;
    }
    for (int i = 0; i < n; i++) {
        unsigned b = teen_key[i][0] & 0xFF;
        teen_lens[b] |= (uint16_t)(1u << teen_klen[i]);
        teen_at[b][teen_n_at[b]++] = (uint8_t)i;
    }
    Py_RETURN_NONE;
}

static PyObject *py_language(PyObject *self, PyObject *args) {
    PyObject *raw, *norm;
    if (!PyArg_ParseTuple(args, "UU", &raw, &norm) || check_args(raw, norm)) return NULL;
    compute_ids(raw, norm);
    return PyUnicode_FromString(last_vi ? "vi" : "en");
}

static PyObject *py_set_fold_table(PyObject *self, PyObject *args) {
    Py_buffer b, v;
    PyObject *salts;
    if (!PyArg_ParseTuple(args, "y*y*O", &b, &v, &salts)) return NULL;
    if (v.len != (Py_ssize_t)sizeof vi_letter) {
        PyBuffer_Release(&b);
        PyBuffer_Release(&v);
        PyErr_Format(PyExc_ValueError, "Vietnamese letter table must be %d uint8 entries", FOLD_LIMIT);
        return NULL;
    }
    memcpy(vi_letter, v.buf, sizeof vi_letter);
    PyBuffer_Release(&v);
    if (b.len != (Py_ssize_t)sizeof fold_table) {
        PyBuffer_Release(&b);
        PyErr_Format(PyExc_ValueError, "fold table must be %d uint32 entries", FOLD_LIMIT);
        return NULL;
    }
    memcpy(fold_table, b.buf, sizeof fold_table);
    PyBuffer_Release(&b);
    if (!PyList_Check(salts) || PyList_GET_SIZE(salts) != 16) {
        PyErr_SetString(PyExc_ValueError, "salts must be a list of 16 ints");
        return NULL;
    }
    for (int i = 0; i < 16; i++) {
        SALT[i] = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(salts, i));
        if (PyErr_Occurred()) return NULL;
    }
    index_by_letter();
    fold_ready = 1;
    Py_RETURN_NONE;
}

/* scan(text) -> scan_flags of the text (features._scan: which normalisation passes can match) */
static ubuf scan_buf;

static PyObject *py_scan(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) { PyErr_SetString(PyExc_TypeError, "str expected"); return NULL; }
    Py_ssize_t L = PyUnicode_GET_LENGTH(arg);
    scan_buf.n = 0;
    if (ub_reserve(&scan_buf, L + 1) || !PyUnicode_AsUCS4(arg, scan_buf.p, L + 1, 0)) return NULL;
    long flags = scan_flags(scan_buf.p, L);
    ub_trim(&scan_buf);
    return PyLong_FromLong(flags);
}

/* text_digest(text) -> bytes: model.text_digest_py's hashlib.blake2b(text.encode("utf-8", "surrogatepass"),
 * digest_size=16).digest(), the text's UTF-8 hashed as it is read (no bytes object made for it): the score cache's key */
static PyObject *py_text_digest(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text)) { PyErr_SetString(PyExc_TypeError, "text_digest() needs a str"); return NULL; }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    b2b s;
    b2b_init(&s, 16);
    if (PyUnicode_IS_ASCII(text)) {
        b2b_update(&s, (const uint8_t *)PyUnicode_DATA(text), (size_t)n);     /* ASCII is its own UTF-8 */
    } else {
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        uint8_t buf[256];
        size_t k = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (k > sizeof buf - 4) { b2b_update(&s, buf, k); k = 0; }
            if (c < 0x80) {
                buf[k++] = (uint8_t)c;
            } else if (c < 0x800) {
                buf[k++] = (uint8_t)(0xC0 | c >> 6);
                buf[k++] = (uint8_t)(0x80 | (c & 0x3F));
            } else if (c < 0x10000) {            /* surrogate halves too, as "surrogatepass" writes them */
                buf[k++] = (uint8_t)(0xE0 | c >> 12);
                buf[k++] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
                buf[k++] = (uint8_t)(0x80 | (c & 0x3F));
            } else {
                buf[k++] = (uint8_t)(0xF0 | c >> 18);
                buf[k++] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
                buf[k++] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
                buf[k++] = (uint8_t)(0x80 | (c & 0x3F));
            }
        }
        b2b_update(&s, buf, k);
    }
    b2b_finish(&s);
    uint8_t d[16];
    for (int i = 0; i < 16; i++) d[i] = (uint8_t)(s.h[i / 8] >> (8 * (i % 8)));
    return PyBytes_FromStringAndSize((const char *)d, 16);
}

static PyMethodDef methods[] = {
    {"ids", py_ids, METH_VARARGS, "ids(text, normalised) -> bytes of int64 feature ids (with repeats)"},
    {"decision", (PyCFunction)(void (*)(void))py_decision, METH_FASTCALL,
     "decision(text, normalised, weights, intercept) -> (sum over the two members of binary x weight, L2, dot coef; plus intercept, is_vi);"
     " weights: float32 (r, r * w1, idf, idf * w2) quads, 2**DIM_BITS of them"},
    {"set_fold_table", py_set_fold_table, METH_VARARGS, "set_fold_table(uint32 fold table, uint8 vi letters, salts)"},
    {"set_teencode", py_set_teencode, METH_O, "set_teencode([(word, replacement), ...])"},
    {"language", py_language, METH_VARARGS, "language(text, normalised) -> 'vi' or 'en' (features.language)"},
    {"scan", py_scan, METH_O, "scan(text) -> flags of the normalisation passes that may match"},
    {"normalise", py_normalise, METH_O, "normalise(text) -> features.normalise_py(text), computed in C"},
    {"text_digest", py_text_digest, METH_O, "text_digest(text) -> 16-byte BLAKE2b of its UTF-8 (model.text_digest_py)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, .m_name = "_fastfeat", .m_doc = NULL, .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__fastfeat(void) {
    if (normalise_init()) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    /* features.py checks these against its own RAW_NGRAMS and model.QUAD_BYTES (a stale build falls back to numpy) */
    if (m && (PyModule_AddIntConstant(m, "RAW_MIN", RAW_MIN) || PyModule_AddIntConstant(m, "RAW_MAX", RAW_MAX)
              || PyModule_AddIntConstant(m, "QUAD_BYTES", 4 * sizeof(float)))) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
