/* features.normalise in C: the same string as the regex passes of features.normalise_py,
 * for every input. Included by _fastfeat.c.
 *
 * Theory of operation. Python's `re` on str uses Unicode classes: \w is
 * Py_UNICODE_ISALNUM(ch) or '_', \d is Py_UNICODE_ISDECIMAL, \s is Py_UNICODE_ISSPACE, \b is a
 * change between word and non-word (the ends count as non-word), and [^\W\d_] (a "letter"
 * below) is alnum and not decimal. ch_class() caches those four facts per code point in lazily
 * filled 256-entry blocks (the macros are up to four calls into the Unicode database each).
 * Each pass is a hand-written matcher for one regex of features.py, run as re.sub runs it:
 * leftmost match first, then the search resumes at the match's end, and lookarounds and \b
 * read the pass's input string, not the text being built. Where a regex backtracks, the
 * matcher says which backtracking choice wins (the greedy longest that passes), rule by rule
 * in the comments. The casefold and NFKC steps call the str method and
 * unicodedata.normalize, so they are Python's own; zero-width marks are dropped on the copy.
 * The passes run under the same scan flags as in Python (scan_flags), so a skipped pass is
 * skipped in both. tests/test_ml_norm_fast.py compares the two on corpora and fuzzed input.
 * Buffers are static, grow on demand and are freed after a text of over 64k code points; the
 * GIL is held throughout (and nothing called back into Python runs while they are in use).
 */

#include "_normtext.h"         /* character classes, literals, buffers, scan flags */
#include "_normshapes.h"       /* the shape tokens (_shapes) */

/* ---- features._URLS and features._url ------------------------------------------------- */

static inline int az09h(Py_UCS4 ch) { return IS_AZ(ch) || (ch >= '0' && ch <= '9') || ch == '-'; }

static const char *const TLDS[] = {"com", "net", "org", "vn", "info", "biz", "co", "uk", "io", "me", "xyz",
                                   "top", "club", "online", "site", "ly", "gl", "example"};

/* \.(?:com|...)\b(?:/\S*)? with the dot at p - 1: the end of the match, or -1. The first
 * alternative followed by \b wins (the optional path always succeeds after it). */
static Py_ssize_t tld_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {
    for (size_t t = 0; t < sizeof TLDS / sizeof *TLDS; t++) {
        const char *w = TLDS[t];
        Py_ssize_t j = 0;
        while (w[j] && p + j < n && s[p + j] == (Py_UCS4)w[j]) j++;
        if (w[j] || !word_ends(s, n, p + j)) continue;
        Py_ssize_t e = p + j;
        if (e < n && s[e] == '/')
            for (e++; e < n && !IS_SPACE(s[e]); e++);
        return e;
    }
    return -1;
}

/* The end of a _URLS match starting at i, or -1. *chain_fail: the end of a dotted run in which
 * the second alternative has failed (see below), -1 at first. */
static Py_ssize_t url_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t i, Py_ssize_t *chain_fail) {
    static const lit_t HTTP = LIT("http"), SEP = LIT("://"), WWW = LIT("www.");
    /* (?=[hw])(?:https?://|www\.)\S+ : the two prefixes exclude each other, \S+ is greedy */
    Py_ssize_t k = -1;
    if (lit_at(s, n, i, HTTP)) {
        Py_ssize_t j = i + 4 + (i + 4 < n && s[i + 4] == 's');
        if (lit_at(s, n, j, SEP)) k = j + 3;
    } else if (lit_at(s, n, i, WWW)) {
        k = i + 4;
    }
    if (k >= 0 && k < n && !IS_SPACE(s[k])) {
        while (k < n && !IS_SPACE(s[k])) k++;
        return k;
    }
    /* (?<![a-z0-9-])(?=[a-z0-9-]+\.)[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:tld)\b(?:/\S*)?
     * The first label is the whole [a-z0-9-] run (the lookahead puts a dot after it); each
     * repeated label is a whole run too (backing off inside one leaves no dot to match). The
     * greedy repetition then gives labels back one at a time: the TLD is tried after each
     * dot of the dotted run, last dot first. After the last label no dot can be followed by
     * a TLD (a letter would have extended the run). A later start inside the same dotted run
     * meets the same run end and a subset of its dots, so once a run has failed its other labels
     * are not tried again (re tries them, which makes "a.b." * 3000 + " x.com" quadratic). */
    if ((i > 0 && az09h(s[i - 1])) || !az09h(s[i]) || s[i] == '-' || i < *chain_fail) return -1;
    Py_ssize_t j = i;
    while (j < n && az09h(s[j])) j++;
    if (j >= n || s[j] != '.') return -1;
    Py_ssize_t e = j;
    while (e + 1 < n && s[e] == '.' && az09h(s[e + 1]))
        for (e += 2; e < n && az09h(s[e]); e++);
    for (Py_ssize_t q = e - 1; q >= j; q--) {
        if (s[q] != '.') continue;
        Py_ssize_t end = tld_at(s, n, q + 1);
        if (end >= 0) return end;
    }
    *chain_fail = e;
    return -1;
}

