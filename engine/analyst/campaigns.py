"""Near-duplicate grouping of report texts into campaigns (pure: no I/O).

Theory of operation. A text becomes the set of its word 1- and 2-shingles after the masking
`template_key` does (links, e-mail addresses and words holding a digit -> "0"; case and
diacritics folded), so one campaign sent with other amounts, links or codes, with or without
diacritics, keeps most of its shingles. Two reports are the same campaign when their sets'
Jaccard similarity is at least `similarity` (default 0.5), or when they share the engine's
template key (same words once names and numbers are masked).

Finding those pairs without comparing every pair is MinHash banding (Broder 1997; Leskovec,
Rajaraman & Ullman, "Mining of Massive Datasets" ch. 3): HASHES min-hashes per text, cut into
BANDS bands of ROWS; two texts land in a common bucket with probability 1 - (1 - J^ROWS)^BANDS
(J = 0.5: 0.9999; J = 0.2: 0.49, then refused by the exact Jaccard check). Each bucket keeps the
last BUCKET_PROBE texts it saw, so the work per report is bounded (BANDS x BUCKET_PROBE checks)
whatever the campaign sizes: members of a campaign are chained to each other (union-find), the
most recent ones are enough to join the next.

Why not 64-bit SimHash bands: measured on SMS-length texts, one inserted word pair ("vui long")
moves a SimHash 9-13 bits of 64, while unrelated texts of vi_sms/train.tsv come within 6-7 bits;
no distance separates the two. Jaccard on shingles does (0.8 against < 0.2).
"""
from __future__ import annotations

import re
from hashlib import blake2b

import numpy as np

from ..textnorm import fold, template_key

HASHES, BANDS, ROWS = 32, 16, 2
SIMILARITY = 0.5
BUCKET_PROBE = 8
# the k-th min-hash is min over shingles x of ((x ^ SALT_k) * MULT_k) mod 2^64 (odd multipliers:
# each is a permutation of 64-bit values); numpy's uint64 arithmetic wraps, which is the mod
_SALT = np.array([int.from_bytes(blake2b(b"s%d" % k, digest_size=8).digest(), "little") for k in range(HASHES)],
                 dtype=np.uint64)
_MULT = np.array([int.from_bytes(blake2b(b"m%d" % k, digest_size=8).digest(), "little") | 1 for k in range(HASHES)],
                 dtype=np.uint64)

_LINKISH_RUN = re.compile(r"(?<!\S)(?=\S*?[^\W_][./@:][^\W_])\S+")
_WORD = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """Folded words, with links, e-mail addresses and words holding a digit as "0"."""
    t = fold(_LINKISH_RUN.sub(" 0 ", text or ""))
    return ["0" if any(c.isdigit() for c in w) else w for w in _WORD.findall(t)]


def shingles(text: str) -> frozenset[int]:
    """64-bit hashes of the text's words and word pairs."""
    w = tokens(text)
    return frozenset(int.from_bytes(blake2b(s.encode(), digest_size=8).digest(), "little")
                     for s in [*w, *(a + " " + b for a, b in zip(w, w[1:]))])


def minhash(sh: frozenset[int]) -> tuple[int, ...]:
    x = np.fromiter(sh, dtype=np.uint64, count=len(sh))[:, None]
    return tuple(((x ^ _SALT) * _MULT).min(axis=0).tolist())


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


class _UnionFind:
    def __init__(self):
        self.parent: list[int] = []

    def add(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:                      # the earlier report stays the root: it names the campaign
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra


def group(texts, similarity: float = SIMILARITY, progress=None) -> list[int]:
    """For each text, the index of the first text of its campaign (itself when alone).

    A text with no word (a `V` report with no content) is never grouped. `progress`, if given,
    is called with 1 per text (a tqdm's update).
    """
    if not 0.0 < similarity <= 1.0:
        raise ValueError(f"similarity must be in (0, 1], got {similarity}")
    uf = _UnionFind()
    buckets: dict[tuple, list[int]] = {}
    by_template: dict[int, int] = {}
    by_set: dict[frozenset, int] = {}          # same shingles: joined at once, no banding (the usual case)
    sets: list[frozenset | None] = []
    for i, t in enumerate(texts):
        uf.add()
        sh = shingles(t) if t else frozenset()
        sets.append(sh or None)
        if progress is not None:
            progress(1)
        if not sh:
            continue
        first = by_set.setdefault(sh, i)
        if first != i:
            uf.union(first, i)
            continue
        k = template_key(t)
        if k is not None:
            first = by_template.setdefault(k, i)
            if first != i:
                uf.union(first, i)
        mh = minhash(sh)
        seen = set()
        for b in range(BANDS):
            bucket = buckets.setdefault((b, *mh[b * ROWS:(b + 1) * ROWS]), [])
            for j in bucket:
                if j not in seen and uf.find(j) != uf.find(i):
                    seen.add(j)
                    if jaccard(sh, sets[j]) >= similarity:
                        uf.union(j, i)
            bucket.append(i)
            if len(bucket) > BUCKET_PROBE:
                del bucket[0]
    return [uf.find(i) for i in range(len(sets))]
