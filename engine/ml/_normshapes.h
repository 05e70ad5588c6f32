/* features._shapes in C: the shape tokens of a casefolded text (included by _fastnorm.h,
 * after _normtext.h). */

/* One loop over the text tries at each position the shape regexes that can start there (a
 * search() is "some position matches"). _shapes' substring guards that a match implies are
 * left out; the two that are not implied ("xx"/"**" for _masked_, the chat words for "(ib)")
 * are tested after a match. */
enum { SH_MASKED = 1, SH_HOTLINE = 2, SH_CTA = 4, SH_PERMSG = 8, SH_HANDLE = 16, SH_CHAT = 32, SH_CHAT_IB = 64 };

static inline int xs(Py_UCS4 ch) { return ch == 'x' || ch == '*'; }

static int masked_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {     /* \d ?[x*]{2,}|[x*]{3,} ?\d */
    /* ' ?' backing off leaves a space where [x*] or \d is needed: a space is taken if there */
    Py_ssize_t q = p + 1 + (p + 1 < n && s[p + 1] == ' ');
    if (q + 1 < n && xs(s[q]) && xs(s[q + 1])) return 1;
    Py_ssize_t b = p - (p >= 1 && s[p - 1] == ' ');
    return b >= 3 && xs(s[b - 1]) && xs(s[b - 2]) && xs(s[b - 3]);
}

static int hotline_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {    /* (?<!\d)1[89]00[\d .]{4,} */
    if (p + 8 > n || (s[p + 1] != '8' && s[p + 1] != '9') || s[p + 2] != '0' || s[p + 3] != '0') return 0;
    if (p > 0 && IS_DEC(s[p - 1])) return 0;
    for (Py_ssize_t q = p + 4; q < p + 8; q++)
        if (s[q] != ' ' && s[q] != '.' && !IS_DEC(s[q])) return 0;
    return 1;
}

static int cta_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {  /* (?:gửi|gui|send|to|txt|text|sms)\s+\d{3,5}\b */
    static const lit_t W[] = {LIT("g\u1eedi"), LIT("gui"), LIT("send"), LIT("to"), LIT("txt"), LIT("text"), LIT("sms")};
    if (p + 1 >= n || !(s[p + 1] == 0x1eed || s[p + 1] == 'u' || s[p + 1] == 'e' || s[p + 1] == 'o' || s[p + 1] == 'x'
                        || s[p + 1] == 'm'))
        return 0;                                   /* the second letters of the words */
    for (size_t k = 0; k < sizeof W / sizeof *W; k++) {
        /* the words differ in their first two letters: at most one matches here */
        if (!lit_at(s, n, p, W[k])) continue;
        Py_ssize_t q = p + W[k].n, d;
        if (q >= n || !IS_SPACE(s[q])) return 0;
        while (q < n && IS_SPACE(s[q])) q++;            /* giving spaces back puts one where \d is needed */
        for (d = q; d < n && IS_DEC(s[d]); d++);
        /* \d{3,5}\b: a longer run has a digit after any 3-5 of its digits */
        return d - q >= 3 && d - q <= 5 && word_ends(s, n, d);
    }
    return 0;
}

static int word_after(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p, const lit_t *w, size_t nw) {
    for (size_t k = 0; k < nw; k++)
        if (lit_at(s, n, p, w[k]) && word_ends(s, n, p + w[k].n)) return (int)k + 1;
    return 0;
}

static int permsg_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {    /* (?:/|\bper )(?:msg|...)\b */
    static const lit_t PER = LIT("per "), W[] = {LIT("msg"), LIT("sms"), LIT("tin"), LIT("min"), LIT("phut"), LIT("ph\u00fat")};
    Py_ssize_t q = s[p] == '/' ? p + 1 : lit_at(s, n, p, PER) && (p == 0 || !IS_WORD(s[p - 1])) ? p + 4 : -1;
    return q >= 0 && word_after(s, n, q, W, sizeof W / sizeof *W);
}

