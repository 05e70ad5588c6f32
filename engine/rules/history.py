"""Per-sender recipient history and per-caller call durations, in flat bounded rows.

Both keep one `SlotTable` row per sender (caller), sized for what their criterion reads:
`new_recipient_share` (messages within a window and how many went to never-contacted
recipients) and `short_call_share` (of the recent completed calls, how many were short).
"""
from __future__ import annotations

from array import array
from bisect import bisect_right

from . import slots as _slots
from .slots import SlotTable, key_hash, value_fp


# ---------------------------------------------------------------- recipient history

_NB = 12                # time buckets per window
_GEN_WORDS = 4          # 128-bit Bloom filter per generation, two generations
_GEN_FILL = 12          # recipients per generation before the older one is cleared
_H_BUCKET, _H_BLOOM, _H_BUCKETS = 1, 2, 3
_H_FILTER = _H_BUCKETS + _NB
_H_WIDTH = _H_FILTER + 2 * _GEN_WORDS


def _bloom_bits(fp: int) -> tuple[int, int, int]:
    return fp & 127, (fp >> 7) & 127, (fp >> 14) & 127


class RecipientHistory:
    """Per sender: how many messages within the window, and how many of them went to a
    recipient the sender had not contacted before.

    A row per sender (92 B, + its 8-byte hash and a 4-byte index slot: 105-112 B measured): word
    0 last touch, word 1 the newest time bucket, word 2 the Bloom state, 12 time buckets of
    window/12 each packing (messages | new << 16), then the "contacted" filter: two generations
    of a 128-bit Bloom filter (3 bits per recipient). A generation takes 12 recipients, then the
    older one is cleared, so the sender's last 12-24 distinct recipients are remembered. False
    "already contacted" rate per generation at 12 recipients: (1 - e^(-36/128))^3 = 1.5% (at
    most 3% for both), and it errs towards fewer hits. The window is counted in whole buckets:
    the current one and the 11 before it (55-60 min of a 1 h window). A sender's row lives
    `remember` seconds (default a day) after its last message, so a regular sender's contacts
    are not forgotten between two quiet hours.
    """

    def __init__(self, max_senders: int = 500_000, remember: float = 86400.0):
        self.max_senders, self.remember = max_senders, remember
        self.tables: dict[float, SlotTable] = {}

    def _table(self, window: float) -> SlotTable:
        t = self.tables.get(window)
        if t is None:
            t = self.tables[window] = SlotTable(_H_WIDTH, 0, max(self.remember, window), self.max_senders)
        return t

    @staticmethod
    def _seen(rows, b: int, fp: int) -> bool:
        # the three bits of _bloom_bits(fp), spelled out: this runs for every message
        p0, p1, p2 = fp & 127, (fp >> 7) & 127, (fp >> 14) & 127
        w0, m0, w1, m1, w2, m2 = p0 >> 5, 1 << (p0 & 31), p1 >> 5, 1 << (p1 & 31), p2 >> 5, 1 << (p2 & 31)
        g = b + _H_FILTER
        if rows[g + w0] & m0 and rows[g + w1] & m1 and rows[g + w2] & m2:
            return True
        g += _GEN_WORDS
        return bool(rows[g + w0] & m0 and rows[g + w1] & m1 and rows[g + w2] & m2)

    def share(self, sender, recipient, now, window) -> tuple[int, float]:
        """(messages in window including this one, share of them to new recipients)."""
        t = self.tables.get(window)
        if t is None:
            return 1, 1.0
        f = _slots._fast
        if f is not None:
            return f.share(t, sender, recipient, now, window)
        i = t.find(key_hash(sender))
        if i < 0:
            return 1, 1.0
        rows = t.rows
        b = i * _H_WIDTH
        cur = int(now // (window / _NB))
        last = rows[b + _H_BUCKET]
        n = new = 0
        for x in range(max(cur, last) - _NB + 1, last + 1):
            v = rows[b + _H_BUCKETS + x % _NB]
            n += v & 0xFFFF
            new += v >> 16
        n += 1
        new += not self._seen(rows, b, value_fp(recipient))
        return n, new / n

    def add(self, sender, recipient, now, window) -> None:
        t = self.tables.get(window)
        if t is None:
            t = self._table(window)
        f = _slots._fast
        if f is not None:
            f.hadd(t, sender, recipient, now, window)
            return
        now_s = int(now)
        i = t.slot(key_hash(sender), now_s)
        rows = t.rows
        b = i * _H_WIDTH
        cur = int(now // (window / _NB))
        last = rows[b + _H_BUCKET]
        if rows[b] == 0:                          # a new row
            last = rows[b + _H_BUCKET] = cur
        elif cur > last:                          # clear the buckets that were skipped over
            for x in range(max(last + 1, cur - _NB + 1), cur + 1):
                rows[b + _H_BUCKETS + x % _NB] = 0
            last = rows[b + _H_BUCKET] = cur
        fp = value_fp(recipient)
        isnew = not self._seen(rows, b, fp)
        q = b + _H_BUCKETS + last % _NB
        v = rows[q]
        if v & 0xFFFF < 0xFFFF and v >> 16 < 0xFFFF:      # saturate rather than wrap
            rows[q] = v + 1 + (isnew << 16)
        if isnew:
            st = rows[b + _H_BLOOM]
            gen, fill = st >> 16, st & 0xFFFF
            g = b + _H_FILTER + gen * _GEN_WORDS
            p = fp & 127
            rows[g + (p >> 5)] |= 1 << (p & 31)
            p = (fp >> 7) & 127
            rows[g + (p >> 5)] |= 1 << (p & 31)
            p = (fp >> 14) & 127
            rows[g + (p >> 5)] |= 1 << (p & 31)
            fill += 1
            if fill >= _GEN_FILL:                 # start the other generation afresh
                gen ^= 1
                g = b + _H_FILTER + gen * _GEN_WORDS
                rows[g:g + _GEN_WORDS] = array("I", bytes(4 * _GEN_WORDS))
                fill = 0
            rows[b + _H_BLOOM] = gen << 16 | fill
        if now_s > rows[b]:
            rows[b] = now_s

    def memory_bytes(self) -> int:
        return sum(t.memory_bytes() for t in self.tables.values())

    def memory_keys(self) -> int:
        return sum(len(t) for t in self.tables.values())


# ---------------------------------------------------------------- call durations

_CALLS = 32             # completed calls remembered per caller
CALLS_KEPT, CALLS_KEPT_FOR = _CALLS, 86400.0        # (what a short_call_share rule may ask for: stateful.py)


class CallDurations:
    """Per caller: (end second, duration in ms) of the last 32 completed calls, oldest first.

    A row of 64 uint32 words (264 B with its hash); rows live a day after the caller's last
    completed call. `share_short` bisects to the calls ended within the window: O(32).
    """

    def __init__(self, max_callers: int = 500_000, keep: float = CALLS_KEPT_FOR):
        self.table = SlotTable(2 * _CALLS, _CALLS - 1, keep, max_callers)

    def add(self, caller, ts: float, duration: float) -> None:
        t = self.table
        f = _slots._fast
        if f is not None and f.cadd(t, caller, ts, duration):     # (False: the values below, as they are)
            return
        end = int(ts)
        i = t.slot(key_hash(caller), end)
        rows = t.rows
        b = i * 2 * _CALLS
        e = b + _CALLS - 1
        last = rows[e]
        rows[b:e] = rows[b + 1:e + 1]
        rows[e] = end if end > last else last
        rows[b + _CALLS:e + _CALLS] = rows[b + _CALLS + 1:e + _CALLS + 1]
        rows[e + _CALLS] = min(0xFFFFFFFF, max(0, int(round(duration * 1000))))

    def share_short(self, caller, now: float, window: float, max_seconds: float) -> tuple[int, float]:
        t = self.table
        i = t.find(key_hash(caller))
        if i < 0:
            return 0, 0.0
        rows = t.rows
        b = i * 2 * _CALLS
        first = bisect_right(rows, int(now) - window, b, b + _CALLS) - b
        n = _CALLS - first
        if not n:
            return 0, 0.0
        lim = max_seconds * 1000
        short = 0                       # (a loop, not a generator: `lim` no cell at every call judged)
        for d in rows[b + _CALLS + first:b + 2 * _CALLS]:
            if d < lim:
                short += 1
        return n, short / n

    def recent(self, caller) -> list[tuple[int, float]]:
        """The caller's remembered calls as (end second, duration in seconds), oldest first."""
        t = self.table
        i = t.find(key_hash(caller))
        if i < 0:
            return []
        row = t.rows[i * 2 * _CALLS:(i + 1) * 2 * _CALLS].tolist()
        return [(e, d / 1000) for e, d in zip(row[:_CALLS], row[_CALLS:]) if e]

    def memory_bytes(self) -> int:
        return self.table.memory_bytes()
