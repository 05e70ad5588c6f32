"""A flat hash table of fixed-width uint32 rows: the storage behind every per-key state.

Theory of operation
-------------------
Per-key state (a counter's recent timestamps, a sender's recipient history) is a row of
`width` uint32 words. A table keeps an index of slots, two flat arrays: `h`, the 64-bit hash
of each slot's key (0 = empty slot), and `ix`, the number of the slot's row; and `rows`, the
rows back to back, densely: a row is placed once when its key arrives and never moves while
the key lives (only index entries move). Keys themselves are not kept: two keys with the same
64-bit hash share a row. With n live keys in a table the chance that a new key lands on an
existing one is n / 2^64 (2M keys: 1.1e-13 per new key). The hash is stable across processes
and machines (keyhash.py), never Python's per-process salted `hash()`: a snapshot or journal
written by one process must find the same rows in another.

Why an index and dense rows: a slot costs 12 bytes and a row only exists for a live key, so
the index's spare capacity (the load runs between 60% and 80%) costs 12 bytes a key, not a
whole row: a key costs width*4 + 12/load bytes (a recipient-history row 92 + 15..20 B, where
rows kept in the slots took (92 + 8) / load = 125..167 B). A freed row (its key expired or
was evicted) goes on a free list threaded through the free rows' word 0 and is the next one
handed out; `top` rows have ever been used, and only those pages are ever touched: `rows` is
an anonymous mapping reserved for `max_keys` rows (MAP_NORESERVE: the kernel hands out zero
pages on first touch, so the reservation costs address space only).

Slots are found by linear probing from `home(h) = ((h >> 32) * cap) >> 32`, which is
monotone in h. Probing never wraps: a tail of spare slots follows the `cap` home slots,
and the very last slot is always empty, so every probe ends at an empty slot or the key.

Rows expire: word `touch` of a row holds its last-touch second, and a row untouched for
`keep` seconds is dead. A dead row on a key's probe path is reused for a new key; a
sweeper examines a few slots after every insert and removes dead rows by backward shift
(Knuth's algorithm R for linear probing), so dead rows never pile up.

Growth never stops the world. Past 80% of `cap` occupied, a new index sized for 60% load is
allocated (growth x1.33, so moves cost O(1) amortised per insert) and the current one becomes
the "previous" index. Every insert then moves a few whole clusters of index entries from the
end of the previous index (entries of dead rows dropped, their rows freed; enough per insert
that the move ends within half of the headroom to the next growth). Rows stay where they are:
a move is 12 bytes a key whatever the row's width. The moves are spread evenly on purpose:
batching them every 32 inserts raised judge()'s p99 CPU from ~140 to ~210 µs, and a batch
stalls every message queued behind it. A key looked up or claimed while still in the previous
index is moved first. Moving whole clusters keeps the rest probe-correct (an entry's probe path
never leaves its cluster), and the moved tail's pages are given back as it goes. Measured on
the realistic mix (200k messages, state growing): the worst judge() CPU 18-64 ms -> 4-11 ms
when growth became incremental; the one-pass numpy rebuild it replaced took 56-110 ms at 1M rows.
At `max_keys` rows a new key takes over the least recently touched row among those on its
probe path, or among the next few the sweeper reaches (a sampled LRU: an evicted key only
loses its history, so it can under-count, never over-count).

Everything is flat: no per-key Python objects, nothing for the cyclic GC to walk, and
`memory_bytes()` is exact: the index arrays (during a growth the previous index's unmoved part
too) and the `top` rows ever used.

The hot methods (find, slot and the row operations of counters.py and history.py) have a
compiled twin in _slotsfast.c, used when it was built; the code here is the reference and the
fallback, and tests/test_slots_fast.py runs both on the same operation sequences.
"""
from __future__ import annotations

import mmap
import os
import sys
from array import array
from contextlib import contextmanager

import numpy as np

from .keyhash import M64, key_hash, stable_hash, value_fp     # noqa: F401 (the tables' key hashes, re-exported)

