"""A SlotTable as plain values and back: the snapshot encoding (state/embedded.py writes it with
msgpack). The dump holds a growth under way as it is, so a snapshot never has to finish one on
the event loop; `load` also reads the layout from before the row index (rows kept in the slots).
"""
from __future__ import annotations

import numpy as np

from .flatmem import copy, reserve_rows, room
from .slotgrowth import _Old


def dump(t, views: bool = False) -> list:
    """Table t as plain values, a growth under way included; its arrays copied (bytes), or with
    `views` as memoryviews of the table's own memory (valid while the table does not change)."""
    o = t._old
    b = (lambda v: v) if views else bytes
    return [t.width, t.touch, t.keep, t.max_keys, t.cap, t.used, t.cursor, t.rebuilds,
            b(t.hk[:t.top]), b(t.rows[:t.top * t.width]),
            None if o is None else [o.cap, o.left, o.cursor, o.step, o.now, b(o.ix[:o.cursor + 1])],
            [b(t.ix), t.top, t.free]]


def load(cls, v: list):
    """A `cls` (SlotTable) from `dump()`. Dumps from before the index (rows kept in the slots: 10 items,
    11 with a growth under way) load too: their rows are placed densely in slot order."""
    width, touch, keep, max_keys, cap, used, cursor, rebuilds = v[:8]
    t = cls(width, touch, keep, max_keys)
    t.cap, t.used, t.cursor, t.rebuilds = cap, used, cursor, rebuilds
    if len(v) > 11:
        hk, rows, old, (ix, top, free) = v[8], v[9], v[10], v[11]
        if len(rows) != 4 * width * top or len(hk) != 8 * top or not 0 <= free <= top:
            raise ValueError("table rows do not match its index")
        n = reserve_rows(width, max_keys, top)
        t.ix, t.top, t.free = copy("I", ix), top, free
        t.rows, t.hk = room("I", rows, n * width), room("Q", hk, n)
        if old is not None:
            ocap, left, ocursor, step, now, oix = old
            if not 0 <= ocursor < len(oix) // 4:
                raise ValueError("table rows do not match its index")
            o = t._old = _Old(copy("I", oix), ocap, left, now)
            o.cursor, o.step = ocursor, step
        if max(np.frombuffer(t.ix, np.uint32).max(initial=0),
               np.frombuffer(t._old.ix, np.uint32).max(initial=0) if t._old else 0) > top:
            raise ValueError("table index names a row beyond its rows")
        return t
    # rows in slot order: the occupied ones become rows 0.., in the same order
    h, rows = v[8], v[9]
    old = v[10] if len(v) > 10 else None
    H = np.frombuffer(h, np.uint64)
    R = np.frombuffer(rows, np.uint32)
    if len(H) * width != len(R):
        raise ValueError("table rows do not match its hashes")
    live = H != 0
    parts_h, parts_r = [H[live]], [R.reshape(len(H), width)[live]]
    if old is not None:
        ocap, left, ocursor, step, now, oh, orows = old
        OH = np.frombuffer(oh, np.uint64)
        OR = np.frombuffer(orows, np.uint32)
        if len(OH) * width != len(OR) or not 0 <= ocursor < len(OH):
            raise ValueError("table rows do not match its hashes")
        olive = OH != 0
        olive[ocursor:] = False         # slots at and after the cursor were moved already
        parts_h.append(OH[olive])
        parts_r.append(OR.reshape(len(OH), width)[olive])
    HK, dense = np.concatenate(parts_h), np.concatenate(parts_r)
    top = len(HK)
    n = reserve_rows(width, max_keys, top)
    t.rows, t.hk, t.top = room("I", dense.tobytes(), n * width), room("Q", HK.tobytes(), n), top
    k = int(live.sum())
    IX = np.zeros(len(H), np.uint32)
    IX[live] = np.arange(1, k + 1, dtype=np.uint32)
    t.ix = copy("I", IX.tobytes())
    if old is not None:
        OX = np.zeros(ocursor + 1, np.uint32)
        OX[olive[:ocursor + 1]] = np.arange(k + 1, top + 1, dtype=np.uint32)
        o = t._old = _Old(copy("I", OX.tobytes()), ocap, left, now)
        o.cursor, o.step = ocursor, step
    return t