/* _url(): " _url_ " and the _urlhy_/_urlpath_/_urldig_ shape tokens of the domain part
 * (after the first "://", up to the first '/'), then the domain's words. */
static int url_token(ubuf *o, const Py_UCS4 *s, Py_ssize_t i, Py_ssize_t end) {
    static const lit_t SEP = LIT("://");
    Py_ssize_t d = i;
    for (Py_ssize_t p = i; p + 3 <= end; p++)
        if (lit_at(s, end, p, SEP)) { d = p + 3; break; }
    Py_ssize_t de = d;
    while (de < end && s[de] != '/') de++;
    int hy = 0, dig = 0;
    for (Py_ssize_t p = d; p < de; p++) {
        hy |= s[p] == '-';
        dig |= !!IS_DEC(s[p]);
    }
    if (ub_ascii(o, " _url_ ") || (hy && ub_ascii(o, "_urlhy_ ")) || (de + 1 < end && ub_ascii(o, "_urlpath_ "))
        || (dig && ub_ascii(o, "_urldig_ ")))
        return -1;
    /* the domain's words: its pieces between '-' and '.' but the last, none empty or "www" */
    for (Py_ssize_t a = d, p = d; p < de; p++) {
        if (s[p] != '-' && s[p] != '.') continue;
        int www = p - a == 3 && s[a] == 'w' && s[a + 1] == 'w' && s[a + 2] == 'w';
        if (p > a && !www && (ub_put(o, s + a, p - a) || ub_ascii(o, " ")))
            return -1;
        a = p + 1;
    }
    return 0;
}

/* ---- features._NUMS and features._tok ------------------------------------------------ */

static inline int currency(Py_UCS4 ch) {
    return ch == 0xA3 || ch == '$' || ch == 0x20AC || ch == 0xA5 || ch == 0x20AB;   /* £ $ € ¥ ₫ */
}

static inline int dec_dot_comma(Py_UCS4 ch) { return ch == '.' || ch == ',' || IS_DEC(ch); }

/* (?:[£$€¥₫]|vnd|vnđ|dong|đồng|usd|k\b|tr\b|trieu\b|triệu\b|ty\b|tỷ\b|pounds?\b|p\b) at p: the
 * end of the first alternative that matches, or -1 */
