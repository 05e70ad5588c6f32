"""The SIP screen's part of serve's graceful stop (SIGTERM/SIGINT, `telfilter ctl drain`): a drain, beside the SMPP
proxy's and within the same --drain-timeout.

Theory of operation: from the drain's start (`drain`) an INVITE that would be judged -- a new call: not a
retransmission of one judged, nor a copy of a call judged before on a branch of its own (a retry after a 401/407,
a 3xx or a 5xx, a spiral: screening._screen_once) -- is answered 503 Service Unavailable with a Retry-After of the
drain's timeout, unjudged (RFC 3261 §21.5.4; RFC 3263 §4.3: the softswitch tries its next route at once, and not
this node again before it is gone). Each is a line in the verdict log (kind call, action refuse, status 503, the
reason naming the drain: every INVITE that reached the screen leaves one, as an SMS answered unjudged does) and
counted (`refused_draining`), once: its retransmission gets the 503 again from the transaction memory; its CANCEL
is answered 200 here and the ACK of the 503 absorbed, as for any refusal of ours (proxying._remember_refused). An
OPTIONS addressed to the screen is answered 503 too (proxying._options_here). Everything else goes on as ever: responses, in-dialog requests (BYE, ACK, a
re-INVITE of an answered call, CANCEL), retransmissions and copies of calls judged before the drain -- until no
INVITE transaction is in flight (`ringing`: forwarded, no final relayed or given for it yet) and no INVITE waits
for a verdict, plus ACK_WAIT once they have (the ACK of a 2xx is end to end: it passes the C pump, which tells
Python nothing), or the timeout. With nothing in flight the drain ends at once. The screen serves on
(draining) until serve stops it, after the SMPP drain.

`ringing` is a bounded memory (an OrderedDict, RINGING transactions, the oldest forgotten first: O(1), where a plain
dict's first key steps over the holes its deletions left -- ~31 µs an INVITE at the bound, a next hop that answers
none; tests/test_fifo_memories_bounds.py), keyed by the digest of
"Call-ID CSeq-number" (responses.tx_of, as finals name their transaction): put when an INVITE leaves
(forwarding._forward), popped at its first final (responses._invite_final for a relayed one, from wherever it
comes, inline there: a call's 200 pays no call; forwarding._forward_failed for our own 503 when it could not leave --
not our answer to an INVITE never sent, such as a forked call's leg refused: the leg let through, on the same
Call-ID and CSeq, is still in flight). One that never
gets a final (a next hop that black-holes INVITEs) is in flight RINGING_MAX seconds at most, as its wait on a TCP
connection is (tcp.py). Its cost (instrbench, one captured call, 300 calls): ~+4.4k instructions an INVITE, ~+1.5k
its 200, ~0.8% of a call.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time

from .recent import digest
from .screening import CANCELLED, CANCELLED_WAITING, DRAINING
from .tcp import INVITE_WAIT_MAX

life = logging.getLogger("telfilter.service")
RINGING = 65_536                # INVITE transactions in flight remembered (a drain waits for their finals)
RINGING_MAX = INVITE_WAIT_MAX   # seconds an INVITE without a final counts as in flight (a call rings for minutes)
ACK_WAIT = 0.5                  # seconds a drain waits after the last final, for its ACK (T1, RFC 3261 §17.1.1.1)
POLL = 0.02                     # seconds between a drain's looks at what is in flight
DRAIN_REASON = "SIP screen draining: serve is stopping"


class Draining:
    """Mixed into SipScreen: what `drain` changes, and what it waits for."""

    draining = False
    drain_retry_after = 1

    def _invite_sent(self, msg, fixed=False, now=None) -> None:
        """An INVITE left for the next hop: in flight until its first final (a retransmission: from now). An
        OrderedDict of numbers (digest -> time sent), in the order sent: no tuple per call.
        A copy sent where its INVITE went (`fixed`) after the transaction's final is not in flight again: it crossed
        that final, and the callee absorbs it (RFC 6026 §7.1) -- it held the drain to its timeout. `now`: the
        monotonic clock, when the caller read it."""
        first = msg.first or msg.first_values()         # (Call-ID and CSeq are never edited)
        cseq = first.get("cseq") or ""
        # (responses.tx_key's text, without its frame: tests/test_sip_call_cost.py checks they agree)
        k = digest(f"{(first.get('call-id') or '').strip(' ')} {cseq.split(None, 1)[0] if cseq.strip() else ''}")
        r = self.ringing
        if fixed and k not in r and k in self.finals_seen:
            return
        if k in r:
            del r[k]                                    # (a retransmission: the newest again)
        elif len(r) >= RINGING:
            del r[next(iter(r))]                        # the oldest forgotten
        r[k] = time.monotonic() if now is None else now

    def _invite_done(self, tx: str) -> None:
        """A final for the INVITE transaction `tx` ("Call-ID CSeq-number") relayed or given: no longer in flight."""
        if self.ringing:
            self.ringing.pop(digest(tx), None)

    def _ringing_now(self, now: float) -> int:
        """INVITE transactions in flight at `now` (RINGING_MAX old at most): those older leave the memory (in the
        order sent, a retransmission's moved last: a look at the oldest ones suffices)."""
        r = self.ringing
        while r and now - r[k := next(iter(r))] > RINGING_MAX:
            del r[k]
        return len(r)

    def _in_flight(self, now: float) -> bool:
        shared = self.pipeline.state.shared
        return bool(self._ringing_now(now) or self.waiting_count
                    or (shared is not None and shared.busy))       # (a verdict a shared state store confirms)

    async def drain(self, timeout: float) -> dict:
        """From now on new calls are answered 503 (theory of operation above); returns once nothing SIP is in flight,
        at most after `timeout` seconds. Counts for the log."""
        now = time.monotonic()
        self.draining = True
        self.drain_retry_after = max(1, math.ceil(timeout))
        self.message_parts_judge_all()                  # held MESSAGE parts (msgparts.py): judged, answered now
        end = now + timeout
        at_start = self._ringing_now(now)
        life.info("SIP draining: new calls answered 503 (Retry-After: %d), %d INVITEs in flight", self.drain_retry_after,
                  at_start)
        waited = False
        while self._in_flight(time.monotonic()) and time.monotonic() < end:
            waited = True
            await asyncio.sleep(POLL)
        if waited and time.monotonic() < end:           # the ACK of the last final (a 2xx's: end to end, through
            await asyncio.sleep(min(ACK_WAIT, end - time.monotonic()))      # the pump, which tells Python nothing)
        stats = {"in_flight": at_start, "unanswered": self._ringing_now(time.monotonic()),
                 "refused": self.stats["refused_draining"]}
        life.info("SIP drained: %(in_flight)d INVITEs in flight at the stop, %(unanswered)d without a final at the "
                  "deadline; %(refused)d new calls answered 503", stats)
        return stats

    def _drain_headers(self) -> list:
        """The extra header fields of a drain's 503 (proxying._screened)."""
        return [["Retry-After", str(self.drain_retry_after)], ["Warning", f'399 telfilter "{DRAIN_REASON}"']]

    def _drain_refused(self, msg, src, then, cancelled=False, tx=None):
        """A new call while draining (screening._screen_once): answered 503 unjudged (`then(DRAINING)`), its line in the
        verdict log; 487 when a CANCEL of it was answered 200 already (it waited for another's verdict: §9.2), its line
        saying so. Its transaction `tx` keeps the answer: a retransmission gets the 503 again, no second line."""
        if tx is not None:                              # (a retransmission of a cancelled one: 487 again)
            self.transactions.put(tx, CANCELLED if cancelled else DRAINING, time.monotonic())
        if cancelled:
            self._refusal_logged(msg, src, 487, CANCELLED_WAITING)
            return then(CANCELLED, False)
        self.stats["refused_draining"] += 1
        self._refusal_logged(msg, src, 503, DRAIN_REASON)     # (before its refusal is remembered)
        then(DRAINING, True)
