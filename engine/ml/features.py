"""Text normalisation and hashed features for the spam classifier.

Theory of operation: `normalise()` turns a raw SMS into a canonical string: Unicode NFKC,
zero-width characters dropped, case folded, obfuscations undone (s p a c e d and V.A.Y-dotted
letters, digits standing for letters inside words), and URLs, phone numbers, money amounts and
long digit runs replaced by tokens (_url_, _phone_, _money_, _num_). Each regex pass runs only
when `scan` finds its necessary condition, so most messages skip most passes; the output is
the same as running every pass (tests/test_ml_fast.py checks it). `_canonical()` keeps the
word tokens, writes Vietnamese teencode out (k/ko -> không, dc -> được, j -> gì, ...) and joins
them with single spaces. `features()` hashes char 3-5-grams of the diacritic-folded canonical
text (accented and unaccented spellings share them), char 3-5-grams of the raw text as sent
(case, digits and punctuation kept; only those holding something other than a-z or space), words and word bigrams as written, the folded words when
they differ, and a few shape tokens into a 2^20 space; the model weighs the
counts with sublinear TF-IDF and L2-normalises them. `language()` tells Vietnamese from other
text for per-language thresholds.

Two implementations give the same ids: engine/ml/_fastfeat.c (compiled by `pip install -e .`
or `python setup.py build_ext --inplace`; tokenising, folding, hashing, language and the
TF-IDF dot product in one pass) and the numpy reference below, used when the extension is
absent or TELFILTER_ML_PURE=1. Likewise `normalise` is the compiled twin (_fastnorm.h, ~1-2 µs
for 160 characters) of the regex passes of `normalise_py` (7-25 µs; the passes are normpasses.py's), which
define it.
Training and scoring call the same functions, so their inputs are identical by construction.
"""
from __future__ import annotations

import os
import re
import unicodedata

import numpy as np

from .scripts import latin
from .normpasses import (_DIGIT, _KWCTA, _LEETWORD, _LOWER3, _NUMS, _SHOUT, _SPACED, _URLHINT, _URLS, _ZW, _scan_py,
                         _shapes, _tok, _unleet, _unspace, _url)
# (re-exported: tests compare the passes one by one with these names)
from .normpasses import _CHAT, _CTA, _HANDLE, _HOTLINE, _MASKED, _PERMSG  # noqa: F401

FEATURE_VERSION = "hash-fc345-rm345-w12-f-s-vi-v9"
DIM_BITS = 20
DIM = 1 << DIM_BITS
CHAR_NGRAMS = (3, 4, 5)
# char n-grams of the raw text as sent (case, digits and punctuation kept): FREE/WINNER,
# "£1000", "T&Cs" are evidence the folded canonical text loses. Only n-grams holding a character
# other than a-z or space are kept (the others repeat folded n-grams; skipping them cut the added
# CPU by half without changing the figures). In 8 repeated 75/25 splits of the shared data they
# raised English MCC from 0.924 to 0.937 and Vietnamese spam caught from 87.4% to 89.1% at the
# same blocked-ham targets.
RAW_NGRAMS = (3, 4, 5)             # a contiguous range (the compiled twin loops from first to last)

# Vietnamese teencode and abbreviations common in SMS, written out word by word when the
# canonical text is built (folded words and char n-grams give the unaccented forms evidence too)
_TEEN = {"k": "không", "ko": "không", "kh": "không", "kg": "không", "khg": "không", "hok": "không",
         "hong": "không", "hông": "không", "dc": "được", "đc": "được", "j": "gì", "vs": "với",
         "ng": "người", "ck": "chuyển khoản", "tk": "tài khoản", "stk": "số tài khoản", "sdt": "số điện thoại",
         "sđt": "số điện thoại", "lh": "liên hệ", "nv": "nhân viên", "qk": "quý khách", "tb": "thuê bao",
         "ctrinh": "chương trình", "ttin": "thông tin", "mn": "mọi người", "ae": "anh em"}
_WORD = re.compile(r"_[a-z]+\d*_|[^\W_]+|[!?£$€%]")
_UPPER = re.compile(r"[A-Z]")


