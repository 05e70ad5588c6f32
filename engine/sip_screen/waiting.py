"""Mixed into SipScreen: an INVITE on a call key (screening._call_keys) that is still being judged, with another top
Via branch, waits for that verdict (bounded in number and time, never left unanswered); a CANCEL of an INVITE still
being judged or waiting is noted for its answer (487)."""
from __future__ import annotations

import time

from ..numbers import normalise_number
from .identity import _callee
from . import screening       # (its MAX_WAIT and MAX_WAITING read when used: the one place they are set)
from .screening import (BUSY, CANCELLED, CANCELLED_WAITING, PENDING, TOO_MANY_WAITING, WAITED_TOO_LONG,
                        _call_keys)


class WaitingInvites:
    """Mixed into SipScreen (screening.Screening's _screen_once and _judged call these)."""

    def _waiting_pop(self, key) -> list:
        """The INVITEs waiting for the verdict on `key`, no longer waiting."""
        waiting = self.waiting.pop(key, None)
        if not waiting:
            return []
        self.waiting_count -= len(waiting)
        return list(waiting.values())

    def _wait_for_judging(self, key, branch, msg, src, then, cancelled=False, since=None):
        """An INVITE on a key (_call_keys) whose call is being judged, with another top Via branch: kept until that
        verdict comes (a retransmission of it while it waits is dropped), at most MAX_WAITING of all calls
        together; beyond that answered 503 with a Retry-After (RFC 3261 §21.5.4), never left unanswered. `cancelled`:
        a CANCEL of it came already (it waited before, behind a call on the key that is now judged in turn); `since`:
        when it began to wait. The INVITEs on one key are judged one after another, a shared state store's round trip
        each: one that has waited MAX_WAIT seconds (its caller has given up) is answered 503 too, never forwarded to
        ring for nobody (found by a SIP probe: 1,100 INVITEs on one key, 0.6 s a round trip, the last would have
        waited 10 minutes)."""
        waiting = self.waiting.get(key)
        if waiting is not None and branch in waiting:
            self.stats["replayed"] += 1
            return
        now = time.monotonic()
        waited = since is not None and now - since >= screening.MAX_WAIT
        if waited or self.waiting_count >= screening.MAX_WAITING:
            self.stats["waiting_refused"] += 1
            return self._unjudged((msg, src, then, cancelled), WAITED_TOO_LONG if waited else TOO_MANY_WAITING)
        if waiting is None:
            waiting = self.waiting[key] = {}
        waiting[branch] = [msg, src, then, cancelled, now if since is None else since]
        self.waiting_count += 1
        if since is None:                               # (waiting again behind the next on its key: counted once)
            self.stats["waited_for_judging"] += 1

    def _unjudged(self, w, reason):
        """A waiting INVITE (_wait_for_judging's entry: msg, src, then, cancelled, ...) not judged: answered 503 with a
        Retry-After, its verdict-log line naming `reason` (calllog.py), or 487 when a CANCEL of it was answered 200
        already (RFC 3261 §9.2: its first answer, kept for the next process as a judged one's), its line saying so.
        The 487 is its transaction's (`transactions`): its retransmission (the 487 lost) gets it again, not judged as a
        new call that rang for a caller gone; one answered 503 is judged (room may have come)."""
        if w[3]:
            self.transactions.put(w[0].tx, CANCELLED, time.monotonic())     # (its transaction: _screen_once)
            self._refusal_logged(w[0], w[1], 487, CANCELLED_WAITING)
            return w[2](CANCELLED, False)
        self._refusal_logged(w[0], w[1], 503, reason)
        w[2](BUSY, True)

    def _cancel_pending(self, msg) -> bool:
        """A CANCEL (`msg`) of an INVITE still being judged (a shared state store confirming its counts): noted on
        its verdict entry (the INVITE, once judged, is answered 487: `judged` in _screen_once). False when its
        INVITE is not being judged (same Call-ID, From, callee and top Via branch, RFC 3261 §9.1)."""
        first = msg.first_values()
        called = _callee(msg, first)
        key, branch = _call_keys(msg, first, called, normalise_number(called), None)
        ent = self.verdicts.get(key)
        if ent is None or ent[0] is not PENDING:
            return False
        if ent[1] != branch:
            w = self.waiting.get(key, {}).get(branch)
            if w is None:
                return False
            w[3] = True                                 # waiting for another's verdict: judged, then answered 487
            return True
        self.verdicts.put(key, (PENDING, ent[1], True), time.monotonic())
        return True