static Py_ssize_t money_suffix(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {
    static const lit_t PLAIN[] = {LIT("vnd"), LIT("vn\u0111"), LIT("dong"), LIT("\u0111\u1ed3ng"), LIT("usd")};
    static const lit_t WORDS[] = {LIT("k"), LIT("tr"), LIT("trieu"), LIT("tri\u1ec7u"), LIT("ty"), LIT("t\u1ef7"),
                                  LIT("pounds"), LIT("pound"), LIT("p")};
    if (p >= n) return -1;
    if (currency(s[p])) return p + 1;
    for (size_t k = 0; k < sizeof PLAIN / sizeof *PLAIN; k++)
        if (lit_at(s, n, p, PLAIN[k])) return p + PLAIN[k].n;
    for (size_t k = 0; k < sizeof WORDS / sizeof *WORDS; k++)
        if (lit_at(s, n, p, WORDS[k]) && word_ends(s, n, p + WORDS[k].n)) return p + WORDS[k].n;
    return -1;
}

static inline int phone_class(Py_UCS4 ch) { return ch == ' ' || ch == '.' || ch == '-' || IS_DEC(ch); }

enum { NUM_MONEY = 1, NUM_PHONE, NUM_NUM };

typedef struct {       /* per-run results, valid while the search position is inside the run */
    Py_ssize_t mb_run, mb_end;     /* money after digits: [\d.,] run end, match end or -1 */
    Py_ssize_t ph_run, ph_last;    /* phone: [\d .-] run end, its last digit followed by \W, or -1 */
} nums_cache;

/* The end of a _NUMS match starting at i (and its group in *g), or -1. */
static Py_ssize_t nums_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t i, int *g, nums_cache *c) {
    Py_UCS4 ch = s[i];
    if (ch < 0x80 ? !((ch >= '0' && ch <= '9') || ch == '+' || ch == '$') : !currency(ch) && !IS_DEC(ch))
        return -1;                                                 /* (?=[£$€¥₫\d+]) */
    int dec = IS_DEC(ch);
    *g = NUM_MONEY;
    if (currency(ch)) {
        /* [£$€¥₫]\s?\d[\d.,]* : \s? backing off leaves a space where \d is needed */
        Py_ssize_t q = i + 1;
        if (q < n && IS_SPACE(s[q])) q++;
        if (q < n && IS_DEC(s[q])) {
            for (q++; q < n && dec_dot_comma(s[q]); q++);
            return q;
        }
    }
    if (dec) {
        /* \d[\d.,]*\s?(?:suffix) : every suffix starts with neither [\d.,] nor a space, so only
         * the whole run can be followed by one, after a space if there is one, else directly.
         * Every digit of a run meets the same run end and suffix: computed once per run. */
        if (i >= c->mb_run) {
            Py_ssize_t e = i + 1;
            while (e < n && dec_dot_comma(s[e])) e++;
            c->mb_run = e;
            c->mb_end = money_suffix(s, n, e < n && IS_SPACE(s[e]) ? e + 1 : e);
        }
        if (c->mb_end >= 0) return c->mb_end;
    }
    *g = NUM_PHONE;
    if (i == 0 || !IS_WORD(s[i - 1])) {
        /* (?<!\w)\+?\d[\d .-]{6,}\d(?!\w) : the greedy class run gives characters back until a
         * digit is followed by a non-word character; inside the run that is a digit followed by
         * ' ', '.' or '-', at its end a digit followed by \W or the end. The latest such digit
         * of the run serves every start; the match needs it 7 or more places after the first digit. */
        Py_ssize_t q = i + (ch == '+');
        if (q < n && IS_DEC(s[q])) {
            if (q >= c->ph_run) {
                Py_ssize_t r = q + 1;
                while (r < n && phone_class(s[r])) r++;
                c->ph_run = r;
                c->ph_last = -1;
                for (Py_ssize_t x = r - 1; x > q; x--)
                    if (IS_DEC(s[x]) && word_ends(s, n, x + 1)) { c->ph_last = x; break; }
            }
            if (c->ph_last >= q + 7) return c->ph_last + 1;
        }
    }
    *g = NUM_NUM;
    if (dec) {                                                     /* \d{4,} */
        Py_ssize_t e = i + 1;
        while (e < n && IS_DEC(s[e])) e++;
        if (e - i >= 4) return e;
    }
    return -1;
}

static int nums_token(ubuf *o, const Py_UCS4 *s, Py_ssize_t i, Py_ssize_t end, int g) {
    if (g == NUM_MONEY) return ub_ascii(o, " _money_ ");
    /* _tok counts str.isdigit characters; the match holds only \d (all isdigit) and " .-+" */
    int nd = 0;
    for (Py_ssize_t p = i; p < end; p++) nd += !!IS_DEC(s[p]);
    char tok[24];
    snprintf(tok, sizeof tok, " _%s%d_ ", g == NUM_PHONE ? "phone" : "num", nd < 12 ? nd : 12);
    return ub_ascii(o, tok) || ub_put(o, s + i, end - i) || ub_ascii(o, " ");
}

/* ---- features._SPACED and features._unspace ------------------------------------------ */

static inline int sep_any(Py_UCS4 ch) { return ch == ' ' || ch == '.' || ch == '*' || ch == '_' || ch == '-'; }
static inline int sep_dot(Py_UCS4 ch) { return ch == '.' || ch == '*'; }

/* \b(?:L[sep]){min,}L\b at i (a letter after a non-word character): the end, or -1.
 * Greedy: as many letter-separator pairs as there are, then back off a pair at a time until
 * a letter is followed by \b ('_' is a word character, the other separators are not). */
static Py_ssize_t spaced_alt(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t i, int (*sep)(Py_UCS4), int min) {
    Py_ssize_t k = 0;
    while (i + 2 * k + 1 < n && IS_LETTER(s[i + 2 * k]) && sep(s[i + 2 * k + 1])) k++;
    for (Py_ssize_t m = k; m >= min; m--) {
        Py_ssize_t p = i + 2 * m;
        if (p < n && IS_LETTER(s[p]) && word_ends(s, n, p + 1)) return p + 1;
    }
    return -1;
}

/* ---- features._LEETWORD and features._unleet ----------------------------------------- */

