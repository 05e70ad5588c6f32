"""A SlotTable's growth under way (slots.py: "Growth never stops the world" in its theory of operation).

Past 80% load `_grow` allocates an index sized for 60% and keeps the current one as the previous index
(`_Old`); every insert then moves a few whole clusters from the previous index's end (`_migrate`), a key
looked up or claimed meanwhile is moved first (`_pull`), and the moved part's pages are given back as the
move goes (`_give_back`). `_settle` ends a growth at once (before a re-layout or an eviction). `_backshift`
(Knuth's algorithm R) empties a slot of either index without breaking a probe path. `_Growth` is a mixin of
`SlotTable` (no fields of its own: the table's are in SlotTable.__slots__); _slotsfast.c calls `_pull`,
`_grow`, `_lengthen` and `_give_back` by name and reads `_Old`'s fields at their slot offsets.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .flatmem import copy, release

if TYPE_CHECKING:
    from .slots import SlotTable

_TAIL = 64                          # spare slots after the `cap` home slots (probing never wraps)
_MIN_CAP = 64                       # the smallest index (home slots)
_STEP_MIN = 4                       # previous slots moved per insert during a growth (at least)
_CUT = 1 << 14                      # moved slots given back to the allocator at a time


class _Growth:
    """Moving a SlotTable to a larger index a few clusters per insert."""

    __slots__ = ()

    def _grow(self, now: int) -> None:
        """Start moving to an index sized for 60% load: the current one becomes the previous one,
        moved over a few entries per insert (see the module's theory of operation)."""
        if self._old is not None:           # a growth still under way (never at the sizes chosen): end it
            self._settle()
        live = min(self.used, self.max_keys)
        cap = max(_MIN_CAP, int(live / 0.6) + 1)
        self._old = _Old(self.ix, self.cap, self.used, now)
        self._alloc(cap, cap + _TAIL)
        # every previous slot is moved before half of the new index's headroom to 80% load is
        # used: the move is done long before the next growth, and both indexes coexist briefly
        self._old.step = max(_STEP_MIN, 2 * -(-len(self._old.ix) // max(1, int(0.8 * cap) - live)))
        self.rebuilds += 1

    def _pull(self, h: int) -> int:
        """Move the entry of hash `h` from the previous index into the current one: its row, or -1."""
        o = self._old
        oix, hk = o.ix, self.hk
        j = ((h >> 32) * o.cap) >> 32
        if j >= o.cursor:                   # its home is in the part already moved
            return -1
        while True:
            e = oix[j]
            if not e:
                return -1
            if hk[e - 1] == h:
                break
            j += 1
        self._put(h, e)
        _backshift(oix, hk, o.cap, j)
        o.left -= 1
        return e - 1

    def _put(self, h: int, e: int) -> None:
        """Place an entry (row + 1) absent from the current index (no sweep, no growth: sized for it)."""
        ix = self.ix
        i = ((h >> 32) * self.cap) >> 32
        while ix[i]:
            i += 1
        if i >= len(ix) - 1:                # a cluster ran into the tail
            ix = self._lengthen()
        ix[i] = e
        self.used += 1

    def _lengthen(self):
        """A longer tail (a cluster reached the last slot: rare, the index is copied)."""
        self.ix = copy("I", self.ix, len(self.ix) + _TAIL)
        return self.ix

    def _migrate(self, now: int, budget: int | None = None) -> None:
        """Move the previous index's last whole clusters (at least `budget` slots) into the current
        one, dropping (and freeing) dead rows, and cut them off the array's end. Whole clusters
        only: an entry's probe path never leaves its cluster, so the clusters left are probed as
        before; the slot before the cut is empty, so a probe still ends inside the array."""
        o = self._old
        oix, hk, rows, w, t = o.ix, self.hk, self.rows, self.width, self.touch
        horizon = now - self.keep if self.keep is not None else -1
        c = o.cursor                        # slots [c, len) are moved; slot c is empty
        stop = c - (o.step if budget is None else budget)
        ix, cap, last = self.ix, self.cap, len(self.ix) - 1
        moved = seen = 0
        # slots at and after the cursor are never read again (a probe of the previous index
        # starts before the cursor and ends at the empty slot before it), so they are not cleared
        while c > 0 and (c > stop or oix[c - 1]):
            c -= 1
            e = oix[c]
            if e:
                seen += 1
                if rows[(e - 1) * w + t] > horizon:     # _put, inlined: this runs for every entry moved
                    i = ((hk[e - 1] >> 32) * cap) >> 32
                    while ix[i]:
                        i += 1
                    if i >= last:
                        ix = self._lengthen()
                        last = len(ix) - 1
                    ix[i] = e
                    moved += 1
                else:
                    self._free_row(e - 1)
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
        release(o.ix, c + 1)
        o.released = c

    def _settle(self) -> None:
        """Finish a growth under way at once (before a re-layout or an eviction)."""
        if self._old is not None:
            self._migrate(self._old.now, len(self._old.ix))

    def settled(self) -> "SlotTable":
        """This table with any growth under way finished."""
        self._settle()
        return self


class _Old:
    """The previous index of a growth under way and how far the move has got."""

    __slots__ = ("ix", "cap", "left", "cursor", "step", "now", "released")

    def __init__(self, ix, cap, left, now):
        self.ix, self.cap, self.left, self.now = ix, cap, left, now
        self.cursor, self.step = len(ix) - 1, _STEP_MIN          # the last slot is always empty
        self.released = self.cursor


def _backshift(ix, hk, cap, i) -> None:
    """Empty slot i of a linear-probing index, moving later entries of its cluster back so no
    probe path breaks (Knuth's algorithm R)."""
    j = i + 1
    while True:
        e = ix[j]
        if not e:
            break
        if ((hk[e - 1] >> 32) * cap) >> 32 <= i:      # its probe path covers the hole: move it there
            ix[i] = e
            i = j
        j += 1
    ix[i] = 0
