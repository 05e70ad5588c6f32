"""The report's memory of the calls that may turn out never sent (no I/O here; aggregate.py counts).

Theory of operation. A call the SIP screen judged and let through (its line `allow` or `tag`) may still never
leave: its forward fails (a next hop unreachable, a TCP connect refused: the screen answers it 503) or a CANCEL
came while it was judged (487). The screen then gives its counts back and writes a `call_unsent` line
(verdictlog.write_call_unsent) naming the call's line: its Call-ID and that line's time (`judged`, the line's `ts`
as written). The caller was answered by the screen, the callee never rang: the report counts the call under
call/refuse, as every INVITE the screen answered itself, and not in its owner's advertising volume (the caller's
retry, judged and counted again, is the call). A call line let through leaves a `Sent` here (what was counted for
it); its `call_unsent` line moves it (`Unsent.uncount`). Logs are often given newest first, so a `call_unsent`
line whose call line was not read yet is kept too (`early`) and its call, once read, is counted refused at once.

Bounds (OrderedDicts, the oldest forgotten first): a `call_unsent` line comes seconds after its call's line (a TCP
connect gives up after 2 s, an ICMP error comes in milliseconds, a CANCEL while the call is judged), so MAX_SENT
calls (~220 B each: 6.9 MiB when full, tracemalloc) cover a minute or more of calls at a node's rate; MAX_EARLY
lines read before their call's. A `call_unsent` line tied to no call (forgotten, or its call's line outside the
period or in a log not read) changes no count: `calls_unsent_untied`.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from datetime import datetime, timedelta, timezone

UNREGISTERED = "(not in the sender registry)"   # advertising_by_owner's bucket of senders no owner registered
MAX_SENT = 32768
MAX_EARLY = 4096
_EPOCH, _US = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(microseconds=1)


def call_key(call_id, when: datetime) -> int:
    """The tables' key for a call line (its Call-ID and the time its `ts` says) or a `call_unsent` line (its Call-ID
    and the time `judged` says): the instant, not its text (a log written again by a shipper names the same call
    with `Z` for `+00:00`, another offset or a fraction of its own), as a 64-bit digest (a damaged log's megabyte of
    Call-ID is no key kept whole)."""
    text = f"{call_id}\0{(when - _EPOCH) // _US}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class Sent:
    """What was counted for a call let through: its period, action and owner, whether it was an ad and its violation
    classes (its caller is no key of what is taken back: only drops are counted by sender)."""
    __slots__ = ("p", "action", "owner", "is_ad", "violations")

    def __init__(self, p, action, owner, is_ad, violations):
        self.p, self.action, self.owner, self.is_ad = p, action, owner, is_ad
        self.violations = tuple(violations) if violations else ()


class UnsentCalls:
    """Mixed into Aggregator: `call_unsent` lines and the calls they take back (its `_count`, `ads`)."""

    def _unsent_init(self) -> None:
        self.sent: OrderedDict = OrderedDict()          # call key -> Sent, newest last
        self.early: OrderedDict = OrderedDict()         # call key -> None: call_unsent lines read before their call
        self.unsent = 0                                 # calls counted refused for their call_unsent line
        self.unsent_untied = 0                          # call_unsent lines tied to no call (forgotten early ones too)

    def _let_through(self, rec: dict, ts: datetime, sent: Sent) -> None:
        """A call line let through (allow, tag) at `ts`, counted as `sent` says: remembered for its call_unsent line,
        or counted refused at once when that line was read before it."""
        k = call_key(rec.get("call_id"), ts)
        if k in self.early:
            del self.early[k]
            return self._uncount(sent)
        self.sent[k] = sent
        if len(self.sent) > MAX_SENT:
            self.sent.popitem(last=False)

    def _unsent_line(self, rec: dict, judged: datetime) -> None:
        """A `call_unsent` line, naming the call judged at `judged`: that call counted refused, or kept until its
        line is read."""
        k = call_key(rec.get("call_id"), judged)
        sent = self.sent.pop(k, None)
        if sent is not None:
            return self._uncount(sent)
        if k not in self.early:
            self.early[k] = None
            if len(self.early) > MAX_EARLY:
                self.early.popitem(last=False)
                self.unsent_untied += 1

    def _uncount(self, sent: Sent) -> None:
        """The call `sent` counted refused instead, and out of its owner's advertising volume."""
        self.unsent += 1
        self._count("call", sent.action, sent.p, "", sent.owner, -1)
        self._count("call", "refuse", sent.p, "", sent.owner)
        if sent.is_ad:
            a = self.ads[sent.owner or UNREGISTERED]
            a["volume"] -= 1
            for v in sent.violations:
                a[v] -= 1

    def unsent_untied_lines(self) -> int:
        """call_unsent lines tied to no call: forgotten, and those still waiting at the end of the reading."""
        return self.unsent_untied + len(self.early)