static inline int leet_ch(Py_UCS4 ch) { return IS_AZ(ch) || (ch >= '0' && ch <= '9') || ch == '@' || ch == '$'; }

static Py_UCS4 unleet(Py_UCS4 ch) {
    switch (ch) {
    case '0': return 'o';
    case '1': return 'i';
    case '3': return 'e';
    case '4': return 'a';
    case '5': return 's';
    case '7': return 't';
    case '@': return 'a';
    case '$': return 's';
    default: return ch;
    }
}

/* ---- the passes ------------------------------------------------------------------------ */

/* features._URLHINT: a URL needs "://", "www." or a dot with a TLD and \b after it (exactly
 * the condition _URLS puts on its dot); most texts with a '.' have none, and this test reads
 * only the dots and colons. */
static int url_hint(const Py_UCS4 *s, Py_ssize_t n) {
    for (Py_ssize_t p = 0; p < n; p++) {
        if (s[p] == '.') {
            if ((p >= 3 && s[p - 1] == 'w' && s[p - 2] == 'w' && s[p - 3] == 'w') || tld_at(s, n, p + 1) >= 0) return 1;
        } else if (s[p] == ':' && p + 2 < n && s[p + 1] == '/' && s[p + 2] == '/') {
            return 1;
        }
    }
    return 0;
}

/* Each pass writes its result into o (from empty) and returns the number of matches (0: o is
 * unused and the input stands), or -1 on error. */
static Py_ssize_t url_pass(const ubuf *in, ubuf *o) {
    const Py_UCS4 *s = in->p;
    Py_ssize_t n = in->n, last = 0, hits = 0;
    o->n = 0;
    if (!url_hint(s, n)) return 0;
    Py_ssize_t chain_fail = -1;
    for (Py_ssize_t i = 0; i < n;) {
        Py_ssize_t e = url_at(s, n, i, &chain_fail);
        if (e < 0) { i++; continue; }
        if (ub_put(o, s + last, i - last) || url_token(o, s, i, e)) return -1;
        hits++;
        i = last = e;
    }
    return hits && ub_put(o, s + last, n - last) ? -1 : hits;
}

static Py_ssize_t nums_pass(const ubuf *in, ubuf *o) {
    const Py_UCS4 *s = in->p;
    Py_ssize_t n = in->n, last = 0, hits = 0;
    nums_cache c = {-1, -1, -1, -1};
    o->n = 0;
    for (Py_ssize_t i = 0; i < n;) {
        int g;
        Py_ssize_t e = nums_at(s, n, i, &g, &c);
        if (e < 0) { i++; continue; }
        if (ub_put(o, s + last, i - last) || nums_token(o, s, i, e, g)) return -1;
        hits++;
        i = last = e;
    }
    return hits && ub_put(o, s + last, n - last) ? -1 : hits;
}

static Py_ssize_t spaced_pass(const ubuf *in, ubuf *o) {
    const Py_UCS4 *s = in->p;
    Py_ssize_t n = in->n, last = 0, hits = 0;
    o->n = 0;
    for (Py_ssize_t i = 0; i < n;) {
        Py_ssize_t e = -1;
        if (IS_LETTER(s[i]) && (i == 0 || !IS_WORD(s[i - 1]))) {
            e = spaced_alt(s, n, i, sep_any, 3);
            if (e < 0) e = spaced_alt(s, n, i, sep_dot, 2);
        }
        if (e < 0) { i++; continue; }
        if (ub_put(o, s + last, i - last) || ub_reserve(o, e - i)) return -1;
        for (Py_ssize_t p = i; p < e; p++)                  /* _unspace: the separators go */
            if (!sep_any(s[p])) o->p[o->n++] = s[p];
        hits++;
        i = last = e;
    }
    return hits && ub_put(o, s + last, n - last) ? -1 : hits;
}

/* (?<![\w@$])(?=[a-z0-9@$]*[a-z][a-z0-9@$]*[a-z])(?=[a-z]*[0-9@$])[a-z0-9@$]{3,}(?![\w@$]):
 * only the start of a [a-z0-9@$] run passes the lookbehind; the lookaheads ask for two letters
 * and one of 0-9@$ in the run; the greedy run backs off only onto characters of the run,
 * which fail (?![\w@$]). _unleet maps characters one for one, so this pass works in place. */
