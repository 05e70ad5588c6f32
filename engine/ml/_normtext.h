/* Character classes, literals and growable buffers for the compiled normalisation
 * (_fastnorm.h), and the scan flags that tell which of its passes can match. */

#define CC_WORD 1      /* \w */
#define CC_DEC 2       /* \d */
#define CC_SPACE 4     /* \s */
#define CC_LETTER 8    /* [^\W\d_] */
#define CC_READY 128

static uint8_t cc_tab[0x10000];

static uint8_t cc_compute(Py_UCS4 ch) {
    int alnum = Py_UNICODE_ISALNUM(ch), dec = Py_UNICODE_ISDECIMAL(ch);
    return (uint8_t)((alnum || ch == '_' ? CC_WORD : 0) | (dec ? CC_DEC : 0) | (Py_UNICODE_ISSPACE(ch) ? CC_SPACE : 0)
                     | (alnum && !dec ? CC_LETTER : 0));
}

static void cc_fill(Py_UCS4 block) {
    for (Py_UCS4 c = block << 8; c < ((block + 1) << 8); c++) cc_tab[c] = cc_compute(c) | CC_READY;
}

static inline int ch_class(Py_UCS4 ch) {
    if (ch >= 0x10000) return cc_compute(ch);
    if (!(cc_tab[ch] & CC_READY)) cc_fill(ch >> 8);
    return cc_tab[ch];
}

#define IS_WORD(ch) (ch_class(ch) & CC_WORD)
#define IS_DEC(ch) ((ch) >= '0' && (ch) <= '9' ? 1 : (ch) < 0x80 ? 0 : ch_class(ch) & CC_DEC)
#define IS_SPACE(ch) (ch_class(ch) & CC_SPACE)
#define IS_LETTER(ch) (ch_class(ch) & CC_LETTER)
#define IS_AZ(ch) ((ch) >= 'a' && (ch) <= 'z')

/* a UCS4 literal: U"..." is UTF-32 (char32_t, 32-bit unsigned on every platform Python builds on) */
typedef struct { const Py_UCS4 *s; Py_ssize_t n; } lit_t;
#define LIT(x) {(const Py_UCS4 *)U"" x, (Py_ssize_t)(sizeof(U"" x) / 4 - 1)}

static inline int lit_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p, lit_t w) {
    if (p < 0 || p + w.n > n) return 0;
    for (Py_ssize_t j = 0; j < w.n; j++)
        if (s[p + j] != w.s[j]) return 0;
    return 1;
}

static int contains(const Py_UCS4 *s, Py_ssize_t n, lit_t w) {
    for (Py_ssize_t p = 0; p + w.n <= n; p++)
        if (s[p] == w.s[0] && lit_at(s, n, p, w)) return 1;
    return 0;
}

