"""A flat hash table of fixed-width uint32 rows: the storage behind every per-key state.

Theory of operation
-------------------
Per-key state (a counter's recent timestamps, a sender's recipient history) is a row of
`width` uint32 words. A table keeps two flat `array`s: `h`, the 64-bit hash of each row's
key (0 = empty slot), and `rows`, the rows back to back. Keys themselves are not kept:
two keys with the same 64-bit hash share a row. With n live keys in a table the chance
that a new key lands on an existing one is n / 2^64 (2M keys: 1.1e-13 per new key).
The hash is stable across processes and machines (`stable_hash`: ints as they are, strings
and bytes by an 8-byte BLAKE2b digest, tuples folded element by element), never Python's
per-process salted `hash()`: a snapshot or journal written by one process, or a shared store
(issue 13), must find the same rows in another. It is multiplied by an odd constant so ints
spread over all 64 bits.

Slots are found by linear probing from `home(h) = ((h >> 32) * cap) >> 32`, which is
monotone in h. Probing never wraps: a tail of spare slots follows the `cap` home slots,
and the very last slot is always empty, so every probe ends at an empty slot or the key.

Rows expire: word `touch` of a row holds its last-touch second, and a row untouched for
`keep` seconds is dead. A dead row on a key's probe path is reused for a new key; a
sweeper examines a few slots after every insert and removes dead rows by backward shift
(Knuth's algorithm R for linear probing), so dead rows never pile up. Past 80% of `cap`
occupied the table is rebuilt with numpy in one pass (dead rows dropped, live rows sorted
by hash, which is sorted by home slot, and placed with a running maximum) at a size that
puts it at 60% load: growth is geometric (x1.33), so rebuilds cost O(1) amortised per
insert, and memory per live key stays within width*4+8 bytes / 0.6..0.8. Beyond
`max_keys` live rows a rebuild keeps the most recently touched ones (an evicted key only
loses its history: it can under-count, never over-count).

Everything is flat: no per-key Python objects, nothing for the cyclic GC to walk, and
`memory_bytes()` is exact.
"""
from __future__ import annotations

from array import array
from hashlib import blake2b as _blake

import numpy as np

M64 = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15          # odd: multiplying by it is a bijection on 64-bit values
_TAIL = 64
_MIN_CAP = 64
_SWEEP = 2                          # slots examined by the sweeper before each insert (a full pass per cap/2 inserts)


_STR_HASHES: dict = {}             # sender IDs and owners recur: their digests are cached
_STR_CACHE = 1 << 16


def stable_hash(x) -> int:
    """A 64-bit hash of an int, str, bytes, None or tuple of those that is the same in every
    process (Python's `hash()` of a str is salted per process)."""
    t = type(x)
    if t is int or t is bool:
        return x & M64
    if t is str:
        h = _STR_HASHES.get(x)
        if h is None:
            if len(_STR_HASHES) >= _STR_CACHE:      # bounded; cleared whole: O(1) amortised
                _STR_HASHES.clear()
            h = _STR_HASHES[x] = int.from_bytes(
                _blake(x.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        return h
    if t is tuple:
        # the tuple hash of ints is not salted (only str/bytes hashes are): deterministic for a
        # given CPython >= 3.8, so strings are replaced by their digests and the rest is hash()
        return hash(tuple([e if type(e) is int else stable_hash(e) for e in x])) & M64
    if x is None:
        return 0x5A5A5A5A5A5A5A5A
    if t is bytes:
        return int.from_bytes(_blake(x, digest_size=8, person=b"b").digest(), "little")
    if t is float and x.is_integer():
        return int(x) & M64
    raise TypeError(f"no stable hash for {t.__name__}")


def key_hash(key) -> int:
    """64-bit hash of a state key (never 0, which marks an empty slot)."""
    return (stable_hash(key) * _MIX) & M64 or 1


def value_fp(value) -> int:
    """32-bit fingerprint of a counted value (never 0, which marks an empty entry)."""
    return ((stable_hash(value) * _MIX) >> 32) & 0xFFFFFFFF or 1


class SlotTable:
    __slots__ = ("width", "touch", "keep", "max_keys", "cap", "h", "rows", "used", "cursor", "_zero",
                 "rebuilds")

    def __init__(self, width: int, touch: int, keep: float | None, max_keys: int = 2_000_000):
        self.width = width              # uint32 words per row
        self.touch = touch              # index of the last-touch second within a row
        self.keep = int(keep) if keep is not None else None   # seconds a row lives after its last touch
        self.max_keys = max(1, max_keys)
        self._zero = array("I", bytes(4 * width))
        self.rebuilds = 0
        self._alloc(_MIN_CAP, _MIN_CAP + _TAIL)

    def _alloc(self, cap: int, n: int) -> None:
        self.cap = cap
        self.h = array("Q", bytes(8 * n))
        self.rows = array("I", bytes(4 * n * self.width))
        self.used = 0
        self.cursor = 0

    def __len__(self) -> int:
        """Occupied slots (live rows, plus dead ones the sweeper has not reached yet)."""
        return self.used

    def memory_bytes(self) -> int:
        return len(self.h) * 8 + len(self.rows) * 4

    def find(self, h: int) -> int:
        """Row index of hash `h`, or -1."""
        hs = self.h
        i = ((h >> 32) * self.cap) >> 32
        while True:
            x = hs[i]
            if x == h:
                return i
            if not x:
                return -1
            i += 1

    def slot(self, h: int, now: int) -> int:
        """Row index of hash `h`, claimed (all words 0) if absent. May move rows or rebuild."""
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
        if self.keep is not None and self._sweep(now):     # before claiming: a sweep moves rows
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
        if i >= len(hs) - 1 or self.used >= 0.8 * self.cap:
            self._rebuild(now)
            return self.slot(h, now)
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
        hs, rows, w, cap = self.h, self.rows, self.width, self.cap
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
        rows[i * w:(i + 1) * w] = self._zero
        self.used -= 1

    def _rebuild(self, now: int) -> None:
        w = self.width
        H = np.frombuffer(self.h, dtype=np.uint64)
        R = np.frombuffer(self.rows, dtype=np.uint32).reshape(len(H), w)
        live = H != 0
        if self.keep is not None:
            live &= R[:, self.touch].astype(np.int64) > now - self.keep
        idx = np.flatnonzero(live)
        if len(idx) > self.max_keys:            # over the bound: keep the most recently touched
            newest = np.argpartition(R[idx, self.touch], len(idx) - self.max_keys)[len(idx) - self.max_keys:]
            idx = idx[newest]
        idx = idx[np.argsort(H[idx], kind="stable")]
        k = len(idx)
        cap = max(_MIN_CAP, int(k / 0.6) + 1)
        hs = H[idx]
        home = ((hs >> np.uint64(32)) * np.uint64(cap)) >> np.uint64(32)
        ar = np.arange(k, dtype=np.int64)
        pos = np.maximum.accumulate(home.astype(np.int64) - ar) + ar if k else ar
        n = max(cap, int(pos[-1]) + 1 if k else 0) + _TAIL
        newH = np.zeros(n, np.uint64)
        newR = np.zeros((n, w), np.uint32)
        newH[pos] = hs
        newR[pos] = R[idx]
        del H, R
        self.cap, self.used, self.cursor = cap, k, 0
        self.h = array("Q")
        self.h.frombytes(memoryview(newH).cast("B"))      # one copy (tobytes() would make two)
        self.rows = array("I")
        self.rows.frombytes(memoryview(newR).cast("B"))
        self.rebuilds += 1
