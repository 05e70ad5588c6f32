"""A bounded top-k counter (the report's top senders, owners and symbols; no I/O here)."""
from __future__ import annotations

TOP_KEEP = 1000


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