static int handle_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {    /* @[a-z_][\w.]{2,} */
    return p + 3 < n && (IS_AZ(s[p + 1]) || s[p + 1] == '_') && (s[p + 2] == '.' || IS_WORD(s[p + 2]))
           && (s[p + 3] == '.' || IS_WORD(s[p + 3]));
}

static int chat_at(const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t p) {  /* \b(?:tele|telegram|zalo|whatsapp|ib|inbox)\b */
    static const lit_t W[] = {LIT("tele"), LIT("telegram"), LIT("zalo"), LIT("whatsapp"), LIT("ib"), LIT("inbox")};
    if (p > 0 && IS_WORD(s[p - 1])) return 0;
    int k = word_after(s, n, p, W, sizeof W / sizeof *W);
    return k == 0 ? 0 : k == 5 ? SH_CHAT_IB : SH_CHAT;
}

/* _shapes(t, fl): the shape tokens, space-led, in features.py's order, appended to o */
static int shapes(ubuf *o, const Py_UCS4 *s, Py_ssize_t n, long fl) {
    static const lit_t XX = LIT("xx"), STARS = LIT("**"), TELE = LIT("tele"), ZALO = LIT("zalo"), WA = LIT("whatsapp"),
                       SIB = LIT(" ib"), IB = LIT("ib"), INBOX = LIT("inbox");
    int digits = fl & 1, f = 0;
    /* which regexes can start at an ASCII character; without a digit only the last four can match */
    enum { T_DEC = 1, T_HOT = 2, T_CTA = 4, T_CHAT = 8, T_P = 16, T_SLASH = 32, T_AT = 64 };
    static const uint8_t START[128] = {
        ['0'] = T_DEC, ['1'] = T_DEC | T_HOT, ['2'] = T_DEC, ['3'] = T_DEC, ['4'] = T_DEC, ['5'] = T_DEC,
        ['6'] = T_DEC, ['7'] = T_DEC, ['8'] = T_DEC, ['9'] = T_DEC, ['g'] = T_CTA, ['s'] = T_CTA,
        ['t'] = T_CTA | T_CHAT, ['z'] = T_CHAT, ['w'] = T_CHAT, ['i'] = T_CHAT, ['p'] = T_P, ['/'] = T_SLASH,
        ['@'] = T_AT};
    const int need = digits ? 0x7f : T_CHAT | T_P | T_SLASH | T_AT;
    for (Py_ssize_t p = 0; p < n; p++) {
        Py_UCS4 ch = s[p];
        if (ch >= 0x80) {
            if (digits && IS_DEC(ch) && masked_at(s, n, p)) f |= SH_MASKED;
            continue;
        }
        int k = START[ch] & need;
        if (!k) continue;
        if ((k & T_DEC) && masked_at(s, n, p)) f |= SH_MASKED;
        if ((k & T_HOT) && hotline_at(s, n, p)) f |= SH_HOTLINE;
        if ((k & T_CTA) && cta_at(s, n, p)) f |= SH_CTA;
        if (k & T_CHAT) f |= chat_at(s, n, p);
        if (k & T_P) {                                  /* p\b(?<=\dp), then \bper  */
            if (digits && p > 0 && IS_DEC(s[p - 1]) && word_ends(s, n, p + 1)) f |= SH_PERMSG;
            else if (permsg_at(s, n, p)) f |= SH_PERMSG;
        }
        if ((k & T_SLASH) && permsg_at(s, n, p)) f |= SH_PERMSG;
        if ((k & T_AT) && handle_at(s, n, p)) f |= SH_HANDLE;
    }
    if ((f & SH_MASKED) && !contains(s, n, XX) && !contains(s, n, STARS)) f &= ~SH_MASKED;
    if (!(f & SH_CHAT) && (f & SH_CHAT_IB)
        && (contains(s, n, TELE) || contains(s, n, ZALO) || contains(s, n, WA) || contains(s, n, SIB)
            || lit_at(s, n, 0, IB) || contains(s, n, INBOX)))
        f |= SH_CHAT;
    return ((f & SH_MASKED) && ub_ascii(o, " _masked_")) || ((f & SH_HOTLINE) && ub_ascii(o, " _hotline_"))
           || ((f & SH_CTA) && ub_ascii(o, " _cta_")) || ((f & SH_PERMSG) && ub_ascii(o, " _permsg_"))
           || ((f & SH_HANDLE) && ub_ascii(o, " _handle_")) || ((f & SH_CHAT) && ub_ascii(o, " _chat_")) ? -1 : 0;
}

