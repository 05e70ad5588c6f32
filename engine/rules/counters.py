"""Sliding-window counters behind a small interface (in-process now; a shared store later).

Theory of operation: a rule's counter lives in its own namespace (the rule symbol plus the
counter spec), one `SlotTable` per namespace (see slots.py: flat uint32 rows keyed by a
64-bit key hash, expired by last touch, bounded). A "more than N within W" test only needs
to know whether N messages (or N+1 distinct values) were seen within the window, so a row
never holds more than that (more for one window after a reload lowered N: rows are widened at
once for a higher limit and narrowed a window after a lower one, so a limit lowered and raised
again has forgotten nothing: MemoryCounters._relimit):

  count mode     the last N timestamps (whole seconds), oldest first, 0 = none yet. The
                 count within the window is a bisect on the row: O(log N), no scan.
  distinct mode  the last N+1 distinct value fingerprints (32-bit) with the second each
                 was last seen, least recently seen first. The N+1 most recently seen
                 values are exactly the ones a window can hold up to N+1 of, so
                 min(distinct values within the window, N+1) is exact. A key seen with
                 one value only (most template keys: one sender) has a 2-word row in a
                 side table and gets a full row with its second value.

Timestamps are whole seconds and never run backwards within a key (a message older than
the key's last one counts at the last one's second). Counters are read while judging
(`count`, `distinct`) and written only after the verdict (`add`, `add_distinct`: only
messages let through count toward a cap), so checks stay pure and a shared store can
batch the reads and the writes of one message. `remove` takes one count back (an ad the SMSC
refused after it was let through: Pipeline.refund). A counter counted at delivery (`at = "delivery"`,
count_at / add_at: counters_at.py) keeps its stamps in time order, some ahead of the clock.

Bytes per key (`memory_bytes() / memory_keys()`) are the row plus its 8-byte hash plus a 4-byte
index slot over the index load (0.6..0.8; slots.py): 4*N + 8 + 4/load for a count row (2*N + 16
for a 16-bit one, see _layout), 8*(N+1) + 8 for a distinct row (8 + 8 while the key has one
value), +5..7 B for the index. Measured: an advertiser-recipient cap of 3 a day 26-28 B a key; a
sender's volume cap of 30 an hour 81-88 B.
"""
from __future__ import annotations

from array import array
from bisect import bisect_right
from typing import Protocol

import numpy as np

from .history import CallDurations, RecipientHistory  # noqa: F401 (also imported from here)
from . import slots as _slots
from . import flatmem
from .counters_at import AtDelivery, live_most
from .slots import SlotTable, key_hash, value_fp


class CounterStore(Protocol):
    def count(self, ns: str, key, now: float, window: float | None, limit: int) -> int: ...
    def add(self, ns: str, key, now: float, window: float | None, limit: int) -> None: ...
    def distinct(self, ns: str, key, value, now: float, window: float | None, limit: int) -> int: ...
    def add_distinct(self, ns: str, key, value, now: float, window: float | None, limit: int) -> None: ...
    def remove(self, ns: str, key, now: float, window: float | None, limit: int) -> bool: ...
    def count_at(self, ns: str, key, when: float, now: float, window: float | None, limit: int,
                 without: int = 0) -> int: ...
    def add_at(self, ns: str, key, when: float, now: float, window: float | None, limit: int,
               without: int = 0) -> None: ...
    def memory_bytes(self) -> int: ...
    def memory_keys(self) -> int: ...


class _Space:
    __slots__ = ("table", "limit", "distinct", "width", "first", "short", "lowered", "at")

    def __init__(self, table: SlotTable, limit: int, distinct: bool, first: SlotTable | None, short: bool):
        self.table, self.limit, self.distinct, self.width = table, limit, distinct, table.width
        self.lowered = 0                # the second a lower limit was first asked for (MemoryCounters._relimit)
        self.short = short          # count row of 16-bit stamps (see _layout)
        # distinct mode: a key seen from one value only (most template keys: one sender) has a
        # two-word row [value, second] here and moves to `table` with its second value
        self.first = first
        self.at = not distinct and self.width == 2 * limit       # a count at delivery (_layout)


def _layout(limit: int, distinct: bool, window, at: bool = False) -> tuple[int, int, bool]:
    """(row width in uint32 words, index of the last-touch word, short count row?).

    A count row for a window under 18 h with more than 4 stamps is "short": word 0 the last
    touch, word 1 a base second, then the stamps as 16-bit offsets from the base (+1; 0 =
    none yet), two to a word. A stamp older than the window is never needed, so when an
    offset would pass 16 bits the row is rebased to (now - window) and older stamps are
    dropped: a volume cap of 30 an hour is 76 B a row instead of 128.

    A count at delivery (`at`, MemoryCounters.count_at) has room for 2 * limit stamps and is never short
    (its stamps may lie ahead of the clock, past a 16-bit offset).
    """
    if distinct:
        w = 2 * (limit + 1)
        return w, w - 1, False
    if at:
        return 2 * limit, 2 * limit - 1, False
    if window is not None and window < _SHORT_MAX and limit > 4:
        return 2 + (limit + 1) // 2, 0, True
    return limit, limit - 1, False


