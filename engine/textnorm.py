"""Text normalisation shared by rules, lists and the classifier.

`fold()` is the case- and Vietnamese-diacritic-insensitive form rules match against:
NFKD, combining marks removed, đ/Đ -> d, Cyrillic/Greek look-alikes of Latin letters read as those
(`CONFUSABLE`), case-folded, zero-width characters removed.
`find_hosts()` extracts URL hosts and bare domain-like tokens (whatever the TLD).
`template_key()` names the template a text was filled in from (numbers, names and links
masked), for telling a campaign from many senders apart from ordinary texts.
"""
from __future__ import annotations

import os
import re
import unicodedata
from hashlib import blake2b

from .urlhost import FULL_STOPS as _DOTS, IGNORABLE as _IGNORABLE, percent_decoded

_ZW = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
# Đ/đ, and ETH Ð/ð where Windows-1258 and VISCII put them (0xD0/0xF0, read as Latin-1: "ĐK DNC" came to 5656 as
# "ÐK DNC", a syntax error) and the look-alike Ɖ (TR39 confusable of Đ)
_D = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "Ɖ": "d"})


# every combining mark of the Basic Multilingual Plane, for one C-level regex pass instead of
# a Python test per character (a text with characters beyond the BMP takes the slow path)
_COMBINING = re.compile("[" + "".join(re.escape(chr(c)) for c in range(0x300, 0x10000)
                                      if unicodedata.combining(chr(c))) + "]+")


_ZW_D = {**_ZW, **_D}               # one translate pass: neither table's output is the other's input

# Letters of other scripts drawn like Latin ones (Unicode TR39's confusables, the look-alikes of a-z among Cyrillic,
# Greek, Armenian and Latin's own variants; not those drawn as small capitals, Cyrillic в к м н т), read as those
# Latin letters: "Bаn trung thưởng" with a Cyrillic а is one text with "Ban trung thuong" for keywords, regexes and
# the content/template counters a spammer varies it to evade. Applied after NFKD (a Cyrillic ё is е + a mark
# first), before case folding.
CONFUSABLE = str.maketrans({
    # Cyrillic
    "а": "a", "е": "e", "һ": "h", "і": "i", "ј": "j", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "ѕ": "s",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ү": "y", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y",
    "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ү": "Y", "Һ": "H", "Ԛ": "Q", "Ԝ": "W",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X", "α": "a", "ι": "i", "ν": "v", "ο": "o", "ρ": "p", "υ": "u", "χ": "x",
    # Armenian, Latin variants
    "օ": "o", "ս": "u", "ı": "i", "ɑ": "a", "ȷ": "j", "ʏ": "y",
})
_HAS_CONFUSABLE = re.compile("[" + "".join(map(chr, CONFUSABLE)) + "]")


def fold(text: str) -> str:
    # not cached: texts rarely repeat, and a miss in a full functools.lru_cache of 64k texts cost
    # ~2 µs (its eviction), more than folding itself (0.3 µs for ASCII, ~1 µs accented)
    if text.isascii():                  # no zero-width character, đ or mark: casefold only
        return text.casefold()
    if _C is not None:                  # code point by code point, each one's fold computed once
        return _C.fold(text, _fold_text)
    return _fold_text(text)


def _fold_text(text: str) -> str:
    """fold() of any text in Python: the reference for engine/_textnorm.c's fold, which calls it
    for each new code point."""
    t = text.translate(_ZW_D)
    if not t.isascii():
        t = unicodedata.normalize("NFKD", t)
        if max(t) <= "\uffff":
            t = _COMBINING.sub("", t)
        else:
            t = "".join(c for c in t if not unicodedata.combining(c))
        if _HAS_CONFUSABLE.search(t) is not None:     # (translate with a dict costs ~6 µs on a 120-character text)
            t = t.translate(CONFUSABLE)
    return t.casefold()


# A host: labels of letters/digits/hyphens joined by dots, at least one dot, a TLD of
# letters (or punycode). With a scheme or www. anything host-like counts.
_HOST = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
# An IPv6 address in brackets (`http://[2001:db8::9]/`) is a host too, given with its brackets (urlhost reads it).
# A link's userinfo runs to the authority's last "@", as a browser reads it (`http://a@b@phish.example/`).
_URL_RE = re.compile(
    r"(?:(?:https?|ftp)://(?:[^\s/\\]*@)?(?:(?P<h1>[^\s/\\:?#\[\]@]+)|(?P<h3>\[[0-9a-f:.]+\]))"
    r"|(?<![\w.@/-])(?P<h2>" + _HOST + r"))(?![\w-])",
    re.IGNORECASE)