_TAIL = 64
_MIN_CAP = 64
_SWEEP = 2                          # slots examined by the sweeper before each insert (a full pass per cap/2 inserts)
_STEP_MIN = 4                       # previous slots moved per insert during a growth (at least)
_CUT = 1 << 14                      # moved slots given back to the allocator at a time
_EVICT = 8                          # rows sampled for eviction at max_keys when a key's home slot is empty
_RESERVE = 1 << 30                  # bytes of address space reserved for a table's rows at most (more: copied)
# an anonymous mapping's pages are only committed when touched; Linux does not count the
# untouched reservation against the commit limit with MAP_NORESERVE (0x4000, not in Python's mmap)
_NORESERVE = 0x4000 if sys.platform.startswith("linux") else 0


def _load_fast():
    if os.environ.get("TELFILTER_TABLES_PURE") == "1":
        return None
    try:
        from . import _slotsfast
    except ImportError:             # not built (no C compiler): the Python paths below
        return None
    return _slotsfast


_fast = _load_fast()                # the compiled twin of the hot paths, or None
_FAST = _fast


@contextmanager
def use_fast(on: bool):
    """Run with the compiled paths on or off (parity tests and benchmarks)."""
    global _fast
    prev = _fast
    _fast = _FAST if on else None
    try:
        yield
    finally:
        _fast = prev


def _zeros(fmt: str, n: int) -> memoryview:
    """n zeroed words of struct format `fmt` ("Q" or "I") in an anonymous mapping: the kernel
    hands out zero pages on first touch, so a table of any size is allocated at once (an
    `array` of 40 MB is zero-filled in ~50 ms, a pause), and moved-out parts can be given back
    with madvise. Indexing and slicing are as fast as an array's."""
    size = 8 if fmt == "Q" else 4
    try:
        m = mmap.mmap(-1, max(1, n) * size, flags=mmap.MAP_PRIVATE | _NORESERVE)
    except (OSError, ValueError):
        m = mmap.mmap(-1, max(1, n) * size)
    return memoryview(m).cast("B").cast(fmt)