_SHORT_MAX = 0xFFFF - 1     # largest offset from the base in a short row


class MemoryCounters(AtDelivery):
    """Bounded in-process counters. `max_keys` caps each namespace (least recently touched beyond it)."""

    def __init__(self, max_keys: int = 2_000_000):
        self.max_keys = max_keys
        self.spaces: dict[str, _Space] = {}

    def _relimit(self, ns: str, now, window, limit: int, distinct: bool, at: bool = False) -> _Space:
        """The space of `ns` when `limit` is not its rows' (a reload changed it). A higher limit lays the rows out
        again at once, wider (every stamp kept). A lower one keeps them as they are for one window (every read
        and write goes by the rows' own limit, `sp.limit`, so a cap taken 3 -> 2 -> 3 forgets no message it let
        through), then narrows them: by then a drop rule's row holds no more than the lower limit within the
        window, so nothing that counts is dropped, and a mistyped limit does not keep its memory for ever."""
        sp = self.spaces.get(ns)
        if sp is None or sp.distinct != distinct or sp.limit < limit:
            return self._space(ns, window, limit, distinct, at=at)
        now_s = int(now)
        if not sp.lowered:
            sp.lowered = now_s or 1
        elif window is not None and now_s - sp.lowered >= window:
            if sp.at and at and live_most(sp, now_s - window) > 2 * limit:
                # counted at delivery, a row may hold stamps ahead of the clock past the lower limit's room:
                # narrowed only once every row's live stamps fit (tried again a window later)
                sp.lowered = now_s
                return sp
            return self._space(ns, window, limit, distinct, narrow=True, at=at)
        return sp

    def _space(self, ns: str, window, limit: int, distinct: bool, narrow: bool = False, at: bool = False) -> _Space:
        sp = self.spaces.get(ns)
        if sp is None or sp.distinct != distinct or sp.limit < limit or (narrow and sp.limit > limit) \
                or (at and not sp.at):
            w, touch, short = _layout(limit, distinct, window, at)
            t = SlotTable(w, touch, window, self.max_keys)
            first = None
            if distinct:
                first = sp.first if sp is not None and sp.distinct else SlotTable(2, 1, window, self.max_keys)
            if sp is not None and sp.distinct == distinct:
                _carry_over(sp, t, limit, short)     # raised: every stamp fits; narrowed: the newest `limit`
            sp = self.spaces[ns] = _Space(t, limit, distinct, first, short)
        return sp

    # ------------------------------------------------------------ count mode
    def count(self, ns, key, now, window, limit) -> int:
        """Messages within the window for `key` (at most the rows' limit are kept: `limit` or more)."""
        sp = self.spaces.get(ns)
        if sp is None or sp.distinct:
            return 0
        if sp.limit != limit:            # a reload changed the limit (_relimit)
            sp = self._relimit(ns, now, window, limit, False)
        elif sp.lowered:
            sp.lowered = 0               # its own limit again: a later lowering waits its own window
        limit = sp.limit
        t = sp.table
        if sp.at:                        # rows counted at delivery (the rule was changed back): up to now
            i = t.find(key_hash(key))
            if i < 0:
                return 0
            hz, now_s = int(now) - window if window is not None else 0, int(now)
            n = 0                        # (a loop, not a generator: `hz` and `now_s` no cells at every count)
            for x in t.rows[i * sp.width:(i + 1) * sp.width]:
                if hz < x <= now_s:
                    n += 1
            return n
        f = _slots._fast
        if f is not None:
            return f.count(t, key, now, window, limit, sp.short)
        i = t.find(key_hash(key))
        if i < 0:
            return 0
        w = sp.width
        b = i * w
        hz = int(now) - window if window is not None else 0
        if sp.short:
            lo = 2 * b + 4
            with memoryview(t.rows).cast("B").cast("H") as stamps:
                return lo + limit - bisect_right(stamps, max(0, hz - t.rows[b + 1] + 1), lo, lo + limit)
        return b + w - bisect_right(t.rows, hz, b, b + w)

    def add(self, ns, key, now, window, limit) -> None:
        sp = self.spaces.get(ns)
        if sp is None or sp.limit != limit or sp.distinct:     # _relimit's test, without its call
            sp = self._relimit(ns, now, window, limit, False)
        elif sp.lowered:
            sp.lowered = 0
        if sp.at:                        # rows counted at delivery (the rule was changed back): in time order
            self.add_at(ns, key, now, now, window, limit)
            return
        limit = sp.limit
        t = sp.table
        f = _slots._fast
        if f is not None:
            f.add(t, key, now, window, limit, sp.short)
            return
        now_s = int(now)
        i = t.slot(key_hash(key), now_s)
        rows, w = t.rows, sp.width
        b = i * w
        if sp.short:
            _add_short(rows, b, limit, now_s, int(window))
            return
        e = b + w - 1
        last = rows[e]
        if w > 1:
            rows[b:e] = rows[b + 1:e + 1]
        rows[e] = now_s if now_s > last else last

    def remove(self, ns, key, now, window, limit) -> bool:
        """Take back one message counted at second `now` for `key` (an ad the SMSC refused after it was
        let through: Pipeline.refund): one stamp of exactly that second goes. A stamp never moves and is
        never earlier than its message's second, so that is the message's own stamp, or one of the same
        value (the same count either way); when none is there (the message's stamp was pushed up to a
        later one's second, pushed out of its row, evicted, or the rows were narrowed: `sp.limit` below `limit`,
        a window after a lowered limit, when the stamp is out of the window anyway) nothing goes (False): never
        another message's count. A stamp pushed out of its row was
        out of the window already (a drop rule's row never holds more than its limit within the window), and
        so are the stamps of its value. Count mode only; refunds are rare, so this is the reference code
        alone, on the same rows the compiled twin reads."""
        sp = self.spaces.get(ns)
        if sp is None or sp.distinct or sp.limit < limit:
            return False
        t = sp.table
        i = t.find(key_hash(key))
        if i < 0:
            return False
        now_s, n, rows = int(now), sp.limit, t.rows
        if sp.short:
            b = i * sp.width
            base, lo = rows[b + 1], 2 * b + 4
            with memoryview(rows).cast("B").cast("H") as st:
                for j in range(lo, lo + n):
                    if st[j] and base + st[j] - 1 == now_s:
                        st[lo + 1:j + 1] = st[lo:j]
                        st[lo] = 0
                        return True
            return False
        b = i * sp.width                        # stamps oldest first, 0 = none; the last is the touch word
        for j in range(b, b + sp.width):        # (a count at delivery has room for 2 * limit: _layout)
            if rows[j] == now_s and now_s:
                rows[b + 1:j + 1] = rows[b:j]
                rows[b] = 0
                return True
        return False

    # ------------------------------------------------------------ distinct mode
    def distinct(self, ns, key, value, now, window, limit) -> int:
        """Distinct values within the window for `key`, including `value`; exact up to limit+1."""
        sp = self.spaces.get(ns)
        if sp is None or not sp.distinct:
            return 1
        if sp.limit != limit:            # as in count()
            sp = self._relimit(ns, now, window, limit, True)
        elif sp.lowered:
            sp.lowered = 0
        f = _slots._fast
        if f is not None:
            return f.distinct(sp.table, sp.first, key, value, now, window, sp.limit + 1)
        h = key_hash(key)
        hz = int(now) - window if window is not None else 0
        t = sp.table
        i = t.find(h)
        if i < 0:
            f = sp.first.find(h)
            if f < 0:
                return 1
            live = sp.first.rows[2 * f + 1] > hz
            return 2 if live and sp.first.rows[2 * f] != value_fp(value) else 1
        k = sp.limit + 1
        b = i * 2 * k
        first = bisect_right(t.rows, hz, b + k, b + 2 * k) - b - k       # entries seen within the window
        return k - first + (value_fp(value) not in t.rows[b + first:b + k])

    def add_distinct(self, ns, key, value, now, window, limit) -> None:
        sp = self.spaces.get(ns)
        if sp is None or sp.limit != limit or not sp.distinct:
            sp = self._relimit(ns, now, window, limit, True)
        elif sp.lowered:
            sp.lowered = 0
        f = _slots._fast
        if f is not None:
            f.add_distinct(sp.table, sp.first, key, value, now, window, sp.limit + 1)
            return
        h = key_hash(key)
        now_s = int(now)
        v = value_fp(value)
        t, k = sp.table, sp.limit + 1
        i = t.find(h)
        if i < 0:
            F = sp.first
            f = F.find(h)
            if f < 0 or F.rows[2 * f] == v or F.rows[2 * f + 1] <= (now_s - window if window is not None else 0):
                if f < 0:
                    f = F.slot(h, now_s)
                last = F.rows[2 * f + 1] if F.rows[2 * f] == v else 0
                F.rows[2 * f] = v
                F.rows[2 * f + 1] = now_s if now_s > last else last
                return
            # a second value: the key moves to a full row
            old_v, old_t = F.rows[2 * f], F.rows[2 * f + 1]
            F.discard(h)
            i = t.slot(h, now_s)
            b = i * 2 * k
            t.rows[b + k - 1], t.rows[b + 2 * k - 1] = old_v, old_t
        b = i * 2 * k
        row = t.rows[b:b + 2 * k].tolist()
        vs, ts = row[:k], row[k:]
        j = vs.index(v) if v in vs else 0      # seen again: move to the end; new: drop the least recent
        del vs[j], ts[j]
        vs.append(v)
        ts.append(now_s if now_s > ts[-1] else ts[-1])
        t.rows[b:b + 2 * k] = array("I", vs + ts)

    # ------------------------------------------------------------ size
    def memory_keys(self) -> int:
        return sum(len(sp.table) + (len(sp.first) if sp.first else 0) for sp in self.spaces.values())

    def memory_bytes(self) -> int:
        return sum(sp.table.memory_bytes() + (sp.first.memory_bytes() if sp.first else 0)
                   for sp in self.spaces.values())

    def evicted(self) -> dict:
        """{namespace: live keys taken over at max_keys}: an evicted key's count starts again, so a
        cap can let more through; a non-zero figure says max_keys is too small for the traffic."""
        return {ns: sp.table.evicted + (sp.first.evicted if sp.first else 0) for ns, sp in self.spaces.items()}