# Every host the pattern above finds has a scheme or a letter/digit, a dot and a letter in a
# row; most texts have neither, and this search is ~20x cheaper than the full pattern's.
_MAYBE_HOST = re.compile(r"://|[a-z0-9]\.[a-z]", re.IGNORECASE)


_WIDE = re.compile("[\uff01-\uff5e\u3002\uff61]")


def find_hosts(text: str) -> list[str]:
    """Hosts of links in `text`, with or without scheme, lower-cased, trailing dot removed.

    The pattern runs over the whitespace-delimited runs that can hold a host (a "://" or a
    letter/digit, dot, letter triple), not over the whole text: a match holds no whitespace,
    and at a run's edges its look-arounds see whitespace or an end of the string, which they
    treat alike, so the hosts and their order are the same (a test holds find_hosts to
    `_URL_RE` over the whole text). The pattern costs ~0.1 µs a character; a text with one
    "word.word" typo paid it over all of its 100-odd characters."""
    if not text.isascii():
        if _WIDE.search(text) is not None or not unicodedata.is_normalized("NFKC", text):
            # full-width letters and dots ("ｐｈｉｓｈ．ｅｘａｍｐｌｅ", "phish。example"), and the other compatibility
            # forms UTS #46 maps (mathematical, circled, modifier letters, long s: "https://𝐩𝐡𝐢𝐬𝐡.example") are
            # the ASCII host to a browser: read as it would (found by a probe: only full-width ones were)
            text = unicodedata.normalize("NFKC", text).translate(_DOTS)
        if _IGNORABLE.search(text) is not None:
            # a soft hyphen or zero-width character inside a host ("phish.ex\u00adample") is dropped by IDNA
            # (UTS #46 maps it to nothing): the hosts read both ways, the text as written and without them
            out = _hosts(text)
            return out + [h for h in _hosts(_IGNORABLE.sub("", text)) if h not in out]
    return _hosts(text)


def _hosts(text: str) -> list[str]:
    if _C is not None:
        runs = _C.host_tokens(text)
    else:
        runs = [w for w in text.split() if _MAYBE_HOST.search(w) is not None]
    if not runs:
        return []
    out = []
    for run in runs:
        for m in _URL_RE.finditer(run):
            w = m.group("h1") or m.group("h2") or m.group("h3")
            if "%" in w:                    # (only a link's host can hold one: read percent-decoded, as a browser does)
                w = percent_decoded(w)
            h = w.lower().rstrip(".")
            if h and h not in out:
                out.append(h)
            if not w.isascii() and w != h:
                # capitals drawn like Latin ones whose small letters are not (Cyrillic В Н К М Т: "ВIDV-VN.COM" is
                # BIDV-VN.COM to the reader, "вidv-vn.com" in small letters is not): that ASCII name read too
                # (host_forms only saw the small letters, so those capitals were never looked up)
                sk = w.translate(CONFUSABLE).lower().rstrip(".")
                if sk.isascii() and sk != h.translate(CONFUSABLE) and sk not in out:
                    out.append(sk)
    return out


DOMAIN_MAX = 253                # DNS: a name has at most 253 characters (RFC 1035; lists refuse longer ones)


def idna_host(host: str) -> str:
    """`host` as the DNS and the lists hold it: each label that is not ASCII in its IDNA (punycode) form, as `lists
    import` stores a domain written in Unicode ("ví-dụ.vn" -> "xn--v-d-rma6749a.vn"). A label IDNA refuses stays
    as written (no listed domain can hold it). Bounded as domain_suffixes is: labels are converted from the right
    only while a listed name (at most DOMAIN_MAX characters) can still reach them, and a label longer than that
    as written is none (IDNA refuses it); those further left stay as written (a host of 32,000 accented labels was
    converted whole, 0.2 s of the event loop, twice for a hit's evidence)."""
    if host.isascii():
        return host
    from encodings.idna import ToASCII
    labels = host.split(".")
    out, size = [], 0
    for i in range(len(labels) - 1, -1, -1):
        if size > DOMAIN_MAX:                   # no listed name reaches this far left
            out.append(".".join(labels[:i + 1]).lower())
            break
        label = labels[i]
        if not label.isascii() and len(label) <= DOMAIN_MAX:
            try:
                label = ToASCII(label).decode("ascii")
            except UnicodeError:
                pass
        out.append(label.lower())
        size += len(label) + 1
    return ".".join(reversed(out))


def host_forms(host: str) -> tuple:
    """The names a Unicode host is looked up as in the lists: its IDNA form and, when its look-alike letters
    (`CONFUSABLE`) make it an ASCII name, that name: a homograph of a listed domain is that domain to the reader."""
    a = idna_host(host)
    skeleton = unicodedata.normalize("NFKC", host).translate(CONFUSABLE).lower()
    return (a, skeleton) if skeleton.isascii() and skeleton != a else (a,)


