"""The SMSC's message_ids beside the verdict lines of the messages they were given to (`telfilter verdicts`).

Theory of operation. An SMS's line is written when it is judged; the SMSC's message_id comes later, in its
submit_sm_resp, if at all, and the proxy then writes an `sms_id` line (verdictlog.py write_sms_id) with the same
account, sender and recipient. Reading the log in file order, a verdict line to print that was forwarded (allow or
tag, not a refusal or a late part) is held, with every line after it, until JOIN_WINDOW seconds of log time have
passed: an `sms_id` line of the same account, sender and recipient within that span adds its id to the line's
`message_ids` (a concatenated message: one an SMSC part, in part order). Two messages of one account from one sender
to one recipient in flight together take their ids in order (the older line the first); a part's id goes to the
newest line (its message's parts are sent once it is judged). An `sms_id` line no held line takes is printed
as itself when it matches the filters (its line outside the days asked, or further back than JOIN_WINDOW).

Bounds: the lines held are the matched ones of the last JOIN_WINDOW seconds of log time, and at most MAX_HELD
(beyond, the oldest is printed without waiting for its ids): ~10,000 lines, a few MB, whatever the log's size. A
log older than the one before it (`--log verdicts.log*` reads the newest first) lets every held line go at once.
"""
from __future__ import annotations

from collections import deque
from datetime import timedelta

# the SMSC's response timeout is 10 s by default (smpp.toml); a late answer's id is still logged: 2 minutes of
# log time covers both
JOIN_WINDOW = timedelta(seconds=120)
MAX_HELD = 10_000


def _key(rec: dict):
    return rec.get("account"), rec.get("sender"), rec.get("recipient")


def forwarded(rec: dict) -> bool:
    """A verdict line whose message went to the SMSC (an sms_id line may follow it)."""
    return rec.get("kind") == "sms" and rec.get("action") in ("allow", "tag") and "status" not in rec \
        and rec.get("late") is not True


class IdJoin:
    """Records to print, in file order (`add`), the forwarded ones held for their ids (`sms_id`); `ready(ts)` the
    ones that may be printed once the log has reached `ts`, `rest()` all at the end."""

    def __init__(self, window: timedelta = JOIN_WINDOW, cap: int = MAX_HELD):
        self.window, self.cap = window, cap
        self.out: deque = deque()           # [ts, rec] to print, in file order
        self.held: dict = {}                # (account, sender, recipient) -> [rec] of `out`, oldest first

    def add(self, ts, rec: dict) -> None:
        if forwarded(rec):
            self.held.setdefault(_key(rec), []).append(rec)
        self.out.append((ts, rec))

    def sms_id(self, ts, rec: dict) -> bool:
        """Give an sms_id line's id to the held line it belongs to; False when none is held."""
        lines = self.held.get(_key(rec))
        if not lines:
            return False
        if rec.get("part") is True:
            line = lines[-1]
        else:
            line = next((x for x in lines if "message_ids" not in x), lines[-1])
        line.setdefault("message_ids", []).append(rec.get("message_id"))
        return True

    def ready(self, ts):
        """The records that may be printed now the log has reached `ts` (their ids, if any, all in)."""
        out, since = self.out, ts - self.window
        if out and out[-1][0] > ts + self.window:
            # back in time: the next (older) log of `--log verdicts.log*`, whose ids do not come after these lines
            yield from self.rest()
        while out and (out[0][0] < since or len(out) > self.cap):
            yield self._pop()

    def rest(self):
        while self.out:
            yield self._pop()

    def _pop(self):
        ts, rec = self.out.popleft()
        if forwarded(rec):
            k = _key(rec)
            lines = self.held.get(k)
            if lines:
                i = next(i for i, x in enumerate(lines) if x is rec)       # (the oldest, but for a cap's cut)
                del lines[i]
                if not lines:
                    del self.held[k]
        return ts, rec
