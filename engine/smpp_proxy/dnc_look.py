"""The scheduled ads a DNC look is still to judge (dnc_cancel.py), taken a slice at a time, due soonest first.

Theory of operation. A look judges its ads a few hundred per turn of the event loop (dnc_cancel.STEP), not all in
one go: judging the ads of a full look (every ad to a DNC number, after a lists or rules reload or a bulk change) took
~0.6 s of the loop for 100,000 ads with consent, and no submit_sm or INVITE was served meanwhile. The queue holds
entry keys, each once (`queued`), in a heap by delivery (soonest first): an ad queued again before its judgement is
judged once, with the lists and rules in force when its turn comes. A full look first walks the index's recipients
on the list (one bitmap intersection, taken when the look starts) a slice at a time into the heap (`gathering`), and
only then judges: the soonest due of all first. A full look that starts while another runs takes its place (the new
intersection: the same ads and those since); what was queued stays, judged once. Ads queued by a later change (the
numbers it added, cancels to try again) join the heap wherever their delivery puts them.

Keys only, no entries: the entry is read at its judgement (gone or due by then: not judged). The heap holds ints,
`due << 32 | slot` (`slot`: the key's place in `keys`, emptied as it is taken, the list reset when the heap is
empty): a pop compares ints, a third of what (due, key) tuples cost.
"""
from __future__ import annotations

import heapq
from itertools import islice


class DncLook:
    __slots__ = ("heap", "keys", "queued", "gather")

    def __init__(self):
        self.heap: list = []            # due << 32 | slot of each key in `queued`
        self.keys: list = []            # slot -> its key (None once taken)
        self.queued: set = set()        # entry keys to judge
        self.gather = None              # a full look's recipients still to walk (an iterator), or None

    def __bool__(self) -> bool:
        return bool(self.heap) or self.gather is not None

    def __len__(self) -> int:
        return len(self.heap)

    @property
    def gathering(self) -> bool:
        return self.gather is not None

    def every(self, numbers) -> None:
        """A full look: every ad to one of `numbers` (a bitmap of the index's recipients on the list, this look's
        own) queued, a slice at a time (`gather_some`), before any is judged."""
        self.gather = iter(numbers)

    def add(self, due: int, key: str) -> None:
        if key not in self.queued:
            self.queued.add(key)
            heapq.heappush(self.heap, due << 32 | len(self.keys))
            self.keys.append(key)

    def gather_some(self, index, n: int) -> int:
        """Up to `n` of the full look's recipients walked: their ads in `index` (scheduled.ScheduledAds) queued.
        How many recipients (fewer than `n`: the walk is done)."""
        entries, add, took = index.entries, self.add, 0
        for num in islice(self.gather, n):
            took += 1
            for k in index.keys_to(num):
                ad = entries.get(k)
                if ad is not None:
                    add(ad.due, k)
        if took < n:
            self.gather = None
        return took

    def pop(self) -> str | None:
        """The key due soonest, no longer queued; None when none is."""
        if not self.heap:
            return None
        slot = heapq.heappop(self.heap) & 0xFFFFFFFF
        keys = self.keys
        key, keys[slot] = keys[slot], None
        if not self.heap:
            keys.clear()
        self.queued.discard(key)
        return key

    def clear(self) -> None:
        self.heap.clear()
        self.keys.clear()
        self.queued.clear()
        self.gather = None