def domain_suffixes(host: str):
    """`a.b.example` -> a.b.example, b.example, example (a listed domain matches its subdomains), longest
    first; only those a listed domain can be (at most DOMAIN_MAX characters), so a host of thousands of labels
    costs what its last 253 characters do (every suffix of it was quadratic: a 65,000-character link held the
    event loop 3.3 s)."""
    n = len(host)
    if n <= DOMAIN_MAX:
        i = 0
    else:
        i = host.find(".", n - DOMAIN_MAX - 1) + 1
        if i == 0:
            return                  # its last label alone is longer than any domain
    while True:
        yield host[i:]
        j = host.find(".", i)
        if j < 0:
            return
        i = j + 1


_WORD = re.compile(r"[^\W_]+")
# a dot, slash, @ or colon between word characters: inside a link, an e-mail address, a time or
# an amount ("bit.ly/x7", "a@b.vn", "10:15", "5.000.000"); the whitespace-delimited run holding
# one is masked whole
_LINKISH = re.compile(r"[^\W_][./@:][^\W_]")
# a whitespace-delimited run holding a linkish triple, matched from the run's start only (the
# lookahead scans one run once: linear in the text)
_LINKISH_RUN = re.compile(r"(?<!\S)(?=\S*?[^\W_][./@:][^\W_])\S+")
TEMPLATE_MIN_WORDS = 5


def content_key(text: str) -> str:
    """Exact-content key: folded, whitespace collapsed."""
    if _C is not None:
        return _C.collapse_spaces(fold(text))
    return " ".join(fold(text).split())


def content_digest(text: str) -> int:
    """64-bit BLAKE2b digest of content_key(text): a counter key part that is an int, so a
    counter keyed by it is hashed once per message (and journalled without a string)."""
    return folded_content_digest(fold(text))


def folded_content_digest(folded: str) -> int:
    """content_digest of a text whose fold() is `folded` (the message context has it already)."""
    if _C is not None:
        return _C.content_digest(folded)
    return _digest(" ".join(folded.split()))


def _digest(s: str) -> int:
    """The 64-bit key of a string: its BLAKE2b-64 digest as a little-endian int (engine/_textnorm.c
    computes the same while scanning the text)."""
    return int.from_bytes(blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def template_key(text: str) -> int | None:
    """64-bit key of the template `text` was filled in from, or None for a text too short to tell.

    Links, e-mail addresses and every word with a digit become "0"; every capitalised word
    becomes "N" (names: "Chao anh Minh", "Hi Tom", "Lan oi"; a sentence's first word goes
    with them, since a name often opens one); the rest is folded (case, diacritics), with
    punctuation and spacing ignored. Words in capitals ("KHUYEN MAI") and names written in
    lower case are kept as they are. So one campaign text
    sent with other names, numbers, amounts, codes and links, with or without diacritics,
    keeps its key, while two unrelated texts share a key only if every other word matches.
    A text needs at least TEMPLATE_MIN_WORDS words left after masking: short everyday texts
    ("ok em", "Anh dang o dau") are identical across thousands of people and are no template.
    The key is a BLAKE2b digest, stable across processes (a shared counter store can use it).
    """
    if _C is not None:
        return _C.template_digest(text, TEMPLATE_MIN_WORDS, _fold_text)
    s = _template_words(text)
    if s is None:
        return None
    return _digest(s.lower() if s.isascii() else fold(s))


def _template_words(text: str) -> str | None:
    """template_key's masking in Python (the reference for engine/_textnorm.c's template_mask):
    the masked words joined by single spaces, or None when too few are left."""
    if _LINKISH.search(text) is not None:
        text = _LINKISH_RUN.sub("0", text)
    out: list[str] = []
    add = out.append
    masked = 0
    for w in _WORD.findall(text):
        if w.islower() and w.isalpha():           # most words: nothing to mask
            add(w)
        elif not w.isalpha():
            add("0")
            masked += 1
        elif w.istitle():
            add("N")
            masked += 1
        else:
            add(w)
    if len(out) - masked < TEMPLATE_MIN_WORDS:
        return None
    return " ".join(out)


# engine/_textnorm.c: template_key's masking and digest in one pass (~8x faster), content_digest
# without the collapsed string, find_hosts' runs, fold of non-ASCII text (~40x); absent, or with
# TELFILTER_TEXT_PURE=1, the Python paths are used (tests check both agree).
_C = None
if os.environ.get("TELFILTER_TEXT_PURE") != "1":
    try:
        from . import _textnorm as _C
    except ImportError:
        pass
