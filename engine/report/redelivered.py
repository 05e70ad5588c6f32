"""The report's ties between the lines of a 5656 command the SMSC delivered again (`"redelivery": true`) and its
first delivery's line, by their `"mo_digest"` (smpp_proxy/mo_redelivery.py; no I/O here, aggregate.py counts).

Theory of operation. A copy applied nothing: its first delivery's line counted the message and its DNC change or
report, so the copy's line is counted in `shortcode_redeliveries` alone. But serve killed -9 between the command's
fsync and the loop's callback that logs and answers it (the crash a copy most often follows: once the answer is on
the socket the SMSC has it) leaves the command in force with no first line: counted by no line, the report showed no
message and no DNC change or report for it. So a copy's line is kept until its first line is read (logs are often
given newest first, a pool's logs one after another); one still untied when the reading ends is counted as its
message (the first of its copies that holds a verdict; the others as copies). A first line outside the period
(before --from) ties its copies all the same.

Bounds: FIRSTS digests of first lines (the newest kept, as ints: ~100 B each, 26 MB full) and COPIES untied
copies (the oldest counted as copies when more come). A copy whose first line was forgotten is counted as its message.
"""
from __future__ import annotations

from collections import OrderedDict

FIRSTS = 1 << 18
COPIES = 1 << 14


def _key(mo) -> int | None:
    if isinstance(mo, str) and len(mo) == 16:
        try:
            return int(mo, 16)
        except ValueError:
            pass
    return None


class Redelivered:
    """First lines' digests and the copies not tied to one yet (module text)."""

    def __init__(self):
        self.firsts: OrderedDict = OrderedDict()
        self.copies: dict = {}          # digest -> [ts, line, lines]: a copy whose first line is not read yet
        self.tied = 0                   # copy lines counted as copies

    def first(self, mo) -> None:
        """A 5656 command's first delivery's line, digest `mo`."""
        k = _key(mo)
        if k is None:
            return
        self.firsts[k] = None
        self.firsts.move_to_end(k)
        if len(self.firsts) > FIRSTS:
            self.firsts.popitem(last=False)
        c = self.copies.pop(k, None)
        if c is not None:
            self.tied += c[2]

    def copy(self, mo, ts, rec) -> None:
        """A copy's line (in the period)."""
        k = _key(mo)
        if k is None or k in self.firsts:
            self.tied += 1
            return
        c = self.copies.get(k)
        if c is None:
            if len(self.copies) >= COPIES:
                self.tied += self.copies.pop(next(iter(self.copies)))[2]
            self.copies[k] = [ts, rec, 1]
            return
        c[2] += 1
        if "hits" in rec and "hits" not in c[1]:       # (a verdict rather than an ESME_RX_T_APPN refusal)
            c[0], c[1] = ts, rec

    def untied(self) -> list:
        """[(ts, line)] one line for each command whose copies tied to no first line (then forgotten: the others
        counted as copies)."""
        out = []
        for ts, rec, n in self.copies.values():
            self.tied += n - 1
            out.append((ts, {k: v for k, v in rec.items() if k != "redelivery"}))
        self.copies.clear()
        return out