def normalise_py(text: str) -> str:
    """The canonical text of `text` (the definition: the compiled `normalise` returns the same
    string for every input, tests/test_ml_norm_fast.py compares them)."""
    # Each pass runs only when a cheap necessary condition holds (`scan` flags): most
    # messages have no URL, no s.p.a.c.e.d or leet word, and skipping a pass is exact.
    raw = (" _kwcta_" if _KWCTA.search(text) else "") + (" _shout_" if _SHOUT.search(text) and _LOWER3.search(text) else "")
    t = text.casefold()
    if not t.isascii():
        t = unicodedata.normalize("NFKC", t)
        if _ZW.search(t):
            t = _ZW.sub("", t)
    fl = _scan(t)
    if fl & 2 and _URLHINT.search(t):
        t = _URLS.sub(_url, t)
    extra = _shapes(t, fl) + raw
    if fl & 1:
        # The flags stay valid: tokens are inserted between spaces and keep their digits,
        # and `_num6_`-like tokens cannot be part of a leet or spaced word (they touch '_').
        t = _NUMS.sub(_tok, t)
    if fl & 4:
        t = _SPACED.sub(_unspace, t)
    if fl & 8:
        t = _LEETWORD.sub(_unleet, t)
    return t + extra if extra else t


# Diacritic folding is a per-code-point table (below U+3000: Latin, Vietnamese, Greek,
# Cyrillic...): a character whose NFD is one base letter plus combining marks maps to the
# base letter, a combining mark is dropped, đ maps to d. The compiled scorer uses the same table.
_FOLD_LIMIT = 0x3000


def _fold_table() -> tuple[dict, np.ndarray]:
    m, arr = {}, np.arange(_FOLD_LIMIT, dtype=np.uint32)
    for cp in range(0x80, _FOLD_LIMIT):
        ch = chr(cp)
        if unicodedata.combining(ch):
            m[cp], arr[cp] = None, 0
            continue
        base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        if len(base) == 1 and base != ch:
            m[cp], arr[cp] = base, ord(base)
    m[ord("đ")], arr[ord("đ")] = "d", ord("d")
    m[ord("Đ")], arr[ord("Đ")] = "D", ord("D")
    return m, arr


_FOLD, _FOLD_ARR = _fold_table()


def fold_diacritics(t: str) -> str:
    return t if t.isascii() else t.translate(_FOLD)


M64 = (1 << 64) - 1
_R = 0x100000001B3                      # odd, so invertible mod 2^64
_MAXLEN = 2048
_RPOW = np.empty(_MAXLEN + 1, np.uint64)
_RINV = np.empty(_MAXLEN + 1, np.uint64)
_r, _ri, _inv = 1, 1, pow(_R, -1, 1 << 64)
for _i in range(_MAXLEN + 1):
    _RPOW[_i], _RINV[_i] = _r, _ri
    _r, _ri = (_r * _R) & M64, (_ri * _inv) & M64
_MIX = np.uint64(0xC2B2AE3D27D4EB4F)
_SH = np.uint64(31)
_TOP = np.uint64(64 - DIM_BITS)
_SALT = [(0x9E3779B97F4A7C15 * (k + 7)) & M64 for k in range(16)]
_CHAR_SPANS: dict = {}


def _char_spans(n: int, raw: bool = False):
    """(starts, ends, salts) of every char n-gram of a string of n code points (cached):
    CHAR_NGRAMS with salts 0-2, or RAW_NGRAMS with salts 3-5."""
    sp = _CHAR_SPANS.get((n, raw))
    if sp is None:
        st, en, sa = [], [], []
        for k, g in enumerate(RAW_NGRAMS if raw else CHAR_NGRAMS):
            m = max(0, n - g + 1)
            st.append(np.arange(m, dtype=np.int64))
            en.append(np.arange(m, dtype=np.int64) + g)
            sa.append(np.full(m, _SALT[k + 3 if raw else k], np.uint64))
        sp = (np.concatenate(st), np.concatenate(en), np.concatenate(sa))
        if len(_CHAR_SPANS) < 8192:
            _CHAR_SPANS[(n, raw)] = sp
    return sp


def _canonical(text: str) -> str:
    """Normalised words and punctuation tokens joined by single spaces, with a space each side."""
    return " " + " ".join([_TEEN.get(w, w) for w in _WORD.findall(normalise(text))])[:_MAXLEN - 2] + " "


