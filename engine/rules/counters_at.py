"""Counts at delivery: a counter's `at = "delivery"` (the advertiser caps: AD_FREQUENCY_CAP), a mixin of
MemoryCounters (counters.py, whose `_layout(at=True)` gives their rows room for 2 * limit stamps).

Theory of operation. A message scheduled ahead (SMPP schedule_delivery_time) counts in every window that holds
its delivery, those before it and those of messages scheduled after it. Its row keeps each counted message's
delivery second in time order (0 = none yet), some of them ahead of the clock; the last word, the newest
stamp, is the row's last touch (a row lives a window past its newest delivery). `count_at(when, now)`: the
most stamps in any window holding `when` (each such window ends in [when, when + window), and its count is
highest where it ends at `when` or at a stamp), or the limit when the row has no room. `add_at`: the stamp
goes in order, the oldest (or an empty place) leaves. A stamp leaves only when it is out of every window still
to be judged (not newer than now - window: later messages are delivered at or after now), so the row holds
every stamp that can still count and the count is exact while the row has room; a limit lowered by a reload
narrows the rows only once every row's live stamps fit (MemoryCounters._relimit, `live_most`).
A replace_sm's replacement is counted with one stamp of the message it replaces left out (`without`:
Message.replacing); the row keeps that stamp, and its room is the row's, until the SMSC has taken the replacement.
The Redis script (engine/state/redis_script.py, mode 3) gives the same answers for the same commits.
The Python here is the reference and the fallback; `_slotat.h` (engine.rules._slotsfast, when built and not
TELFILTER_TABLES_PURE=1) takes the same steps on the same rows, tests/test_counters_at_fast.py comparing the two.
"""
from __future__ import annotations

from bisect import bisect_right

import numpy as np

from . import slots as _slots
from .slots import key_hash


class AtDelivery:
    """Mixin of MemoryCounters: count_at / add_at (their `_space` / `_relimit` lay the rows out)."""

    def _at_space(self, ns, now, window, limit):
        """The space of a count at delivery (rows of 2 * limit stamps: _layout), with the counter's limit as
        count/add have it (_relimit). Rows of a count at submission (the rule changed) are laid out again. The one
        place count_at and add_at (Python or compiled) have their space settled."""
        sp = self.spaces.get(ns)
        if sp is None or sp.limit != limit or not sp.at:
            if sp is not None and not sp.at and not sp.distinct:
                sp = self._space(ns, window, sp.limit, False, at=True)      # laid out again, every stamp kept
            sp = self._relimit(ns, now, window, limit, False, at=True)
        elif sp.lowered:
            sp.lowered = 0
        return sp

    def count_at(self, ns, key, when, now, window, limit, without=0) -> int:
        """For a message to be delivered at `when` (at or after `now`, the clock: a scheduled one later): the most
        messages counted in any one window that holds `when`, those before it and those scheduled after it -- or
        the limit when the key's row has no room for one more (every stamp in it newer than now - window: the
        advertiser waits until the oldest is out of the window). See the module's theory of operation.
        `without`: a second one stamp of which is left out of the count (a replacement's, Message.replacing: the
        message it replaces, still counted until the SMSC takes it); none of that second, nothing is. Not out of
        the room: the row keeps that stamp beside the replacement's until then."""
        sp = self._at_space(ns, now, window, limit)
        f = _slots._fast            # (compiled when built, for every ad judged: _slotat.h)
        if f is not None:
            return f.count_at(sp.table, key, when, now, window, limit, sp.limit, without)
        t = sp.table
        i = t.find(key_hash(key))
        if i < 0:
            return 0
        n = sp.width
        b = i * n
        st = [x for x in t.rows[b:b + n] if x]          # time order; 0 = none
        oldest = st[0] if len(st) >= n else 0          # (a full row's: the room is the row's, stamp left out or not)
        if without and without in st:
            st.remove(without)                          # (one of them; equal stamps count the same)
        if window is None:
            return len(st)
        if oldest and oldest > int(now) - window:
            return max(limit, sp.limit)
        d = int(when)
        best = 0
        for x in [d] + [x for x in st if d < x < d + window]:
            c = bisect_right(st, x) - bisect_right(st, x - window)
            if c > best:
                best = c
        return best

    def add_at(self, ns, key, when, now, window, limit, without=0) -> None:
        """Count a message delivered at `when` (see count_at): its stamp goes in time order; the oldest stamp
        (or an empty place) leaves the row. (`without`: what count_at left out, for a shared store's server; the
        stamp stays here.)"""
        sp = self._at_space(ns, now, window, limit)
        f = _slots._fast            # (as count_at: for every ad let through)
        if f is not None:
            return f.add_at(sp.table, key, when, now)
        t = sp.table
        i = t.slot(key_hash(key), int(now))
        n, rows = sp.width, t.rows
        b = i * n
        # in place: the stamps up to its place move one word towards the row's start over the oldest (memmove),
        # where insort into a copy of the row less its oldest put it (the same probes: the same place)
        w = int(when)
        j = bisect_right(rows, w, b + 1, b + n)
        rows[b:j - 1] = rows[b + 1:j]
        rows[j - 1] = w


def live_most(sp, horizon: int) -> int:
    """The most stamps newer than `horizon` in any row of count space `sp` (plain rows)."""
    o = sp.table.settled()
    if not o.top:
        return 0
    R = np.frombuffer(o.rows, np.uint32, o.top * o.width).reshape(o.top, o.width)
    return int((R > horizon).sum(axis=1).max())
