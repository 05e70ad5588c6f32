"""A flat hash table of fixed-width uint32 rows: the storage behind every per-key state.

Theory of operation
-------------------
Per-key state (a counter's recent timestamps, a sender's recipient history) is a row of
`width` uint32 words. A table keeps two flat arrays: `h`, the 64-bit hash of each row's
key (0 = empty slot), and `rows`, the rows back to back. Keys themselves are not kept:
two keys with the same 64-bit hash share a row. With n live keys in a table the chance
that a new key lands on an existing one is n / 2^64 (2M keys: 1.1e-13 per new key).
The hash is stable across processes and machines (keyhash.py), never Python's per-process
salted `hash()`: a snapshot or journal written by one process must find the same rows in another.

Slots are found by linear probing from `home(h) = ((h >> 32) * cap) >> 32`, which is
monotone in h. Probing never wraps: a tail of spare slots follows the `cap` home slots,
and the very last slot is always empty, so every probe ends at an empty slot or the key.

Rows expire: word `touch` of a row holds its last-touch second, and a row untouched for
`keep` seconds is dead. A dead row on a key's probe path is reused for a new key; a
sweeper examines a few slots after every insert and removes dead rows by backward shift
(Knuth's algorithm R for linear probing), so dead rows never pile up.

Growth never stops the world. Past 80% of `cap` occupied, new arrays sized for 60% load are
allocated (growth x1.33, so moves cost O(1) amortised per insert and memory per live key stays
within (width*4+8) / 0.6..0.8 bytes) and the current ones become the "previous" arrays. Every
insert then moves a few whole clusters from the end of the previous arrays (dead rows dropped;
enough per insert that the move ends within half of the headroom to the next growth). The moves
are spread evenly on purpose: batching them every 32 inserts raised judge()'s p99 CPU from ~140
to ~210 µs, and a batch stalls every message queued behind it. A key looked up or claimed while
still in the previous arrays is moved first: every row index handed out is in
the current arrays, and rows already there never move for it. Moving whole clusters keeps the
rest probe-correct (a row's probe path never leaves its cluster), and the moved tail's pages are
given back as it goes. The arrays are anonymous mappings (`_zeros`): the kernel supplies zero
pages on first touch, so allocating 100 MB costs nothing up front (a zero-filled `array` of
40 MB took ~50 ms, itself a pause). Measured on the realistic mix (200k messages, state
growing): the worst judge() CPU 18-64 ms -> 4-11 ms; the one-pass numpy rebuild it replaces
took 56-110 ms at 1M rows. At `max_keys` rows a new key takes over the least recently touched
row among those on its probe path, or among the next few the sweeper reaches (a sampled LRU:
an evicted key only loses its history, so it can under-count, never over-count).

Everything is flat: no per-key Python objects, nothing for the cyclic GC to walk, and
`memory_bytes()` is exact (during a growth it counts the previous arrays' unmoved part too).
"""
from __future__ import annotations

import mmap
from array import array

from .keyhash import M64, key_hash, stable_hash, value_fp     # noqa: F401 (the tables' key hashes, re-exported)

_TAIL = 64
_MIN_CAP = 64
_SWEEP = 2                          # slots examined by the sweeper before each insert (a full pass per cap/2 inserts)
_STEP_MIN = 4                       # previous slots moved per insert during a growth (at least)
_CUT = 1 << 14                      # moved slots given back to the allocator at a time
_EVICT = 8                          # rows sampled for eviction at max_keys when a key's home slot is empty


def _zeros(fmt: str, n: int) -> memoryview:
    """n zeroed words of struct format `fmt` ("Q" or "I") in an anonymous mapping: the kernel
    hands out zero pages on first touch, so a table of any size is allocated at once (an
    `array` of 40 MB is zero-filled in ~50 ms, a pause), and moved-out parts can be given back
    with madvise. Indexing and slicing are as fast as an array's."""
    size = 8 if fmt == "Q" else 4
    return memoryview(mmap.mmap(-1, max(1, n) * size)).cast("B").cast(fmt)