static void leet_pass(ubuf *b) {
    Py_UCS4 *s = b->p;
    Py_ssize_t n = b->n;
    for (Py_ssize_t i = 0; i < n;) {
        if (!leet_ch(s[i]) || (i > 0 && (IS_WORD(s[i - 1]) || s[i - 1] == '@' || s[i - 1] == '$'))) { i++; continue; }
        Py_ssize_t j = i, letters = 0;
        for (; j < n && leet_ch(s[j]); j++) letters += IS_AZ(s[j]);
        Py_ssize_t others = (j - i) - letters;
        if (letters >= 2 && others >= 1 && (j == n || !(IS_WORD(s[j]) || s[j] == '@' || s[j] == '$'))
            && others * 2 < j - i)
            for (Py_ssize_t p = i; p < j; p++) s[p] = unleet(s[p]);
        i = j;
    }
}

static ubuf nb_a, nb_b, nb_extra;
static PyObject *nfkc_fn, *nfkc_form, *casefold_name;

static inline int zero_width(Py_UCS4 ch) {   /* features._ZW */
    return ch == 0x200b || ch == 0x200c || ch == 0x200d || ch == 0x2060 || ch == 0xfeff || ch == 0xad || ch == 0x200e
           || ch == 0x200f;
}

/* normalise(text) -> features.normalise_py(text) */
static PyObject *py_normalise(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text)) { PyErr_SetString(PyExc_TypeError, "str expected"); return NULL; }
    ubuf *a = &nb_a, *b = &nb_b;
    Py_ssize_t L = PyUnicode_GET_LENGTH(text);
    const int kw = kwcta(text), sh = shout(text);
    a->n = b->n = 0;
    if (PyUnicode_IS_ASCII(text)) {                  /* casefold of ASCII is lower() */
        const Py_UCS1 *d = PyUnicode_1BYTE_DATA(text);
        if (ub_reserve(a, L)) return NULL;
        for (Py_ssize_t i = 0; i < L; i++) a->p[i] = d[i] >= 'A' && d[i] <= 'Z' ? d[i] + 32 : d[i];
        a->n = L;
    } else {
        /* text.casefold(), then NFKC when that is not ASCII (as normalise_py), then _ZW dropped */
        PyObject *t = PyObject_CallMethodNoArgs(text, casefold_name);
        if (t && !PyUnicode_IS_ASCII(t)) {
            PyObject *u = PyObject_CallFunctionObjArgs(nfkc_fn, nfkc_form, t, NULL);
            Py_DECREF(t);
            t = u;
        }
        if (!t) return NULL;
        if (!PyUnicode_Check(t)) {
            Py_DECREF(t);
            PyErr_SetString(PyExc_TypeError, "casefold/NFKC did not return str");
            return NULL;
        }
        int kind = PyUnicode_KIND(t);
        const void *d = PyUnicode_DATA(t);
        Py_ssize_t n = PyUnicode_GET_LENGTH(t);
        a->n = 0;              /* a str subclass's casefold may have called normalise meanwhile */
        if (ub_reserve(a, n)) { Py_DECREF(t); return NULL; }
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 ch = PyUnicode_READ(kind, d, i);
            if (!zero_width(ch)) a->p[a->n++] = ch;
        }
        Py_DECREF(t);
    }
    long fl = scan_flags(a->p, a->n);
    Py_ssize_t r;
    ubuf *tmp;
#define SWAP_IF(hits) do { if ((r = (hits)) < 0) return NULL; if (r) { tmp = a; a = b; b = tmp; } } while (0)
    if (fl & 2) SWAP_IF(url_pass(a, b));
    nb_extra.n = 0;
    if (shapes(&nb_extra, a->p, a->n, fl) || (kw && ub_ascii(&nb_extra, " _kwcta_"))
        || (sh && ub_ascii(&nb_extra, " _shout_"))) return NULL;
    /* the flags stay valid after the URL pass: see features.normalise_py */
    if (fl & 1) SWAP_IF(nums_pass(a, b));
    if (fl & 4) SWAP_IF(spaced_pass(a, b));
#undef SWAP_IF
    if (fl & 8) leet_pass(a);
    if (nb_extra.n && ub_put(a, nb_extra.p, nb_extra.n)) return NULL;
    PyObject *out = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, a->p, a->n);
    ub_trim(&nb_a);
    ub_trim(&nb_b);
    return out;
}

static int normalise_init(void) {
    PyObject *ud = PyImport_ImportModule("unicodedata");
    if (!ud) return -1;
    nfkc_fn = PyObject_GetAttrString(ud, "normalize");
    Py_DECREF(ud);
    nfkc_form = PyUnicode_InternFromString("NFKC");
    casefold_name = PyUnicode_InternFromString("casefold");
    return nfkc_fn && nfkc_form && casefold_name ? 0 : -1;
}