def feature_ids(text: str) -> np.ndarray:
    """Feature ids (with repeats) of one text: char 3-5-grams of the folded canonical text,
    char 3-5-grams of the raw text (its first _MAXLEN code points), words, word bigrams,
    diacritic-folded words when they differ, and shape tokens (of the text as `scripts.latin` reads it)."""
    text = latin(text)
    if _C is not None:
        return np.frombuffer(_C.ids(text, normalise(text)), np.int64)
    return feature_ids_numpy(text)


# Language of a message, for per-language thresholds and reports (not a feature): Vietnamese
# when it has two or more letters only Vietnamese uses, or when at least 65% of three or more
# letter-only words of the folded canonical text are well-formed unaccented Vietnamese
# syllables; English otherwise. The compiled scorer computes the same.
# Short English chat is mostly words that are also well-formed syllables ("you want to go",
# "i am in your office"): 88 of the 3,877 UCI training messages were called Vietnamese, got
# the Vietnamese threshold and weighed 7x as Vietnamese examples. The words below are common
# English but rare as unaccented Vietnamese words, so they do not count as syllables: 88 -> 4
# misdetected UCI messages, and no Vietnamese training message changes language (list from
# the issue-15 exploration, which checked both sets).
_EN_NOT_VI = frozenset("i you your u ur my me am it to in at but not get up out then got going go see by hey hi "
                       "been they much too him doing say im let keep soon ya yup thing try trying being yet eat "
                       "lot yo room dun liao lor lei".split())
