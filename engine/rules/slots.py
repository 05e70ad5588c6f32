"""A flat hash table of fixed-width uint32 rows: the storage behind every per-key state.

Theory of operation
-------------------
Per-key state (a counter's recent timestamps, a sender's recipient history) is a row of
`width` uint32 words. The rows are dense: `rows` holds them back to back and `hk` holds each
row's 64-bit key hash; a row is placed once when its key arrives and never moves while the key
lives. The index `ix` is an open-addressing array of slots, each the number of a row + 1 (0 =
empty). Keys themselves are not kept: two keys with the same 64-bit hash share a row. With n
live keys in a table the chance that a new key lands on an existing one is n / 2^64 (2M keys:
1.1e-13 per new key). The hash is stable across processes and machines (keyhash.py), never
Python's per-process salted `hash()`: a snapshot or journal written by one process must find
the same rows in another.

Why an index of row numbers: the index's spare capacity (its load runs between 60% and 80%)
then costs 4 bytes a slot instead of a whole row, so a key costs width*4 + 8 + 4/load bytes
(a recipient-history row 92 + 8 + 5..7 B; rows kept in the slots with their hash took
(92 + 8) / load = 125..167 B, and twice that while a growth held two copies). A probe reads
the hash of each row it passes (`hk[ix[i] - 1]`): one more memory access per probe step,
paid for by the memory. A freed row (its key expired or was evicted) goes on a free list
threaded through the free rows' word 0 and is the next one handed out; `top` rows have ever
been used, and only their pages are ever touched: `rows` and `hk` are anonymous mappings
reserved for `max_keys` rows (MAP_NORESERVE: the kernel hands out zero pages on first touch,
so the reservation costs address space only; past _RESERVE bytes they are grown by copying).

Slots are found by linear probing from `home(h) = ((h >> 32) * cap) >> 32`, which is
monotone in h. Probing never wraps: a tail of spare slots follows the `cap` home slots,
and the very last slot is always empty, so every probe ends at an empty slot or the key.

Rows expire: word `touch` of a row holds its last-touch second, and a row untouched for
`keep` seconds is dead. A dead row on a key's probe path is reused for a new key; a
sweeper examines a few slots after every insert and removes dead rows by backward shift
(Knuth's algorithm R for linear probing), so dead rows never pile up.

Growth never stops the world. Past 80% of `cap` occupied, a new index sized for 60% load is
allocated (growth x1.33, so moves cost O(1) amortised per insert) and the current one becomes
the "previous" index. Every insert then moves a few whole clusters of entries from the end of
the previous index (entries of dead rows dropped, their rows freed; enough per insert that the
move ends within half of the headroom to the next growth). Rows stay where they are: a move
is 4 bytes a key whatever the row's width. The moves are spread evenly on purpose: batching
them every 32 inserts raised judge()'s p99 CPU from ~140 to ~210 µs, and a batch stalls every
message queued behind it. A key looked up or claimed while still in the previous index is
moved first. Moving whole clusters keeps the rest probe-correct (an entry's probe path never
leaves its cluster), and the moved tail's pages are given back as it goes. Measured on the
realistic mix (200k messages, state growing): the worst judge() CPU 18-64 ms -> 4-11 ms when
growth became incremental; the one-pass numpy rebuild it replaced took 56-110 ms at 1M rows.
At `max_keys` rows a new key takes over the least recently touched row among those on its
probe path, or among the next few the sweeper reaches (a sampled LRU: an evicted key only
loses its history, so it can under-count, never over-count).

Everything is flat: no per-key Python objects, nothing for the cyclic GC to walk, and
`memory_bytes()` is exact: the index (during a growth the previous index's unmoved part too)
and the `top` rows ever used with their hashes.

The hot paths (find, slot and the row operations of counters.py and history.py) have a
compiled twin in _slotsfast.c, used when it was built (TELFILTER_TABLES_PURE=1 turns it off);
the code here is the reference and the fallback, and tests/test_slots_fast.py runs both on the
same operation sequences and compares every answer and the dumps byte for byte. On the
pipeline's own table calls (benchmarks/tables_bench.py, 5.45 calls a message) the compiled
paths take 3.5-4 µs a message where these take 18-20 (the rows-in-slots tables before them:
16-19 µs in Python).
"""
from __future__ import annotations

import os
from array import array
from contextlib import contextmanager