def _copy(fmt: str, data) -> memoryview:
    """A table array holding a copy of `data` (bytes, array or memoryview of that format)."""
    b = memoryview(data).cast("B")
    v = _zeros(fmt, len(b) // (8 if fmt == "Q" else 4))
    v.cast("B")[:] = b
    return v


def _release(v: memoryview, start: int) -> None:
    """Give the pages of words [start, end) of a table array back to the kernel (they read as 0)."""
    size = v.itemsize
    a = -(-start * size // mmap.PAGESIZE) * mmap.PAGESIZE
    end = len(v) * size // mmap.PAGESIZE * mmap.PAGESIZE
    if end > a:
        v.obj.madvise(mmap.MADV_DONTNEED, a, end - a)


class SlotTable:
    __slots__ = ("width", "touch", "keep", "max_keys", "cap", "h", "rows", "used", "cursor", "_zero",
                 "rebuilds", "_old")

    def __init__(self, width: int, touch: int, keep: float | None, max_keys: int = 2_000_000):
        self.width = width              # uint32 words per row
        self.touch = touch              # index of the last-touch second within a row
        self.keep = int(keep) if keep is not None else None   # seconds a row lives after its last touch
        self.max_keys = max(1, max_keys)
        self._zero = array("I", bytes(4 * width))
        self.rebuilds = 0
        self._old = None                # a growth under way: _Old (the previous arrays), else None
        self._alloc(_MIN_CAP, _MIN_CAP + _TAIL)

    def _alloc(self, cap: int, n: int) -> None:
        self.cap = cap
        self.h = _zeros("Q", n)
        self.rows = _zeros("I", n * self.width)
        self.used = 0
        self.cursor = 0

    def __len__(self) -> int:
        """Occupied slots (live rows, plus dead ones the sweeper has not reached yet)."""
        return self.used + (self._old.left if self._old is not None else 0)

    def memory_bytes(self) -> int:
        o = self._old
        return len(self.h) * (8 + 4 * self.width) + (o.cursor + 1) * (8 + 4 * self.width) if o is not None \
            else len(self.h) * (8 + 4 * self.width)

    def find(self, h: int) -> int:
        """Row index of hash `h`, or -1. During a growth a row still in the previous arrays is
        moved into the current ones first (rows already there do not move)."""
        hs = self.h
        i = ((h >> 32) * self.cap) >> 32
        while True:
            x = hs[i]
            if x == h:
                return i
            if not x:
                return -1 if self._old is None else self._pull(h)
            i += 1

    def slot(self, h: int, now: int) -> int:
        """Row index of hash `h`, claimed (all words 0) if absent. May move rows."""
        hs, rows, w, t = self.h, self.rows, self.width, self.touch
        horizon = now - self.keep if self.keep is not None else -1
        # one probe finds the key, or else the first dead row on its path and the empty slot
        # ending it: the place a new key goes unless the sweep below moves rows
        i = ((h >> 32) * self.cap) >> 32
        dead = -1
        while True:
            x = hs[i]
            if x == h:
                return i
            if not x:
                break
            if dead < 0 and rows[i * w + t] <= horizon:
                dead = i
            i += 1
        if self._old is not None:
            j = self._pull(h)
            self._migrate(now)              # a few more of the previous rows (never moves rows here)
            if j >= 0:
                return j
            hs, rows = self.h, self.rows    # (a longer tail is a new pair of arrays)
            if dead < 0 and hs[i]:          # the migration filled the empty slot the probe ended at
                return self.slot(h, now)
        elif self.keep is not None and self._sweep(now):     # before claiming: a sweep moves rows
            i = ((h >> 32) * self.cap) >> 32
            dead = -1
            while hs[i]:
                if rows[i * w + t] <= horizon:
                    dead = i
                    break
                i += 1
        if dead >= 0:                       # a dead row on the probe path: take it over
            hs[dead] = h
            rows[dead * w:(dead + 1) * w] = self._zero
            return dead
        if len(self) >= self.max_keys:      # at the bound: take over the least recently touched row
            return self._evict(h, now)
        if self.used >= 0.8 * self.cap:
            self._grow(now)
            return self.slot(h, now)
        if i >= len(hs) - 1:
            hs = self._lengthen()
        hs[i] = h
        self.used += 1
        return i

    # ------------------------------------------------------------ upkeep
    def _sweep(self, now: int) -> bool:
        """Remove dead rows among the next few slots; True when any was removed (rows moved)."""
        hs, rows, w, t = self.h, self.rows, self.width, self.touch
        horizon = now - self.keep
        n = len(hs) - 1
        c = self.cursor
        moved = False
        for _ in range(_SWEEP):
            if hs[c] and rows[c * w + t] <= horizon:
                self.delete(c)
                moved = True
            c = c + 1 if c + 1 < n else 0
        self.cursor = c
        return moved

    def delete(self, i: int) -> None:
        """Empty slot i, moving later rows of its cluster back so no probe path breaks."""
        _backshift(self.h, self.rows, self.width, self.cap, i, self._zero)
        self.used -= 1

    def _evict(self, h: int, now: int) -> int:
        """A new key at `max_keys` rows: it takes over the least recently touched row among
        those on its probe path and the next _EVICT slots of the sweeper (a sampled LRU: an
        evicted key only loses its history, so it can under-count, never over-count)."""
        hs, rows, w, t = self.h, self.rows, self.width, self.touch
        best, best_t = -1, None
        i = ((h >> 32) * self.cap) >> 32
        while hs[i]:
            if best_t is None or rows[i * w + t] < best_t:
                best, best_t = i, rows[i * w + t]
            i += 1
        if best < 0:                        # an empty home slot: free the oldest row the sweeper sees
            n, c, seen = len(hs) - 1, self.cursor, 0
            for _ in range(n):
                if hs[c]:
                    seen += 1
                    if best_t is None or rows[c * w + t] < best_t:
                        best, best_t = c, rows[c * w + t]
                c = c + 1 if c + 1 < n else 0
                if seen >= _EVICT:
                    break
            self.cursor = c
            if best < 0:                    # every row is still in the previous arrays
                self._settle()
                return self._evict(h, now)
            self.delete(best)
            i = ((h >> 32) * self.cap) >> 32
            while hs[i]:
                i += 1
            if i >= len(hs) - 1:
                hs = self._lengthen()
            hs[i] = h
            self.used += 1
            return i
        hs[best] = h
        rows[best * w:(best + 1) * w] = self._zero
        return best

    def _grow(self, now: int) -> None:
        """Start moving to arrays sized for 60% load: the current ones become the previous ones,
        moved over a few rows per insert (see the module's theory of operation)."""
        if self._old is not None:           # a growth still under way (never at the sizes chosen): end it
            self._settle()
        live = min(self.used, self.max_keys)
        cap = max(_MIN_CAP, int(live / 0.6) + 1)
        self._old = _Old(self.h, self.rows, self.cap, self.used, now)
        self._alloc(cap, cap + _TAIL)
        # every previous slot is moved before half of the new arrays' headroom to 80% load is
        # used: the move is done long before the next growth, and both arrays coexist briefly
        self._old.step = max(_STEP_MIN, 2 * -(-len(self._old.h) // max(1, int(0.8 * cap) - live)))
        self.rebuilds += 1

    def _pull(self, h: int) -> int:
        """Move the row of hash `h` from the previous arrays into the current ones: its index, or -1."""
        o = self._old
        ohs = o.h
        j = ((h >> 32) * o.cap) >> 32
        if j >= o.cursor:                   # its home is in the part already moved
            return -1
        while True:
            x = ohs[j]
            if x == h:
                break
            if not x:
                return -1
            j += 1
        w = self.width
        i = self._put(h, o.rows[j * w:(j + 1) * w])
        _backshift(ohs, o.rows, w, o.cap, j, self._zero)
        o.left -= 1
        return i

    def _put(self, h: int, row) -> int:
        """Place a row absent from the current arrays (no sweep, no growth: sized for it)."""
        hs, w = self.h, self.width
        i = ((h >> 32) * self.cap) >> 32
        while hs[i]:
            i += 1
        if i >= len(hs) - 1:                # a cluster ran into the tail
            hs = self._lengthen()
        hs[i] = h
        self.rows[i * w:(i + 1) * w] = row
        self.used += 1
        return i

    def _lengthen(self):
        """A longer tail (a cluster reached the last slot: rare, the rows are copied)."""
        hs, w = self.h, self.width
        m = len(hs)
        nh, nr = _zeros("Q", m + _TAIL), _zeros("I", (m + _TAIL) * w)
        nh[:m], nr[:m * w] = hs, self.rows
        self.h, self.rows = nh, nr
        return nh

    def _migrate(self, now: int, budget: int | None = None) -> None:
        """Move the previous arrays' last whole clusters (at least `budget` slots) into the current
        ones, dropping dead rows, and cut them off the arrays' end. Whole clusters only: a row's
        probe path never leaves its cluster, so the clusters left are probed as before; the
        slot before the cut is empty, so a probe still ends inside the arrays."""
        o = self._old
        ohs, orows, w, t = o.h, o.rows, self.width, self.touch
        horizon = now - self.keep if self.keep is not None else -1
        c = o.cursor                        # slots [c, len) are moved; slot c is empty
        stop = c - (o.step if budget is None else budget)
        hs, rows, cap, last = self.h, self.rows, self.cap, len(self.h) - 1
        moved = seen = 0
        # slots at and after the cursor are never read again (a probe of the previous arrays
        # starts before the cursor and ends at the empty slot before it), so they are not cleared
        while c > 0 and (c > stop or ohs[c - 1]):
            c -= 1
            x = ohs[c]
            if x:
                seen += 1
                if orows[c * w + t] > horizon:          # _put, inlined: this runs for every row moved
                    i = ((x >> 32) * cap) >> 32
                    while hs[i]:
                        i += 1
                    if i >= last:
                        hs = self._lengthen()
                        rows, last = self.rows, len(hs) - 1
                    hs[i] = x
                    rows[i * w:(i + 1) * w] = orows[c * w:(c + 1) * w]
                    moved += 1
        self.used += moved
        o.left -= seen
        o.cursor = c
        if c == 0:
            self._old = None
        elif o.released - c > _CUT:         # give the moved part back now and then, not every insert
            _release(ohs, c + 1)
            _release(orows, (c + 1) * w)
            o.released = c

    def _settle(self) -> None:
        """Finish a growth under way at once (before a dump, a re-layout or an eviction)."""
        if self._old is not None:
            self._migrate(self._old.now, len(self._old.h))

    def settled(self) -> "SlotTable":
        """This table with any growth under way finished (what a snapshot dumps)."""
        self._settle()
        return self


    # ------------------------------------------------------------ snapshot encoding
    def dump(self) -> list:
        """The table as plain values (state/embedded.py writes them with msgpack), growth under way
        included: a snapshot never has to finish one on the event loop."""
        o = self._old
        return [self.width, self.touch, self.keep, self.max_keys, self.cap, self.used, self.cursor, self.rebuilds,
                bytes(self.h), bytes(self.rows),
                None if o is None else [o.cap, o.left, o.cursor, o.step, o.now, bytes(o.h[:o.cursor + 1]),
                                        bytes(o.rows[:(o.cursor + 1) * self.width])]]

    @classmethod
    def load(cls, v: list) -> "SlotTable":
        """A table from `dump()` (a 10-item dump from before growth was incremental loads too)."""
        width, touch, keep, max_keys, cap, used, cursor, rebuilds, h, rows = v[:10]
        t = cls(width, touch, keep, max_keys)
        t.cap, t.used, t.cursor, t.rebuilds = cap, used, cursor, rebuilds
        t.h, t.rows = _copy("Q", h), _copy("I", rows)
        if len(t.h) * width != len(t.rows):
            raise ValueError("table rows do not match its hashes")
        if len(v) > 10 and v[10] is not None:
            ocap, left, ocursor, step, now, oh, orows = v[10]
            o = t._old = _Old(_copy("Q", oh), _copy("I", orows), ocap, left, now)
            o.cursor, o.step = ocursor, step
            if len(o.h) * width != len(o.rows) or not 0 <= ocursor < len(o.h):
                raise ValueError("table rows do not match its hashes")
        return t


class _Old:
    """The previous arrays of a growth under way and how far the move has got."""

    __slots__ = ("h", "rows", "cap", "left", "cursor", "step", "now", "released")

    def __init__(self, h, rows, cap, left, now):
        self.h, self.rows, self.cap, self.left, self.now = h, rows, cap, left, now
        self.cursor, self.step = len(h) - 1, _STEP_MIN          # the last slot is always empty
        self.released = self.cursor


def _backshift(hs, rows, w, cap, i, zero) -> None:
    """Empty slot i of a linear-probing table, moving later rows of its cluster back so no probe
    path breaks (Knuth's algorithm R)."""
    j = i + 1
    while True:
        x = hs[j]
        if not x:
            break
        if ((x >> 32) * cap) >> 32 <= i:      # its probe path covers the hole: move it there
            hs[i] = x
            rows[i * w:(i + 1) * w] = rows[j * w:(j + 1) * w]
            i = j
        j += 1
    hs[i] = 0
    rows[i * w:(i + 1) * w] = zero
