/* The feature ids of one message for _fastfeat.c (steps 1-4 of its theory of operation): the canonical
 * text (tokens, teencode written out, features._canonical), its diacritic fold, the hashed char n-grams,
 * words, bigrams, folded words, shape tokens and raw-text n-grams of features.feature_ids, and the
 * language (features.language) decided in the same pass. No Python objects are made; the tables are
 * filled by _fastfeat.c's set_fold_table and set_teencode, and the static buffers are bounded by MAXLEN.
 */

#define MAXLEN 2048                 /* features._MAXLEN: canonical text length bound */
#define DIM_BITS 20
#define R_MUL 0x100000001B3ULL
#define MIX 0xC2B2AE3D27D4EB4FULL
#define FOLD_LIMIT 0x3000            /* features._FOLD_LIMIT */
#define RAW_MIN 3                    /* features.RAW_NGRAMS: char n-grams of the raw text */
#define RAW_MAX 5
#define MAXIDS (3 * MAXLEN + 3 * MAXLEN + 3 * MAXLEN + 8)

static uint64_t SALT[16];
static uint32_t fold_table[FOLD_LIMIT];    /* code point -> folded code point, 0 = drop */
static uint8_t vi_letter[FOLD_LIMIT];       /* 1: a letter only Vietnamese uses (either case) */
static int last_vi;                         /* language of the last compute_ids(): 1 = Vietnamese */
static int fold_ready = 0;

#define TEEN_MAX 64
#define TEEN_KEY 8
#define TEEN_VAL 32
static Py_UCS4 teen_key[TEEN_MAX][TEEN_KEY];
static Py_ssize_t teen_klen[TEEN_MAX];
static Py_UCS4 teen_val[TEEN_MAX][TEEN_VAL];
static Py_ssize_t teen_vlen[TEEN_MAX];
/* the teencode words by their first code point's low byte: bit L of teen_lens[b] says one of L characters starts so,
 * teen_at[b] lists them (set_teencode fills both). A token is compared with those alone, not with every word: the
 * loop over all of them for each token of a text was ~3,000 instructions a message */
static uint16_t teen_lens[256];
static uint8_t teen_at[256][TEEN_MAX];
static uint8_t teen_n_at[256];

static Py_UCS4 canon[MAXLEN + 2];
static Py_UCS4 folded[MAXLEN + 2];
static Py_UCS4 rawbuf[MAXLEN];
static Py_ssize_t next_mark[MAXLEN + 1];
static int64_t ids_buf[MAXIDS];

static inline int64_t finish(uint64_t h) {
    h ^= h >> 31;
    h *= MIX;
    return (int64_t)(h >> (64 - DIM_BITS));
}

static inline uint64_t span_hash(const Py_UCS4 *c, Py_ssize_t s, Py_ssize_t e) {
    uint64_t h = 0, r = 1;
    for (Py_ssize_t i = s; i < e; i++) {
        h += (uint64_t)c[i] * r;
        r *= R_MUL;
    }
    return h;
}

/* Py_UNICODE_ISALNUM from the class table _normtext.h caches per code point (\w less '_'): the
 * library's test makes up to four type-record look-ups, for every character of every message */
static inline int is_alnum(Py_UCS4 ch) {
    return ch != '_' && IS_WORD(ch);
}

static inline int is_sym(Py_UCS4 ch) {
    return ch == '!' || ch == '?' || ch == 0xA3 || ch == '$' || ch == 0x20AC || ch == '%';
}