/* \b at position p of s[0:n] */
static inline int boundary(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {
    int before = p > 0 && IS_WORD(s[p - 1]), after = p < n && IS_WORD(s[p]);
    return before != after;
}

/* a word character ends at p - 1: \b at p given s[p - 1] is a word character */
static inline int word_ends(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {
    return p >= n || !IS_WORD(s[p]);
}

typedef struct { Py_UCS4 *p; Py_ssize_t n, cap; } ubuf;

static int ub_reserve(ubuf *b, Py_ssize_t extra) {
    if (b->n + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 512;
    while (cap < b->n + extra) cap *= 2;
    Py_UCS4 *p = PyMem_Realloc(b->p, (size_t)cap * sizeof(Py_UCS4));
    if (!p) { PyErr_NoMemory(); return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* a buffer grown past 64k code points by a long text is freed after use, not kept */
static void ub_trim(ubuf *b) {
    if (b->cap > (1 << 16)) {
        PyMem_Free(b->p);
        b->p = NULL;
        b->cap = b->n = 0;
    }
}

static inline int ub_put(ubuf *b, const Py_UCS4 *s, Py_ssize_t n) {
    if (n <= 0) return 0;                  /* memcpy must not see the NULL of an unused buffer */
    if (ub_reserve(b, n)) return -1;
    memcpy(b->p + b->n, s, (size_t)n * sizeof(Py_UCS4));
    b->n += n;
    return 0;
}

static int ub_ascii(ubuf *b, const char *s) {
    Py_ssize_t n = (Py_ssize_t)strlen(s);
    if (ub_reserve(b, n)) return -1;
    for (Py_ssize_t i = 0; i < n; i++) b->p[b->n++] = (Py_UCS4)(unsigned char)s[i];
    return 0;
}


/* Bit flags telling normalise which of its regex passes can match at all (features._scan_py
 * is the regex twin; these flags may be set where it finds nothing, never the reverse):
 * 1 a decimal digit; 2 a '.' or '/' (URLs); 4 a letter-separator run of four letters (s p a c e d)
 * or a dotted run of three (V.A.Y); 8 a lower-case ASCII letter next to a digit, '@' or '$' (leet). */
enum { A_DEC = 1, A_DOTSLASH = 2, A_AZ = 4, A_LEETO = 8, A_LETTER = 16, A_SEP = 32, A_SEPDOT = 64 };
#define A_LOW A_AZ | A_LETTER
#define A_UP A_LETTER
#define A_D A_DEC | A_LEETO
static const uint8_t SCAN_ASCII[128] = {    /* the classes scan_flags reads, for ASCII */
    ['0'] = A_D, ['1'] = A_D, ['2'] = A_D, ['3'] = A_D, ['4'] = A_D, ['5'] = A_D, ['6'] = A_D, ['7'] = A_D,
    ['8'] = A_D, ['9'] = A_D, ['@'] = A_LEETO, ['$'] = A_LEETO, ['.'] = A_DOTSLASH | A_SEP | A_SEPDOT,
    ['/'] = A_DOTSLASH, ['*'] = A_SEP | A_SEPDOT, [' '] = A_SEP, ['_'] = A_SEP, ['-'] = A_SEP,
    ['a'] = A_LOW, ['b'] = A_LOW, ['c'] = A_LOW, ['d'] = A_LOW, ['e'] = A_LOW, ['f'] = A_LOW, ['g'] = A_LOW,
    ['h'] = A_LOW, ['i'] = A_LOW, ['j'] = A_LOW, ['k'] = A_LOW, ['l'] = A_LOW, ['m'] = A_LOW, ['n'] = A_LOW,
    ['o'] = A_LOW, ['p'] = A_LOW, ['q'] = A_LOW, ['r'] = A_LOW, ['s'] = A_LOW, ['t'] = A_LOW, ['u'] = A_LOW,
    ['v'] = A_LOW, ['w'] = A_LOW, ['x'] = A_LOW, ['y'] = A_LOW, ['z'] = A_LOW,
    ['A'] = A_UP, ['B'] = A_UP, ['C'] = A_UP, ['D'] = A_UP, ['E'] = A_UP, ['F'] = A_UP, ['G'] = A_UP,
    ['H'] = A_UP, ['I'] = A_UP, ['J'] = A_UP, ['K'] = A_UP, ['L'] = A_UP, ['M'] = A_UP, ['N'] = A_UP,
    ['O'] = A_UP, ['P'] = A_UP, ['Q'] = A_UP, ['R'] = A_UP, ['S'] = A_UP, ['T'] = A_UP, ['U'] = A_UP,
    ['V'] = A_UP, ['W'] = A_UP, ['X'] = A_UP, ['Y'] = A_UP, ['Z'] = A_UP};
#undef A_LOW
#undef A_UP
#undef A_D

static long scan_flags(const Py_UCS4 *s, Py_ssize_t L) {
    long flags = 0;
    int prev_cls = 0;     /* 1 = [a-z], 2 = [0-9@$] */
    int run = 0;          /* letters of the current letter-separator-letter sequence */
    int run_dot = 0;      /* the same with '.' or '*' separators only (V.A.Y) */
    int after_letter = 0;
    for (Py_ssize_t i = 0; i < L; i++) {
        Py_UCS4 ch = s[i];
        int t;
        if (ch < 0x80) {
            t = SCAN_ASCII[ch];
        } else {
            int c = ch_class(ch);
            t = (c & CC_DEC ? A_DEC : 0) | (c & CC_LETTER ? A_LETTER : 0);
        }
        flags |= t & (A_DEC | A_DOTSLASH);         /* flags 1 and 2 */
        int cls = t & A_AZ ? 1 : t & A_LEETO ? 2 : 0;
        if (cls && prev_cls && cls != prev_cls) flags |= 8;
        prev_cls = cls;
        if (t & A_LETTER) {
            run = after_letter ? 1 : run + 1;
            run_dot = after_letter ? 1 : run_dot + 1;
            if (run >= 4 || run_dot >= 3) flags |= 4;
            after_letter = 1;
        } else if (t & A_SEP) {
            if (!after_letter) run = 0;
            if (!after_letter || !(t & A_SEPDOT)) run_dot = 0;
            after_letter = 0;
        } else {
            run = run_dot = 0;
            after_letter = 0;
        }
    }
    return flags;
}
