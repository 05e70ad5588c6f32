"""The SMSC's message_ids beside the verdict lines of the messages they were given to (`telfilter verdicts`).

Theory of operation. An SMS's line is written when it is judged; the SMSC's message_id comes later, in its
submit_sm_resp, if at all, and the proxy then writes an `sms_id` line (verdictlog.py write_sms_id) naming the line
its message went out on: the same account, sender and recipient, and that line's time as `"judged"` (its `"ts"`,
the instant: a log written again by a shipper names the same line), as a `call_unsent` line names its call's
(report/unsent.py). The tie is exact: an id goes to the line with that key or to none, never to another line of the
same parties (one refused, timed out or never sent takes no id; a late part's id goes to the late part's own line,
the verdict it went out on). Reading the log in order (`verdicts` merges its logs by time), every line of an SMS submitted and let through (allow or
tag, not refused; not an MO, not a replace_sm: no id names those) is held by its key, whether it is to be printed or
not: an id whose own line the filters leave out prints nothing (`add`'s `show`). A line to print waits in file order
until its id came (a concatenated message's parts, `"part": true`: until the bounds below), then is printed with its
`message_ids`; an `sms_id` line whose key is held by no line (its line in a log not read, or older than the bounds)
is printed as itself where it matches the query (`find.py`).

Bounds: a line's key is held for HOLD of log time after it, and at most MAX_KEYS keys (the oldest let go first:
~400 bytes each, 20 MB when full: 50 s of a log at 1,000 forwarded messages a second, five times the SMSC's response
timeout); at most MAX_OUT lines wait to be printed (beyond, the oldest is printed with the ids it has). An id that
comes later is printed as itself, never given to another line. A log older than the one before it
(`--log verdicts.log*` reads the newest first) lets every held line go: the ids of its last lines were in the newer
log, read already.
"""
from __future__ import annotations

from collections import deque
from datetime import timedelta

from .reader import parse_ts

# the SMSC's response timeout is 10 s by default (smpp.toml); a late answer's id is still logged: 2 minutes of log
# time covers both
HOLD = timedelta(seconds=120)
MAX_KEYS = 50_000
MAX_OUT = 10_000
_MT = ("SubmitSm", "DataSm", "SubmitMulti")     # the PDUs whose resp carries a message_id for our line


def forwarded(rec: dict) -> bool:
    """A verdict line of an SMS submitted and let through: one an sms_id line may name."""
    if rec.get("kind") != "sms" or rec.get("action") not in ("allow", "tag") or "status" in rec:
        return False
    words = rec.get("pdu").split() if isinstance(rec.get("pdu"), str) else ()
    return bool(words) and words[0] in _MT and words[1:2] != ["MO"]


def line_key(ts, rec: dict) -> tuple:
    """The key an sms_id line names its line by: account, sender, recipient, and the line's time."""
    return rec.get("account"), rec.get("sender"), rec.get("recipient"), ts


def id_key(rec: dict):
    """The key of the line an sms_id line names (`line_key`'s), or None when it names none (no `judged`)."""
    try:
        return rec.get("account"), rec.get("sender"), rec.get("recipient"), parse_ts(rec["judged"], "judged")
    except (KeyError, ValueError):
        return None


class IdJoin:
    """Records in file order: `add` every verdict line (its `show`: whether it is to be printed), `sms_id` each id
    line (False when no held line has its key); `ready(ts)` yields the ones to print once the log has reached `ts`,
    `rest()` all at the end."""

    def __init__(self, hold: timedelta = HOLD, max_keys: int = MAX_KEYS, max_out: int = MAX_OUT):
        self.hold, self.max_keys, self.max_out = hold, max_keys, max_out
        self.keys: dict = {}                # line_key -> its record to print, or None (left out by the filters)
        self.order: deque = deque()         # (ts, key) of `keys`, oldest first (a key whose id came: gone already)
        self.out: deque = deque()           # (ts, record, its key or None) to print, in file order
        self.last = None                    # the latest log time read

    def add(self, ts, rec: dict, show: bool) -> None:
        if forwarded(rec):
            key = line_key(ts, rec)
            self.keys[key] = rec if show else None
            self.order.append((ts, key))
            if show:
                self.out.append((ts, rec, key))
        elif show:
            self.out.append((ts, rec, None))

    def sms_id(self, rec: dict) -> bool:
        """Give an sms_id line's id to the line it names; False when that line is not held."""
        key = id_key(rec)
        if key is None or key not in self.keys:
            return False
        line = self.keys[key]
        if line is not None:
            line.setdefault("message_ids", []).append(rec.get("message_id"))
        if rec.get("part") is not True:         # its one id: the line is whole
            del self.keys[key]
        return True

    def orphan(self, ts, rec: dict) -> None:
        """An sms_id line printed as itself, in its place in file order."""
        self.out.append((ts, rec, None))

    def ready(self, ts):
        """The records that may be printed now the log has reached `ts` (their ids, if any, all in)."""
        if self.last is not None and ts + self.hold < self.last:
            # back in time: the next (older) log of `--log verdicts.log*`, whose ids do not come after these lines
            yield from self.rest()
        if self.last is None or ts > self.last:
            self.last = ts
        order, keys, since = self.order, self.keys, ts - self.hold
        while order and (order[0][0] < since or len(order) > self.max_keys):
            keys.pop(order.popleft()[1], None)
        out = self.out
        while out and (out[0][2] is None or out[0][2] not in keys or len(out) > self.max_out):
            t, rec, _ = out.popleft()
            yield t, rec

    def rest(self):
        self.keys.clear()
        self.order.clear()
        self.last = None
        while self.out:
            t, rec, _ = self.out.popleft()
            yield t, rec