/* Build the canonical code points of a normalised text; returns its length. */
static Py_ssize_t build_canonical(PyObject *t) {
    int kind = PyUnicode_KIND(t);
    const void *data = PyUnicode_DATA(t);
    Py_ssize_t L = PyUnicode_GET_LENGTH(t), i = 0, n = 0;
    const Py_ssize_t cap = MAXLEN - 2;     /* " ".join(tokens)[:MAXLEN - 2] */
    int first = 1;
    canon[n++] = ' ';
    while (i < L && n - 1 < cap) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        Py_ssize_t s = i, e = -1;
        if (ch == '_') {
            Py_ssize_t j = i + 1;
            while (j < L) { Py_UCS4 d = PyUnicode_READ(kind, data, j); if (d >= 'a' && d <= 'z') j++; else break; }
            if (j > i + 1) {
                while (j < L && IS_DEC(PyUnicode_READ(kind, data, j))) j++;
                if (j < L && PyUnicode_READ(kind, data, j) == '_') e = j + 1;
            }
        } else if (is_alnum(ch)) {
            Py_ssize_t j = i + 1;
            while (j < L && is_alnum(PyUnicode_READ(kind, data, j))) j++;
            e = j;
        } else if (is_sym(ch)) {
            e = i + 1;
        }
        if (e < 0) { i++; continue; }
        if (!first) {
            if (n - 1 >= cap) break;
            canon[n++] = ' ';
        }
        first = 0;
        int t = -1;                         /* features._TEEN: a teencode word is written out */
        unsigned b0 = PyUnicode_READ(kind, data, s) & 0xFF;
        if (e - s <= TEEN_KEY && (teen_lens[b0] >> (e - s) & 1)) {
            for (int r = 0; r < teen_n_at[b0] && t < 0; r++) {
                int q = teen_at[b0][r];
                if (teen_klen[q] != e - s) continue;
                Py_ssize_t j = 0;
                while (j < e - s && teen_key[q][j] == PyUnicode_READ(kind, data, s + j)) j++;
                if (j == e - s) t = q;
            }
        }
        if (t >= 0)
            for (Py_ssize_t j = 0; j < teen_vlen[t] && n - 1 < cap; j++) canon[n++] = teen_val[t][j];
        else
            for (Py_ssize_t j = s; j < e && n - 1 < cap; j++) canon[n++] = PyUnicode_READ(kind, data, j);
        i = e;
    }
    canon[n++] = ' ';
    return n;
}

/* Fold canonical -> folded; returns folded length, or -1 when nothing changed. */
static Py_ssize_t build_folded(Py_ssize_t n) {
    Py_ssize_t m = 0;
    int changed = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 ch = canon[i];
        if (ch < FOLD_LIMIT) {
            uint32_t f = fold_table[ch];
            if (f != ch) changed = 1;
            if (f) folded[m++] = f;
        } else {
            folded[m++] = ch;
        }
    }
    return changed ? m : -1;
}

static Py_ssize_t word_hashes(const Py_UCS4 *c, Py_ssize_t n, uint64_t wsalt, uint64_t bsalt, int bigrams,
                              Py_ssize_t k) {
    Py_ssize_t prev_start = -1, start = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (c[i] != ' ') continue;
        if (start >= 0) {                       /* word [start, i) */
            ids_buf[k++] = finish(span_hash(c, start, i) + wsalt);
            if (bigrams && prev_start >= 0)
                ids_buf[k++] = finish(span_hash(c, prev_start, i) + bsalt);
            prev_start = start;
        }
        start = i + 1;
    }
    return k;
}

static inline int is_vowel(Py_UCS4 ch) {
    return ch == 'a' || ch == 'e' || ch == 'i' || ch == 'o' || ch == 'u' || ch == 'y';
}

/* features._VI_SYLLABLE's initials and finals, and features._EN_NOT_VI: common English words that are
 * well-formed syllables but rare as unaccented Vietnamese words (they do not count as syllables). UCS4 literals
 * with their lengths (_normtext.h): a strlen per string per word was ~10% of decision(). */
static const lit_t SYL_INITIALS[] = {LIT("ngh"), LIT("ng"), LIT("nh"), LIT("ch"), LIT("gh"), LIT("gi"), LIT("kh"),
                                     LIT("ph"), LIT("qu"), LIT("th"), LIT("tr"), LIT("b"), LIT("c"), LIT("d"),
                                     LIT("g"), LIT("h"), LIT("k"), LIT("l"), LIT("m"), LIT("n"), LIT("p"), LIT("r"),
                                     LIT("s"), LIT("t"), LIT("v"), LIT("x")};      /* and none (the empty one) */
static const lit_t SYL_FINALS[] = {LIT("ch"), LIT("ng"), LIT("nh"), LIT("c"), LIT("m"), LIT("n"), LIT("p"), LIT("t"),
                                   LIT("")};
static const lit_t EN_NOT_VI[] = {LIT("i"), LIT("you"), LIT("your"), LIT("u"), LIT("ur"), LIT("my"), LIT("me"),
                                  LIT("am"), LIT("it"), LIT("to"), LIT("in"), LIT("at"), LIT("but"), LIT("not"),
                                  LIT("get"), LIT("up"), LIT("out"), LIT("then"), LIT("got"), LIT("going"), LIT("go"),
                                  LIT("see"), LIT("by"), LIT("hey"), LIT("hi"), LIT("been"), LIT("they"), LIT("much"),
                                  LIT("too"), LIT("him"), LIT("doing"), LIT("say"), LIT("im"), LIT("let"), LIT("keep"),
                                  LIT("soon"), LIT("ya"), LIT("yup"), LIT("thing"), LIT("try"), LIT("trying"),
                                  LIT("being"), LIT("yet"), LIT("eat"), LIT("lot"), LIT("yo"), LIT("room"), LIT("dun"),
                                  LIT("liao"), LIT("lor"), LIT("lei")};