def _carry_over(old: _Space, new: SlotTable, limit: int, short: bool) -> None:
    """Copy old rows into a table of another row width, keeping the most recent entries (the
    live rows are renumbered densely, in slot order)."""
    o = old.table.settled()                    # a growth under way finished first: one index
    IX = np.frombuffer(o.ix, np.uint32)
    occupied = IX != 0
    rownums = IX[occupied].astype(np.int64) - 1
    R = np.frombuffer(o.rows, np.uint32, o.top * o.width).reshape(o.top, o.width)[rownums]
    HK = np.frombuffer(o.hk, np.uint64, o.top)[rownums]
    N = np.zeros((len(R), new.width), np.uint32)
    if old.distinct:
        ko, kn = old.limit + 1, limit + 1
        m = min(ko, kn)
        N[:, kn - m:kn] = R[:, ko - m:ko]
        N[:, 2 * kn - m:] = R[:, 2 * ko - m:]
    else:
        if old.short:                           # absolute seconds, 0 = none
            off = R.view(np.uint16)[:, 4:4 + old.limit].astype(np.int64)
            S = np.where(off > 0, R[:, 1:2].astype(np.int64) + off - 1, 0)
        else:                                   # (a count at delivery has room for 2 * limit)
            S = R[:, :old.width].astype(np.int64)
        room = new.width if not short else limit
        m = min(S.shape[1], room)
        S = S[:, S.shape[1] - m:]
        if not short:                           # the new rows are plain stamps (a short row of 5 is 5 wide too)
            N[:, room - m:] = S
        else:
            last = S[:, -1]
            base = np.maximum(last - new.keep, 0)
            N[:, 0], N[:, 1] = last, base
            N.view(np.uint16)[:, 4 + limit - m:4 + limit] = np.where((S > 0) & (S >= base[:, None]),
                                                                     S - base[:, None] + 1, 0)
    del R
    if not len(N):                              # no full rows yet (a distinct space of one-value keys): none to copy
        return
    NX = np.zeros(len(IX), np.uint32)
    NX[occupied] = np.arange(1, len(N) + 1, dtype=np.uint32)
    n = flatmem.reserve_rows(new.width, new.max_keys, len(N))
    new.cap, new.used, new.cursor = o.cap, o.used, 0
    new.ix = flatmem.copy("I", NX)
    new.rows = flatmem.room("I", N, n * new.width)
    new.hk = flatmem.room("Q", HK, n)
    new.top, new.free = len(N), 0


def _add_short(rows: array, b: int, limit: int, now: int, window: int) -> None:
    """Append second `now` to the short count row at word b (see _layout)."""
    last = rows[b]
    if last == 0:                               # a new row
        rows[b + 1] = now
    if now < last:                              # time never runs backwards within a key
        now = last
    base = rows[b + 1]
    lo = 2 * b + 4
    with memoryview(rows).cast("B").cast("H") as st:
        if now - base >= _SHORT_MAX:            # rebase: stamps older than the window go
            nb = now - window
            for j in range(lo, lo + limit):
                t = base + st[j] - 1
                st[j] = t - nb + 1 if st[j] and t >= nb else 0
            rows[b + 1] = base = nb
        if limit > 1:
            st[lo:lo + limit - 1] = st[lo + 1:lo + limit]
        st[lo + limit - 1] = now - base + 1
    rows[b] = now
