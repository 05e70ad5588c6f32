"""The scheduled ads a DNC look is still to judge (dnc_cancel.py), taken a slice at a time, due soonest first.

Theory of operation. A look judges its ads a few hundred per turn of the event loop (dnc_cancel.STEP), not all in
one go: judging the ads of a full look (every ad to a DNC number, after a lists or rules reload or a bulk change) took
~0.6 s of the loop for 100,000 ads with consent, and no submit_sm or INVITE was served meanwhile. The queue holds
entry keys, each once (`queued`), in a heap by round, then delivery (soonest first): an ad queued again before its
judgement is judged once, with the lists and rules in force when its turn comes.

A full look walks the index's recipients on the list (one bitmap intersection, taken when it starts) into the queue
a slice per turn (`gather_some`), each turn judging a slice too (what is queued so far, soonest due first: the walk
of 200,000 recipients takes ~200 turns). Rounds: a full look that starts while another still walks goes on with that
walk (its ads not judged yet will be, with the lists in force at their turn), the numbers new in its intersection
walked after it, and then it walks again (the ads it took and judged before that change judged again after it); one
that starts once the walk is done walks again in the next round (its ads already queued stay
where they are, the others -- judged before the change -- queued behind every ad of the round being judged). So a
full change at every tick (consents withdrawn one by one, a second apart) never starts the walk again from its first
number nor judges the soonest ads again and again: every ad is judged, in the round it was queued in. Ads queued by a
change known by number (the numbers it added, cancels to try again) join the round being judged by their delivery
(one queued behind, for the next round, moves up).

Keys only, no entries: the entry is read at its judgement (gone or due by then: not judged). The heap holds ints,
`round << 64 | due << 32 | slot` (`slot`: the key's place in `keys`, None once taken or moved up): a pop compares
ints, a third of what (due, key) tuples cost. A slot is given again once the heap's one entry naming it is popped
(`free`; all reset when nothing is queued): a look that never ends (a full change each second on a busy loop) keeps
as many slots as heap entries, not one for every key it ever queued (memory without bound, and past 2**32 slots
`slot` would run into `due`). `queued` maps each key to its heap item. An ad re-timed (a replace_sm) while queued takes
its new place in its round (`retime`). `queued` is SHARDS dicts by
the key's hash: a dict of 175,000 keys growing copies them all in one go (~5 ms), a shard's an eighth of that.
"""
from __future__ import annotations

import heapq
from array import array
from itertools import islice

_SLOT = 0xFFFFFFFF
SHARDS = 8


class DncLook:
    __slots__ = ("heap", "keys", "free", "queued", "live", "gather", "walking", "again", "round", "judging", "taken",
                 "since")

    def __init__(self):
        self.heap: list = []            # round << 64 | due << 32 | slot, for each queued key (and some moved up)
        self.keys: list = []            # slot -> its key (None once taken or moved up)
        self.free = array("L")          # slots whose heap entry was popped: no entry names them, given again (C
                                        # ints: 200,000 int objects freed at once when the queue empties ~3 ms)
        self.queued = [{} for _ in range(SHARDS)]       # by hash(key) % SHARDS: entry key -> its heap item
        self.live = 0                   # keys in `queued`
        self.gather = None              # a full look's recipients still to walk: [iterators], or None
        self.walking = None             # ... the numbers its walk takes, walked or not (a bitmap)
        self.again = None               # ... a full change's numbers, made while it walked: walked again after it
        self.round = 0                  # the round the walk queues into
        self.judging = 0                # the round of the last key taken
        self.taken = self.since = 0     # keys taken (pop), and when the walk started

    def __bool__(self) -> bool:
        return self.live > 0 or self.gather is not None

    def __len__(self) -> int:
        return self.live

    @property
    def gathering(self) -> bool:
        return self.gather is not None

    def every(self, numbers) -> None:
        """A full look: every ad to one of `numbers` (a bitmap of the index's recipients on the list, this look's
        own) queued, a slice at a time (`gather_some`)."""
        if self.gather is not None:     # (a walk running: it goes on, the numbers new since after it)
            fresh = numbers - self.walking
            if fresh:
                self.gather.append(iter(fresh))
                self.walking = self.walking | fresh
            # ... and then it walks again, in the next round: the ads it queued and that were judged before this
            # change (the soonest, judged while it walked) are judged again after it, as the others are. (None
            # judged since it started, judging paused for a cancel slot: nothing to walk again for)
            if self.again is not None or self.taken != self.since:
                self.again = numbers
            return
        if not self.live:
            self.judging = 0
        self.gather, self.walking, self.round, self.since = [iter(numbers)], numbers, self.judging + 1, self.taken

    def add(self, due: int, key: str, walk: bool = False) -> None:
        """`key` (delivered at `due`) queued: in the round being judged, or for a full look's walk (`walk`) in its
        own; one queued already stays (one queued for a later round moves up to this one)."""
        r = self.round if walk else self.judging
        queued = self.queued[hash(key) % SHARDS]
        had = queued.get(key)
        if had is not None:
            if had >> 64 <= r:
                return
            self.keys[had & _SLOT] = None
        else:
            self.live += 1
        self._queue(queued, r, due, key)

    def retime(self, due: int, key: str) -> None:
        """`key`, when queued, delivered at `due` from now on (a replace_sm's schedule): its place in its round by that
        (was: by the delivery it was queued with -- one moved to the next minute judged behind ads due in a month)."""
        queued = self.queued[hash(key) % SHARDS]
        had = queued.get(key)
        if had is not None and had >> 32 & _SLOT != due:
            self.keys[had & _SLOT] = None           # (its heap item stale, as one moved up)
            self._queue(queued, had >> 64, due, key)

    def _queue(self, queued: dict, r: int, due: int, key: str) -> None:
        free = self.free
        if free:
            slot = free.pop()
            self.keys[slot] = key
        else:
            slot = len(self.keys)
            self.keys.append(key)
        queued[key] = item = r << 64 | due << 32 | slot
        heapq.heappush(self.heap, item)

    def gather_some(self, index, n: int) -> int:
        """Up to `n` of the full look's recipients walked: their ads in `index` (scheduled.ScheduledAds) queued.
        How many recipients (fewer than `n`: the walk is done)."""
        entries, add, took, walks = index.entries, self.add, 0, self.gather
        while walks and took < n:
            for num in islice(walks[0], n - took):
                took += 1
                for k in index.keys_to(num):
                    ad = entries.get(k)
                    if ad is not None:
                        add(ad.due, k, True)
            if took < n:                # (that walk is done)
                walks.pop(0)
        if not walks:
            self.gather = self.walking = None
            if self.again is not None:  # (a full change came while it walked)
                again, self.again = self.again, None
                self.every(again)
        return took

    def pop(self) -> str | None:
        """The key of the round being judged (else the next) due soonest, no longer queued; None when none is."""
        heap, keys, free = self.heap, self.keys, self.free
        while heap:
            item = heapq.heappop(heap)
            slot = item & _SLOT
            free.append(slot)           # (its only entry popped: no other names it)
            key = keys[slot]
            if key is None:             # (moved up)
                continue
            keys[slot] = None
            del self.queued[hash(key) % SHARDS][key]
            self.judging = item >> 64
            self.live -= 1
            self.taken += 1
            if not self.live:
                heap.clear()
                keys.clear()
                del free[:]
            return key
        return None

    def clear(self) -> None:
        self.heap.clear()
        self.keys.clear()
        del self.free[:]
        for q in self.queued:
            q.clear()
        self.live = 0
        self.gather = self.walking = self.again = None
        self.round = self.judging = 0