#define N_OF(t) (sizeof t / sizeof *t)

/* The initials and the English words by their first letter (index_by_letter, once the fold table is set): the words
 * looked up are all a-z, and each is compared with the entries of its first letter only (with every entry, a word
 * cost ~200 instructions a table; is_vietnamese looks up every word of a text without Vietnamese-only letters). */
typedef struct { uint8_t n, at[N_OF(EN_NOT_VI)]; } by_letter_t;
static by_letter_t initials_by[26], en_by[26];

static void index_by_letter(void) {
    memset(initials_by, 0, sizeof initials_by);
    memset(en_by, 0, sizeof en_by);
    for (size_t i = 0; i < N_OF(SYL_INITIALS); i++) {
        by_letter_t *b = &initials_by[SYL_INITIALS[i].s[0] - 'a'];
        b->at[b->n++] = (uint8_t)i;
    }
    for (size_t i = 0; i < N_OF(EN_NOT_VI); i++) {
        by_letter_t *b = &en_by[EN_NOT_VI[i].s[0] - 'a'];
        b->at[b->n++] = (uint8_t)i;
    }
}

/* w[p:] is [aeiouy]{1,3} (final)? */
static int syllable_rest(const Py_UCS4 *w, Py_ssize_t n, Py_ssize_t p) {
    for (Py_ssize_t v = 1; v <= 3 && p + v <= n && is_vowel(w[p + v - 1]); v++) {
        Py_ssize_t rest = n - p - v;
        for (size_t f = 0; f < N_OF(SYL_FINALS); f++) {
            if (SYL_FINALS[f].n != rest) continue;
            Py_ssize_t q;
            for (q = 0; q < rest && w[p + v + q] == SYL_FINALS[f].s[q]; q++);
            if (q == rest) return 1;
        }
    }
    return 0;
}

/* re.fullmatch(features._VI_SYLLABLE, w): (initial)? [aeiouy]{1,3} (final)? over every parse; w: 1 or more of a-z */
static int is_syllable(const Py_UCS4 *w, Py_ssize_t n) {
    const by_letter_t *b = &initials_by[w[0] - 'a'];
    for (int r = 0; r < b->n; r++) {
        lit_t in = SYL_INITIALS[b->at[r]];
        Py_ssize_t p = in.n, j;
        if (p > n) continue;
        for (j = 0; j < p && w[j] == in.s[j]; j++);
        if (j == p && syllable_rest(w, n, p)) return 1;
    }
    return syllable_rest(w, n, 0);
}

/* w (1 or more of a-z) is one of EN_NOT_VI */
static int is_en_word(const Py_UCS4 *w, Py_ssize_t n) {
    const by_letter_t *b = &en_by[w[0] - 'a'];
    for (int r = 0; r < b->n; r++) {
        lit_t e = EN_NOT_VI[b->at[r]];
        Py_ssize_t j;
        if (e.n != n) continue;
        for (j = 0; j < n && w[j] == e.s[j]; j++);
        if (j == n) return 1;
    }
    return 0;
}

/* features.language(): Vietnamese if >= 2 Vietnamese-only letters in the raw text, or if at
 * least 65% of >= 3 letter-only (a-z) words of the folded canonical text are Vietnamese syllables
 * (words of _EN_NOT_VI excluded). */
static int is_vietnamese(Py_ssize_t vi_letters, const Py_UCS4 *c, Py_ssize_t n) {
    if (vi_letters >= 2) return 1;
    Py_ssize_t words = 0, syl = 0, start = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (c[i] != ' ') continue;
        if (start >= 0 && i > start) {
            Py_ssize_t j;
            for (j = start; j < i && c[j] >= 'a' && c[j] <= 'z'; j++);
            if (j == i) {
                words++;
                syl += !is_en_word(c + start, i - start) && is_syllable(c + start, i - start);
            }
        }
        start = i + 1;
    }
    return words >= 3 && (double)syl >= 0.65 * (double)words;
}

