"""Text normalisation shared by rules, lists and the classifier.

`fold()` is the case- and Vietnamese-diacritic-insensitive form rules match against:
NFKD, combining marks removed, đ/Đ -> d, case-folded, zero-width characters removed.
`find_hosts()` extracts URL hosts and bare domain-like tokens (whatever the TLD).
`simhash64()` gives a near-duplicate fingerprint of a text for template detection.
"""
from __future__ import annotations

import re
import zlib
import unicodedata
from functools import lru_cache

import numpy as np

_ZW = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_D = str.maketrans({"đ": "d", "Đ": "d", "ð": "d"})


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    t = text.translate(_ZW).translate(_D)
    if not t.isascii():
        t = unicodedata.normalize("NFKD", t)
        t = "".join(c for c in t if not unicodedata.combining(c))
    return t.casefold()


# A host: labels of letters/digits/hyphens joined by dots, at least one dot, a TLD of
# letters (or punycode). With a scheme or www. anything host-like counts.
_HOST = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
_URL_RE = re.compile(
    r"(?:(?:https?|ftp)://(?:[^\s/@]+@)?(?P<h1>[^\s/:?#\[\]]+)|(?<![\w.@/-])(?P<h2>" + _HOST + r"))(?![\w-])",
    re.IGNORECASE)


def find_hosts(text: str) -> list[str]:
    """Hosts of links in `text`, with or without scheme, lower-cased, trailing dot removed."""
    out = []
    for m in _URL_RE.finditer(text):
        h = (m.group("h1") or m.group("h2")).lower().rstrip(".")
        if h and h not in out:
            out.append(h)
    return out


def domain_suffixes(host: str):
    """`a.b.example` -> a.b.example, b.example, example (a listed domain matches its subdomains)."""
    parts = host.split(".")
    for i in range(len(parts)):
        yield ".".join(parts[i:])


_WORD = re.compile(r"[^\W_]+")
_DIGITS = re.compile(r"\d+")


def content_key(text: str) -> str:
    """Exact-content key: folded, whitespace collapsed."""
    return " ".join(fold(text).split())


@lru_cache(maxsize=16384)
def simhash64(text: str) -> int:
    """64-bit SimHash over word 2-shingles of folded text with digit runs masked.

    Each shingle's 64-bit hash is two CRC-32s; the per-bit vote is done with numpy."""
    words = _WORD.findall(_DIGITS.sub("0", fold(text)))
    if not words:
        return 0
    grams = [(words[i] + " " + words[i + 1]).encode() for i in range(len(words) - 1)] or [words[0].encode()]
    hs = np.fromiter(((zlib.crc32(g) << 32) | zlib.crc32(g, 0x9E3779B9) for g in grams), dtype=np.uint64,
                     count=len(grams))
    bits = np.unpackbits(hs.view(np.uint8)).reshape(len(grams), 64)
    votes = bits.sum(axis=0, dtype=np.int64) * 2 > len(grams)
    return int.from_bytes(np.packbits(votes).tobytes(), "big")


def simhash_bands(h: int, bands: int = 4) -> tuple[int, ...]:
    """LSH bands: two fingerprints within Hamming distance < bands share at least one band."""
    width = 64 // bands
    mask = (1 << width) - 1
    return tuple((i << 16) | ((h >> (i * width)) & mask) for i in range(bands))