from .flatmem import copy, reserve_rows, room, zeros
from .keyhash import M64, key_hash, stable_hash, value_fp     # noqa: F401 (the tables' key hashes, re-exported)
from .slotgrowth import _MIN_CAP, _TAIL, _backshift, _Growth

_SWEEP = 2                          # slots examined by the sweeper before each insert (a full pass per cap/2 inserts)
_EVICT = 8                          # rows sampled for eviction at max_keys when a key's home slot is empty


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


class SlotTable(_Growth):
    __slots__ = ("width", "touch", "keep", "max_keys", "cap", "ix", "hk", "rows", "used", "cursor", "_zero",
                 "rebuilds", "_old", "top", "free", "evicted")

    def __init__(self, width: int, touch: int, keep: float | None, max_keys: int = 2_000_000):
        self.width = width              # uint32 words per row
        self.touch = touch              # index of the last-touch second within a row
        self.keep = int(keep) if keep is not None else None   # seconds a row lives after its last touch
        self.max_keys = max(1, max_keys)
        self._zero = array("I", bytes(4 * width))
        self.rebuilds = 0
        self.evicted = 0                # live keys taken over at max_keys (telfilter_state_evicted_keys)
        self._old = None                # a growth under way: _Old (the previous index), else None
        self.top = 0                    # rows ever handed out
        self.free = 0                   # the free list's first row + 1 (0: empty)
        n = reserve_rows(width, self.max_keys)
        self.rows = room("I", b"", n * width)
        self.hk = room("Q", b"", n)     # each row's key hash
        self._alloc(_MIN_CAP, _MIN_CAP + _TAIL)

    def _alloc(self, cap: int, n: int) -> None:
        self.cap = cap
        self.ix = zeros("I", n)         # slot -> row + 1 (0: empty)
        self.used = 0
        self.cursor = 0

    def __len__(self) -> int:
        """Occupied slots (live rows, plus dead ones the sweeper has not reached yet)."""
        return self.used + (self._old.left if self._old is not None else 0)

    def memory_bytes(self) -> int:
        o = self._old
        return len(self.ix) * 4 + self.top * (4 * self.width + 8) + ((o.cursor + 1) * 4 if o is not None else 0)

    # ------------------------------------------------------------ rows
    def _new_row(self, h: int) -> int:
        """A zeroed row for hash h: the last one freed, else the next never used."""
        f = self.free
        w = self.width
        if f:
            r = f - 1
            self.free = self.rows[r * w]
            self.rows[r * w:(r + 1) * w] = self._zero
        else:
            r = self.top
            if r >= len(self.hk) or (r + 1) * w > len(self.rows):
                self._more_rows()
            self.top = r + 1
        self.hk[r] = h
        return r

    def _free_row(self, r: int) -> None:
        self.rows[r * self.width] = self.free
        self.free = r + 1

    def _more_rows(self) -> None:
        """Larger row arrays (only past the _RESERVE bytes reserved up front: the rows are copied)."""
        # (a row array with room for no row yet, as the fallback of flatmem.room gives a row wider than its
        # 1,024 spare words, still grows: by at least 16 rows)
        n = max(16, self.top + 1, 2 * min(len(self.hk), len(self.rows) // self.width))
        self.rows = copy("I", self.rows, n * self.width)
        self.hk = copy("Q", self.hk, n)

    # ------------------------------------------------------------ lookups
    def find(self, h: int) -> int:
        """Row of hash `h`, or -1. During a growth a key still in the previous index is moved
        into the current one first."""
        if _fast is not None:
            return _fast.find(self, h)
        ix, hk = self.ix, self.hk
        i = ((h >> 32) * self.cap) >> 32
        while True:
            e = ix[i]
            if not e:
                return -1 if self._old is None else self._pull(h)
            if hk[e - 1] == h:
                return e - 1
            i += 1

    def slot(self, h: int, now: int) -> int:
        """Row of hash `h`, claimed (all words 0) if absent. May move index entries, never rows."""
        if _fast is not None:
            return _fast.slot(self, h, now)
        return self._slot_py(h, now)

    def _slot_py(self, h: int, now: int) -> int:
        ix, hk, rows, w, t = self.ix, self.hk, self.rows, self.width, self.touch
        horizon = now - self.keep if self.keep is not None else -1
        # one probe finds the key, or else the first dead row on its path and the empty slot
        # ending it: the place a new key goes unless the sweep below moves entries
        i = ((h >> 32) * self.cap) >> 32
        dead = -1
        while True:
            e = ix[i]
            if not e:
                break
            if hk[e - 1] == h:
                return e - 1
            if dead < 0 and rows[(e - 1) * w + t] <= horizon:
                dead = i
            i += 1
        if self._old is not None:
            r = self._pull(h)
            self._migrate(now)              # a few more of the previous entries (never moves ours)
            if r >= 0:
                return r
            ix = self.ix                    # (a longer tail is a new array)
            if dead < 0 and ix[i]:          # the migration filled the empty slot the probe ended at
                return self.slot(h, now)
        elif self.keep is not None and self._sweep(now):     # before claiming: a sweep moves entries
            i = ((h >> 32) * self.cap) >> 32
            dead = -1
            while ix[i]:
                if rows[(ix[i] - 1) * w + t] <= horizon:
                    dead = i
                    break
                i += 1
        if dead >= 0:                       # a dead row on the probe path: take it over
            r = ix[dead] - 1
            hk[r] = h
            rows[r * w:(r + 1) * w] = self._zero
            return r
        if len(self) >= self.max_keys:      # at the bound: take over the least recently touched row
            return self._evict(h, now)
        if self.used >= 0.8 * self.cap:
            self._grow(now)
            return self.slot(h, now)
        if i >= len(ix) - 1:
            ix = self._lengthen()
        r = self._new_row(h)
        ix[i] = r + 1
        self.used += 1
        return r

    # ------------------------------------------------------------ upkeep
    def _sweep(self, now: int) -> bool:
        """Remove dead rows among the next few slots; True when any was removed (entries moved)."""
        ix, rows, w, t = self.ix, self.rows, self.width, self.touch
        horizon = now - self.keep
        n = len(ix) - 1
        c = self.cursor
        moved = False
        for _ in range(_SWEEP):
            e = ix[c]
            if e and rows[(e - 1) * w + t] <= horizon:
                self.delete(c)
                moved = True
            c = c + 1 if c + 1 < n else 0
        self.cursor = c
        return moved

    def discard(self, h: int) -> None:
        """Remove the key of hash `h` (found in the current index: find() moved it there)."""
        ix, hk = self.ix, self.hk
        i = ((h >> 32) * self.cap) >> 32
        while ix[i]:
            if hk[ix[i] - 1] == h:
                self.delete(i)
                return
            i += 1

    def delete(self, i: int) -> None:
        """Empty slot i and free its row, moving later entries of its cluster back so no probe
        path breaks."""
        self._free_row(self.ix[i] - 1)
        _backshift(self.ix, self.hk, self.cap, i)
        self.used -= 1

    def _evict(self, h: int, now: int) -> int:
        """A new key at `max_keys` rows: it takes over the least recently touched row among
        those on its probe path and the next _EVICT slots of the sweeper (a sampled LRU: an
        evicted key only loses its history, so it can under-count, never over-count)."""
        self.evicted += 1
        ix, rows, w, t = self.ix, self.rows, self.width, self.touch
        best, best_t = -1, None
        i = ((h >> 32) * self.cap) >> 32
        while ix[i]:
            x = rows[(ix[i] - 1) * w + t]
            if best_t is None or x < best_t:
                best, best_t = i, x
            i += 1
        if best < 0:                        # an empty home slot: free the oldest row the sweeper sees
            n, c, seen = len(ix) - 1, self.cursor, 0
            for _ in range(n):
                if ix[c]:
                    seen += 1
                    x = rows[(ix[c] - 1) * w + t]
                    if best_t is None or x < best_t:
                        best, best_t = c, x
                c = c + 1 if c + 1 < n else 0
                if seen >= _EVICT:
                    break
            self.cursor = c
            if best < 0:                    # every row is still in the previous index
                self._settle()
                return self._evict(h, now)
            self.delete(best)
            r = self._new_row(h)
            self._put(h, r + 1)
            return r
        r = ix[best] - 1
        self.hk[r] = h
        rows[r * w:(r + 1) * w] = self._zero
        return r

    # ------------------------------------------------------------ snapshot encoding (slotdump.py)
    def dump(self, views: bool = False) -> list:
        """The table as plain values (state/embedded.py writes them with msgpack), growth under way
        included: a snapshot never has to finish one on the event loop. `views`: the arrays as views
        of the table's own memory, not copies (for a process that no longer changes the table)."""
        from .slotdump import dump
        return dump(self, views)

    @classmethod
    def load(cls, v: list) -> "SlotTable":
        """A table from `dump()` (older layouts too; see slotdump.py)."""
        from .slotdump import load
        return load(cls, v)
