"""The report's bounded keepers (no I/O here): a count of the heaviest keys in fixed memory, and a key (a sender,
a caller, a model version) kept at a fixed size whatever the log holds (aggregate.py's theory of operation)."""
from __future__ import annotations

import hashlib

TOP_KEEP = 1000
MAX_KEY = 128           # characters of a sender, caller or model version kept (none the engine registers is near)


def bounded(s: str) -> str:
    """`s`, or past MAX_KEY characters its first 80 with its length and a digest of the whole: still readable,
    two long ones alike up to the cut still two rows, at a fixed size."""
    if len(s) <= MAX_KEY:
        return s
    d = hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{s[:80]}…[{len(s)} chars {d}]"


class TopCounter:
    """Counts per key with at most 2*keep keys: when full, only the `keep` largest survive.

    A key dropped and seen again restarts from zero, so a survivor's count can be short by
    at most `floor` (the largest count ever dropped); `floor == 0` means every count is exact.
    The prune is O(keep log keep) once per `keep` new keys: O(log keep) amortised per add."""

    def __init__(self, keep: int = TOP_KEEP):
        self.keep, self.c, self.floor = keep, {}, 0

    def add(self, key, n: int = 1) -> None:
        c = self.c
        c[key] = c.get(key, 0) + n
        if len(c) > 2 * self.keep:
            ranked = sorted(c.items(), key=lambda kv: -kv[1])
            self.floor = max(self.floor, ranked[self.keep][1])
            self.c = dict(ranked[:self.keep])

    def top(self, k: int) -> list:
        return sorted(self.c.items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]