_VI_CHARS = re.compile("[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]")
_VI_SYLLABLE = re.compile(r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?[aeiouy]{1,3}(?:ch|ng|nh|[cmnpt])?")
_LETTERS = re.compile(r"[a-z]+")
LANGUAGES = ("en", "vi")


def language(text: str) -> str:
    text = latin(text)
    if len(_VI_CHARS.findall(text.casefold())) >= 2:
        return "vi"
    words = [w for w in fold_diacritics(_canonical(text)).split() if _LETTERS.fullmatch(w)]
    if len(words) >= 3 and sum(1 for w in words if w not in _EN_NOT_VI and _VI_SYLLABLE.fullmatch(w)) >= 0.65 * len(words):
        return "vi"
    return "en"


def _vi_table() -> np.ndarray:
    vi = set(_VI_CHARS.pattern[1:-1])
    return np.array([chr(cp).casefold() in vi for cp in range(_FOLD_LIMIT)], np.uint8)


_VI_ARR = _vi_table()


def _codes(u: str) -> np.ndarray:
    return np.frombuffer(u.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)


def _span_hashes(c: np.ndarray, st: np.ndarray, en: np.ndarray, salts: np.ndarray) -> np.ndarray:
    """sum c[i] R^(i - st) over [st, en), plus salt, mod 2^64 (unmixed), from prefix sums."""
    prefix = np.empty(len(c) + 1, np.uint64)
    prefix[0] = 0
    np.cumsum(c * _RPOW[:len(c)], out=prefix[1:])
    return (prefix[en] - prefix[st]) * _RINV[st] + salts


def feature_ids_numpy(text: str) -> np.ndarray:
    """The reference formulation in numpy (used when the compiled accelerator is absent)."""
    u = _canonical(text)
    f = fold_diacritics(u)
    c = _codes(u)
    fc = _codes(f) if f != u else None
    # char n-grams of the folded text (accented and unaccented spellings share them);
    # words and word bigrams as written; folded words as extra features when they differ
    cc = c if fc is None else fc
    cs, ce, csalt = _char_spans(len(cc))
    sp = np.flatnonzero(c == 32)
    ws, we = sp[:-1] + 1, sp[1:]
    with np.errstate(over="ignore"):
        # raw n-grams holding a character other than a-z or space (the others repeat folded ones)
        raw = _codes(text[:_MAXLEN])
        rs, re_, rsalt = _char_spans(len(raw), raw=True)
        marks = np.empty(len(raw) + 1, np.int64)
        marks[0] = 0
        np.cumsum(~(((raw >= 97) & (raw <= 122)) | (raw == 32)), out=marks[1:])
        keep = marks[re_] > marks[rs]
        parts = [_span_hashes(cc, cs, ce, csalt), _span_hashes(raw, rs[keep], re_[keep], rsalt[keep]),
                 _span_hashes(c, np.concatenate([ws, ws[:-1]]), np.concatenate([we, we[1:]]),
                              np.concatenate([np.full(len(ws), _SALT[8], np.uint64),
                                              np.full(max(0, len(ws) - 1), _SALT[9], np.uint64)]))]
        if fc is not None:
            fsp = np.flatnonzero(fc == 32)
            fs, fe = fsp[:-1] + 1, fsp[1:]
            parts.append(_span_hashes(fc, fs, fe, np.full(len(fs), _SALT[10], np.uint64)))
        nraw = len(text)
        up = len(_UPPER.findall(text))
        dg = len(_DIGIT.findall(text))
        parts.append(np.array([min(nraw // 20, 10), 16 + min(up * 5 // (nraw or 1), 5),
                               32 + min(dg // 3, 8), 48 + min(text.count("!"), 3)], np.uint64) + np.uint64(_SALT[11]))
        h = np.concatenate(parts)
        h ^= h >> _SH
        h *= _MIX
        return (h >> _TOP).astype(np.int64)


# bytes of one id's weights as the scorer lays them out (model.Scorer._quads: four float32)
QUAD_BYTES = 16

# The compiled accelerator (engine/ml/_fastfeat.c, built by `pip install -e .` or
# `python setup.py build_ext --inplace`) computes the same ids; TELFILTER_ML_PURE=1 forces numpy.
try:
    if os.environ.get("TELFILTER_ML_PURE") == "1":
        raise ImportError("pure Python requested")
    from . import _fastfeat as _C
    if (_C.RAW_MIN, _C.RAW_MAX) != (RAW_NGRAMS[0], RAW_NGRAMS[-1]):
        raise AttributeError(f"raw char n-grams {_C.RAW_MIN}-{_C.RAW_MAX}, not {RAW_NGRAMS}")
    if _C.QUAD_BYTES != QUAD_BYTES:
        raise AttributeError(f"weights of {_C.QUAD_BYTES} bytes an id, not {QUAD_BYTES}")
    _C.set_fold_table(_FOLD_ARR.tobytes(), _VI_ARR.tobytes(), _SALT)
    _C.set_teencode(list(_TEEN.items()))
    _scan = _C.scan
    # the regex passes cost 7-25 µs on a 160-character text, their compiled twin ~1-3
    normalise = _C.normalise
except ImportError:
    _C = None
    _scan = _scan_py
    normalise = normalise_py
except (AttributeError, TypeError) as _e:     # a stale build from another version of this file
    import warnings
    warnings.warn(f"engine.ml._fastfeat does not match this source ({_e}); using the numpy path: "
                  "rebuild with `pip install -e .`", RuntimeWarning, stacklevel=1)
    _C = None
    _scan = _scan_py
    normalise = normalise_py


def unique_counts(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(ids, return_counts=True) without its per-call overhead (sort, mark, diff)."""
    a = np.sort(ids)
    n = len(a)
    if n == 0:
        return a, np.empty(0, np.int64)
    flag = np.empty(n, bool)
    flag[0] = True
    np.not_equal(a[1:], a[:-1], out=flag[1:])
    pos = np.flatnonzero(flag)
    counts = np.empty(len(pos), np.int64)
    counts[:-1] = pos[1:] - pos[:-1]
    counts[-1] = n - pos[-1]
    return a[pos], counts


def features(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Unique feature indices and their counts (the model applies sublinear TF-IDF and L2)."""
    return unique_counts(feature_ids(text))


def matrix(texts, progress=None):
    """CSR matrix of raw feature counts (scipy comes with scikit-learn)."""
    from scipy.sparse import csr_matrix
    indptr, indices, data = [0], [], []
    for t in texts:
        i, v = features(t)
        indices.append(i)
        data.append(v)
        indptr.append(indptr[-1] + len(i))
        if progress is not None:
            progress.update(1)
    ind = np.concatenate(indices) if indices else np.empty(0, np.int64)
    dat = np.concatenate(data).astype(np.float64) if data else np.empty(0)
    return csr_matrix((dat, ind, np.asarray(indptr)), shape=(len(indptr) - 1, DIM))
