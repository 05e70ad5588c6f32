"""The scheduled ads whose cancel_sm is to be tried again (dnc_cancel.py `_scheduled_retry`): entry key -> when
(time.monotonic() seconds; -inf: at the next tick).

A dict, as it was, with a heap of (when, key) beside it, so that the housekeeping tick takes what is due (`pop_due`)
at a cost in what is due, not in how many wait: it was a scan of the whole dict every second (each key's time
compared), ~12 ms of CPU a tick with 100,000 ads backing off, ~25 ms with 199,000 (an SMSC that answers no
cancel_sm: every barred ad waits its 1, 2, 4 ... 300 s), though none was due; now ~0.06 ms
(benchmarks/scheduled_expire_tick.py `retries`). A key given a new time keeps its old heap item, stale (skipped as it
surfaces: its time is no longer the dict's); the heap is rebuilt when stale items outnumber the keys by SLACK (the
dnc_cancel paths give a key a time only when it has none: a rebuild is a safety net, not a routine).
"""
from __future__ import annotations

import heapq

SLACK = 1024        # stale heap items past the keys' count before the heap is rebuilt


class Retries(dict):
    __slots__ = ("heap",)

    def __init__(self):
        super().__init__()
        self.heap: list = []

    def __setitem__(self, key: str, when: float) -> None:
        dict.__setitem__(self, key, when)
        heapq.heappush(self.heap, (when, key))
        if len(self.heap) > 2 * len(self) + SLACK:
            self.heap = [(t, k) for k, t in self.items()]
            heapq.heapify(self.heap)

    def setdefault(self, key: str, when: float) -> float:
        had = self.get(key)
        if had is None:
            self[key] = when
            return when
        return had

    def clear(self) -> None:
        dict.clear(self)
        self.heap.clear()

    def pop_due(self, now: float) -> list[str]:
        """The keys whose time is at or before `now`, soonest first, no longer waiting."""
        heap, out = self.heap, []
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if self.get(key) == when:       # (else stale: given another time since, or taken)
                del self[key]
                out.append(key)
        if not self:
            heap.clear()
        return out