/* features._SHOUT and _LOWER3 on the text as sent: \b[A-Z]{4,}\b somewhere and [a-z]{3} somewhere. A shorter
 * run of [A-Z] is followed by [A-Z], a word character: only a whole run can end at a boundary. */
static int shout(PyObject *text) {
    const int kind = PyUnicode_KIND(text);
    const void *d = PyUnicode_DATA(text);
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int caps = 0, lower = 0;
    Py_ssize_t lo = 0;                              /* length of the run of [a-z] ending here */
    for (Py_ssize_t p = 0; p < n && !(caps && lower); p++) {
        Py_UCS4 c = PyUnicode_READ(kind, d, p);
        lo = c >= 'a' && c <= 'z' ? lo + 1 : 0;
        if (lo >= 3) lower = 1;
        if (caps || c < 'A' || c > 'Z' || (p > 0 && IS_WORD(PyUnicode_READ(kind, d, p - 1)))) continue;
        Py_ssize_t r = p;
        while (r < n && (c = PyUnicode_READ(kind, d, r)) >= 'A' && c <= 'Z') r++;
        if (r - p >= 4 && (r == n || !IS_WORD(PyUnicode_READ(kind, d, r)))) caps = 1;
    }
    return caps && lower;
}

/* features._KWCTA on the text as sent (before case folding): \b(?i:reply|send|text|txt)\s+[A-Z][A-Z0-9]+\b.
 * re's case-insensitive match of these letters also takes U+017F (long s) for s; no other code point
 * folds onto them. [A-Z0-9]+\b: a shorter run is followed by [A-Z0-9], a word character, so only the
 * whole run can end at a boundary. */
static inline Py_UCS4 kw_fold(Py_UCS4 ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch == 0x17f ? 's' : ch; }

static int kwcta(PyObject *text) {
    static const char *const W[] = {"reply", "send", "text", "txt"};
    const int kind = PyUnicode_KIND(text);
    const void *d = PyUnicode_DATA(text);
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t p = 0; p < n; p++) {
        Py_UCS4 c = kw_fold(PyUnicode_READ(kind, d, p));
        if ((c != 'r' && c != 's' && c != 't') || (p > 0 && IS_WORD(PyUnicode_READ(kind, d, p - 1)))) continue;
        for (size_t k = 0; k < sizeof W / sizeof *W; k++) {
            Py_ssize_t q = p;
            const char *w = W[k];
            while (*w && q < n && kw_fold(PyUnicode_READ(kind, d, q)) == (Py_UCS4)(unsigned char)*w) { w++; q++; }
            if (*w || q >= n || !IS_SPACE(PyUnicode_READ(kind, d, q))) continue;
            while (q < n && IS_SPACE(PyUnicode_READ(kind, d, q))) q++;
            Py_ssize_t r = q;
            for (; r < n; r++) {
                Py_UCS4 x = PyUnicode_READ(kind, d, r);
                if (!((x >= 'A' && x <= 'Z') || (r > q && x >= '0' && x <= '9'))) break;
            }
            if (r - q >= 2 && (r == n || !IS_WORD(PyUnicode_READ(kind, d, r)))) return 1;
        }
    }
    return 0;
}