def _copy(fmt: str, data, n: int | None = None) -> memoryview:
    """A table array holding a copy of `data` (bytes, array or memoryview of that format),
    `n` words long (at least the data's length)."""
    b = memoryview(data).cast("B")
    size = 8 if fmt == "Q" else 4
    v = _zeros(fmt, max(len(b) // size, n or 0))
    v.cast("B")[:len(b)] = b
    return v


def _release(v: memoryview, start: int) -> None:
    """Give the pages of words [start, end) of a table array back to the kernel (they read as 0)."""
    size = v.itemsize
    a = -(-start * size // mmap.PAGESIZE) * mmap.PAGESIZE
    end = len(v) * size // mmap.PAGESIZE * mmap.PAGESIZE
    if end > a:
        v.obj.madvise(mmap.MADV_DONTNEED, a, end - a)


def _reserve_rows(width: int, max_keys: int, top: int = 0) -> int:
    """Rows to reserve: room for max_keys rows, or what _RESERVE bytes hold (then grown by copying)."""
    return max(top + 1, min(max_keys + 1, max(1024, _RESERVE // (4 * width))))


class SlotTable:
    __slots__ = ("width", "touch", "keep", "max_keys", "cap", "h", "ix", "rows", "used", "cursor", "_zero",
                 "rebuilds", "_old", "top", "free")

    def __init__(self, width: int, touch: int, keep: float | None, max_keys: int = 2_000_000):
        self.width = width              # uint32 words per row
        self.touch = touch              # index of the last-touch second within a row
        self.keep = int(keep) if keep is not None else None   # seconds a row lives after its last touch
        self.max_keys = max(1, max_keys)
        self._zero = array("I", bytes(4 * width))
        self.rebuilds = 0
        self._old = None                # a growth under way: _Old (the previous index), else None
        self.top = 0                    # rows ever handed out
        self.free = 0                   # the free list's first row + 1 (0: empty)
        self.rows = _zeros("I", _reserve_rows(width, self.max_keys) * width)
        self._alloc(_MIN_CAP, _MIN_CAP + _TAIL)

    def _alloc(self, cap: int, n: int) -> None:
        self.cap = cap
        self.h = _zeros("Q", n)
        self.ix = _zeros("I", n)
        self.used = 0
        self.cursor = 0

    def __len__(self) -> int:
        """Occupied slots (live rows, plus dead ones the sweeper has not reached yet)."""
        return self.used + (self._old.left if self._old is not None else 0)

    def memory_bytes(self) -> int:
        o = self._old
        return len(self.h) * 12 + self.top * 4 * self.width + ((o.cursor + 1) * 12 if o is not None else 0)

    # ------------------------------------------------------------ rows
    def _new_row(self) -> int:
        """A zeroed row: the last one freed, else the next never used."""
        f = self.free
        w = self.width
        if f:
            r = f - 1
            self.free = self.rows[r * w]
            self.rows[r * w:(r + 1) * w] = self._zero
            return r
        r = self.top
        if (r + 1) * w > len(self.rows):
            self._more_rows()
        self.top = r + 1
        return r

    def _free_row(self, r: int) -> None:
        self.rows[r * self.width] = self.free
        self.free = r + 1

    def _more_rows(self) -> None:
        """A larger row array (only past the _RESERVE bytes reserved up front: the rows are copied)."""
        self.rows = _copy("I", self.rows, 2 * len(self.rows))

    # ------------------------------------------------------------ lookups
    def find(self, h: int) -> int:
        """Row of hash `h`, or -1. During a growth a key still in the previous index is moved
        into the current one first."""
        if _fast is not None:
            return _fast.find(self, h)
        hs = self.h
        i = ((h >> 32) * self.cap) >> 32
        while True:
            x = hs[i]
            if x == h:
                return self.ix[i]
            if not x:
                return -1 if self._old is None else self._pull(h)
            i += 1

    def slot(self, h: int, now: int) -> int:
        """Row of hash `h`, claimed (all words 0) if absent. May move index entries, never rows."""
        if _fast is not None:
            return _fast.slot(self, h, now)
        return self._slot_py(h, now)

    def _slot_py(self, h: int, now: int) -> int:
        hs, ix, rows, w, t = self.h, self.ix, self.rows, self.width, self.touch
        horizon = now - self.keep if self.keep is not None else -1
        # one probe finds the key, or else the first dead row on its path and the empty slot
        # ending it: the place a new key goes unless the sweep below moves entries
        i = ((h >> 32) * self.cap) >> 32
        dead = -1
        while True:
            x = hs[i]
            if x == h:
                return ix[i]
            if not x:
                break
            if dead < 0 and rows[ix[i] * w + t] <= horizon:
                dead = i
            i += 1
        if self._old is not None:
            r = self._pull(h)
            self._migrate(now)              # a few more of the previous entries (never moves ours)
            if r >= 0:
                return r
            hs, ix = self.h, self.ix        # (a longer tail is a new pair of arrays)
            if dead < 0 and hs[i]:          # the migration filled the empty slot the probe ended at
                return self.slot(h, now)
        elif self.keep is not None and self._sweep(now):     # before claiming: a sweep moves entries
            i = ((h >> 32) * self.cap) >> 32
            dead = -1
            while hs[i]:
                if rows[ix[i] * w + t] <= horizon:
                    dead = i
                    break
                i += 1
        if dead >= 0:                       # a dead row on the probe path: take it over
            hs[dead] = h
            r = ix[dead]
            rows[r * w:(r + 1) * w] = self._zero
            return r
        if len(self) >= self.max_keys:      # at the bound: take over the least recently touched row
            return self._evict(h, now)
        if self.used >= 0.8 * self.cap:
            self._grow(now)
            return self.slot(h, now)
        if i >= len(hs) - 1:
            hs = self._lengthen()
        r = self._new_row()
        hs[i] = h
        self.ix[i] = r
        self.used += 1
        return r

    # ------------------------------------------------------------ upkeep
    def _sweep(self, now: int) -> bool:
        """Remove dead rows among the next few slots; True when any was removed (entries moved)."""
        hs, ix, rows, w, t = self.h, self.ix, self.rows, self.width, self.touch
        horizon = now - self.keep
        n = len(hs) - 1
        c = self.cursor
        moved = False
        for _ in range(_SWEEP):
            if hs[c] and rows[ix[c] * w + t] <= horizon:
                self.delete(c)
                moved = True
            c = c + 1 if c + 1 < n else 0
        self.cursor = c
        return moved

    def discard(self, h: int) -> None:
        """Remove the key of hash `h` (found in the current index: find() moved it there)."""
        hs = self.h
        i = ((h >> 32) * self.cap) >> 32
        while hs[i]:
            if hs[i] == h:
                self.delete(i)
                return
            i += 1

    def delete(self, i: int) -> None:
        """Empty slot i and free its row, moving later entries of its cluster back so no probe
        path breaks."""
        self._free_row(self.ix[i])
        _backshift(self.h, self.ix, self.cap, i)
        self.used -= 1

    def _evict(self, h: int, now: int) -> int:
        """A new key at `max_keys` rows: it takes over the least recently touched row among
        those on its probe path and the next _EVICT slots of the sweeper (a sampled LRU: an
        evicted key only loses its history, so it can under-count, never over-count)."""
        hs, ix, rows, w, t = self.h, self.ix, self.rows, self.width, self.touch
        best, best_t = -1, None
        i = ((h >> 32) * self.cap) >> 32
        while hs[i]:
            if best_t is None or rows[ix[i] * w + t] < best_t:
                best, best_t = i, rows[ix[i] * w + t]
            i += 1
        if best < 0:                        # an empty home slot: free the oldest row the sweeper sees
            n, c, seen = len(hs) - 1, self.cursor, 0
            for _ in range(n):
                if hs[c]:
                    seen += 1
                    if best_t is None or rows[ix[c] * w + t] < best_t:
                        best, best_t = c, rows[ix[c] * w + t]
                c = c + 1 if c + 1 < n else 0
                if seen >= _EVICT:
                    break
            self.cursor = c
            if best < 0:                    # every row is still in the previous index
                self._settle()
                return self._evict(h, now)
            self.delete(best)
            i = ((h >> 32) * self.cap) >> 32
            while hs[i]:
                i += 1
            if i >= len(hs) - 1:
                hs = self._lengthen()
            r = self._new_row()
            hs[i] = h
            self.ix[i] = r
            self.used += 1
            return r
        hs[best] = h
        r = ix[best]
        rows[r * w:(r + 1) * w] = self._zero
        return r

    def _grow(self, now: int) -> None:
        """Start moving to an index sized for 60% load: the current one becomes the previous one,
        moved over a few entries per insert (see the module's theory of operation)."""
        if self._old is not None:           # a growth still under way (never at the sizes chosen): end it
            self._settle()
        live = min(self.used, self.max_keys)
        cap = max(_MIN_CAP, int(live / 0.6) + 1)
        self._old = _Old(self.h, self.ix, self.cap, self.used, now)
        self._alloc(cap, cap + _TAIL)
        # every previous slot is moved before half of the new index's headroom to 80% load is
        # used: the move is done long before the next growth, and both indexes coexist briefly
        self._old.step = max(_STEP_MIN, 2 * -(-len(self._old.h) // max(1, int(0.8 * cap) - live)))
        self.rebuilds += 1

    def _pull(self, h: int) -> int:
        """Move the entry of hash `h` from the previous index into the current one: its row, or -1."""
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
        r = o.ix[j]
        self._put(h, r)
        _backshift(ohs, o.ix, o.cap, j)
        o.left -= 1
        return r

    def _put(self, h: int, r: int) -> None:
        """Place an entry absent from the current index (no sweep, no growth: sized for it)."""
        hs = self.h
        i = ((h >> 32) * self.cap) >> 32
        while hs[i]:
            i += 1
        if i >= len(hs) - 1:                # a cluster ran into the tail
            hs = self._lengthen()
        hs[i] = h
        self.ix[i] = r
        self.used += 1

    def _lengthen(self):
        """A longer tail (a cluster reached the last slot: rare, the index is copied)."""
        m = len(self.h)
        self.h = _copy("Q", self.h, m + _TAIL)
        self.ix = _copy("I", self.ix, m + _TAIL)
        return self.h

    def _migrate(self, now: int, budget: int | None = None) -> None:
        """Move the previous index's last whole clusters (at least `budget` slots) into the current
        one, dropping (and freeing) dead rows, and cut them off the arrays' end. Whole clusters
        only: an entry's probe path never leaves its cluster, so the clusters left are probed as
        before; the slot before the cut is empty, so a probe still ends inside the arrays."""
        o = self._old
        ohs, oix, rows, w, t = o.h, o.ix, self.rows, self.width, self.touch
        horizon = now - self.keep if self.keep is not None else -1
        c = o.cursor                        # slots [c, len) are moved; slot c is empty
        stop = c - (o.step if budget is None else budget)
        hs, ix, cap, last = self.h, self.ix, self.cap, len(self.h) - 1
        moved = seen = 0
        # slots at and after the cursor are never read again (a probe of the previous index
        # starts before the cursor and ends at the empty slot before it), so they are not cleared
        while c > 0 and (c > stop or ohs[c - 1]):
            c -= 1
            x = ohs[c]
            if x:
                seen += 1
                r = oix[c]
                if rows[r * w + t] > horizon:           # _put, inlined: this runs for every entry moved
                    i = ((x >> 32) * cap) >> 32
                    while hs[i]:
                        i += 1
                    if i >= last:
                        hs = self._lengthen()
                        ix, last = self.ix, len(hs) - 1
                    hs[i] = x
                    ix[i] = r
                    moved += 1
                else:
                    self._free_row(r)
        self.used += moved
        o.left -= seen
        o.cursor = c
        if c == 0:
            self._old = None
        elif o.released - c > _CUT:         # give the moved part back now and then, not every insert
            self._give_back(c)

    def _give_back(self, c: int) -> None:
        """Hand the previous index's moved slots [c + 1, end) back to the kernel."""
        o = self._old
        _release(o.h, c + 1)
        _release(o.ix, c + 1)
        o.released = c

    def _settle(self) -> None:
        """Finish a growth under way at once (before a re-layout or an eviction)."""
        if self._old is not None:
            self._migrate(self._old.now, len(self._old.h))

    def settled(self) -> "SlotTable":
        """This table with any growth under way finished."""
        self._settle()
        return self

    def live_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, row numbers) of every occupied slot, both indexes (for a re-layout)."""
        out_h, out_r = [], []
        for hs, ix, n in ((self.h, self.ix, len(self.h)),) + \
                (((self._old.h, self._old.ix, self._old.cursor),) if self._old is not None else ()):
            H = np.frombuffer(hs, np.uint64, n)
            m = H != 0
            out_h.append(H[m])
            out_r.append(np.frombuffer(ix, np.uint32, n)[m])
        return np.concatenate(out_h), np.concatenate(out_r)

    # ------------------------------------------------------------ snapshot encoding
    def dump(self) -> list:
        """The table as plain values (state/embedded.py writes them with msgpack), growth under way
        included: a snapshot never has to finish one on the event loop."""
        o = self._old
        return [self.width, self.touch, self.keep, self.max_keys, self.cap, self.used, self.cursor, self.rebuilds,
                bytes(self.h), bytes(self.rows[:self.top * self.width]),
                None if o is None else [o.cap, o.left, o.cursor, o.step, o.now, bytes(o.h[:o.cursor + 1]),
                                        bytes(o.ix[:o.cursor + 1])],
                [bytes(self.ix), self.top, self.free]]

    @classmethod
    def load(cls, v: list) -> "SlotTable":
        """A table from `dump()`. Dumps from before the index (rows kept in the slots: 10 items,
        11 with a growth under way) load too: their rows are placed densely in slot order."""
        width, touch, keep, max_keys, cap, used, cursor, rebuilds, h, rows = v[:10]
        t = cls(width, touch, keep, max_keys)
        t.cap, t.used, t.cursor, t.rebuilds = cap, used, cursor, rebuilds
        old = v[10] if len(v) > 10 else None
        if len(v) > 11:
            ix, top, free = v[11]
            if len(rows) != 4 * width * top or len(ix) * 2 != len(h) or not 0 <= free <= top:
                raise ValueError("table rows do not match its index")
            t.h, t.ix, t.top, t.free = _copy("Q", h), _copy("I", ix), top, free
            t.rows = _copy("I", rows, _reserve_rows(width, max_keys, top) * width)
            if old is not None:
                ocap, left, ocursor, step, now, oh, oix = old
                if len(oh) != 2 * len(oix) or not 0 <= ocursor < len(oh) // 8:
                    raise ValueError("table rows do not match its index")
                o = t._old = _Old(_copy("Q", oh), _copy("I", oix), ocap, left, now)
                o.cursor, o.step = ocursor, step
            if max(np.frombuffer(t.ix, np.uint32).max(initial=0),
                   np.frombuffer(t._old.ix, np.uint32).max(initial=0) if t._old else 0) >= max(top, 1):
                raise ValueError("table index names a row beyond its rows")
            return t
        # rows in slot order: the occupied ones become rows 0.., in the same order
        H = np.frombuffer(h, np.uint64)
        R = np.frombuffer(rows, np.uint32)
        if len(H) * width != len(R):
            raise ValueError("table rows do not match its hashes")
        R = R.reshape(len(H), width)
        parts_r = [R[H != 0]]
        if old is not None:
            ocap, left, ocursor, step, now, oh, orows = old
            OH = np.frombuffer(oh, np.uint64)
            OR = np.frombuffer(orows, np.uint32)
            if len(OH) * width != len(OR) or not 0 <= ocursor < len(OH):
                raise ValueError("table rows do not match its hashes")
            OR = OR.reshape(len(OH), width)
            m = OH[:ocursor] != 0
            parts_r.append(OR[:ocursor][m])
        dense = np.concatenate(parts_r)
        top = len(dense)
        t.rows = _copy("I", dense.tobytes(), _reserve_rows(width, max_keys, top) * width)
        t.top = top
        t.h = _copy("Q", h)
        n = int((H != 0).sum())
        IX = np.zeros(len(H), np.uint32)
        IX[H != 0] = np.arange(n, dtype=np.uint32)
        t.ix = _copy("I", IX.tobytes())
        if old is not None:
            OX = np.zeros(len(OH), np.uint32)
            m = OH != 0
            m[ocursor:] = False             # slots at and after the cursor were moved already
            OX[m] = np.arange(n, top, dtype=np.uint32)
            o = t._old = _Old(_copy("Q", OH[:ocursor + 1].tobytes()), _copy("I", OX[:ocursor + 1].tobytes()),
                              ocap, left, now)
            o.h[ocursor] = 0
            o.cursor, o.step = ocursor, step
        return t


class _Old:
    """The previous index of a growth under way and how far the move has got."""

    __slots__ = ("h", "ix", "cap", "left", "cursor", "step", "now", "released")

    def __init__(self, h, ix, cap, left, now):
        self.h, self.ix, self.cap, self.left, self.now = h, ix, cap, left, now
        self.cursor, self.step = len(h) - 1, _STEP_MIN          # the last slot is always empty
        self.released = self.cursor


def _backshift(hs, ix, cap, i) -> None:
    """Empty slot i of a linear-probing index, moving later entries of its cluster back so no
    probe path breaks (Knuth's algorithm R)."""
    j = i + 1
    while True:
        x = hs[j]
        if not x:
            break
        if ((x >> 32) * cap) >> 32 <= i:      # its probe path covers the hole: move it there
            hs[i] = x
            ix[i] = ix[j]
            i = j
        j += 1
    hs[i] = 0