/* All feature ids (with repeats) of one message into ids_buf; returns the count. */
static Py_ssize_t compute_ids(PyObject *raw, PyObject *norm) {
    Py_ssize_t n = build_canonical(norm), k = 0;
    Py_ssize_t m = build_folded(n);
    /* char n-grams over the folded text, so accented and unaccented spellings share them */
    const Py_UCS4 *c = m >= 0 ? folded : canon;
    Py_ssize_t nc = m >= 0 ? m : n;
    for (Py_ssize_t s = 0; s + 3 <= nc; s++) {
        uint64_t h = (uint64_t)c[s] + (uint64_t)c[s + 1] * R_MUL + (uint64_t)c[s + 2] * (R_MUL * R_MUL);
        ids_buf[k++] = finish(h + SALT[0]);
        if (s + 4 <= nc) {
            h += (uint64_t)c[s + 3] * (R_MUL * R_MUL * R_MUL);
            ids_buf[k++] = finish(h + SALT[1]);
            if (s + 5 <= nc) {
                h += (uint64_t)c[s + 4] * (R_MUL * R_MUL * R_MUL * R_MUL);
                ids_buf[k++] = finish(h + SALT[2]);
            }
        }
    }
    k = word_hashes(canon, n, SALT[8], SALT[9], 1, k);
    if (m >= 0) k = word_hashes(folded, m, SALT[10], 0, 0, k);
    /* shape tokens from the raw text; its first MAXLEN code points kept for its char n-grams */
    int kind = PyUnicode_KIND(raw);
    const void *data = PyUnicode_DATA(raw);
    Py_ssize_t L = PyUnicode_GET_LENGTH(raw), up = 0, dg = 0, ex = 0, vl = 0;
    for (Py_ssize_t i = 0; i < L; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (i < MAXLEN) rawbuf[i] = ch;
        if (ch < FOLD_LIMIT && vi_letter[ch]) vl++;
        if (ch >= 'A' && ch <= 'Z') up++;
        else if (ch == '!') ex++;
        else if (IS_DEC(ch)) dg++;
    }
    Py_ssize_t a = L / 20, b = up * 5 / (L ? L : 1), d = dg / 3;
    uint64_t sh[4] = {(uint64_t)(a < 10 ? a : 10), (uint64_t)(16 + (b < 5 ? b : 5)),
                      (uint64_t)(32 + (d < 8 ? d : 8)), (uint64_t)(48 + (ex < 3 ? ex : 3))};
    for (int i = 0; i < 4; i++) ids_buf[k++] = finish(sh[i] + SALT[11]);
    /* char RAW_MIN..RAW_MAX-grams of the raw text holding a character other than a-z or space,
     * salts 3.. (features.feature_ids_numpy); next_mark[i]: first such position >= i */
    Py_ssize_t nr = L < MAXLEN ? L : MAXLEN;
    next_mark[nr] = nr + RAW_MAX;
    for (Py_ssize_t i = nr - 1; i >= 0; i--)
        next_mark[i] = ((rawbuf[i] >= 'a' && rawbuf[i] <= 'z') || rawbuf[i] == ' ') ? next_mark[i + 1] : i;
    /* (the sizes 3, 4, 5 unrolled, as the folded text's n-grams are, each hash the one before plus a term) */
    _Static_assert(RAW_MIN == 3 && RAW_MAX == 5, "the raw n-grams are unrolled for sizes 3 to 5");
    for (Py_ssize_t s = 0; s + RAW_MIN <= nr; s++) {
        Py_ssize_t mark = next_mark[s];
        if (mark >= s + RAW_MAX) continue;              /* a plain lower-case n-gram of every size */
        uint64_t h = (uint64_t)rawbuf[s] + (uint64_t)rawbuf[s + 1] * R_MUL + (uint64_t)rawbuf[s + 2] * (R_MUL * R_MUL);
        if (mark < s + 3) ids_buf[k++] = finish(h + SALT[3]);
        if (s + 4 <= nr) {
            h += (uint64_t)rawbuf[s + 3] * (R_MUL * R_MUL * R_MUL);
            if (mark < s + 4) ids_buf[k++] = finish(h + SALT[4]);
            if (s + 5 <= nr) {                          /* (mark < s + 5: every 5-gram here holds one) */
                h += (uint64_t)rawbuf[s + 4] * (R_MUL * R_MUL * R_MUL * R_MUL);
                ids_buf[k++] = finish(h + SALT[5]);
            }
        }
    }
    last_vi = is_vietnamese(vl, c, nc);
    return k;
}
