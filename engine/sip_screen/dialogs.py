"""The SIP screen's memory of answered calls (`answered`, server.py; entries built by screening._screen and
responses._invite_final): which re-INVITE belongs to a call the screen judged, let through and saw answered (it
goes on unjudged), and which BYE ends such a call (its duration for the pipeline's short-call criterion). No I/O.

An entry is (caller, answer time or None while the call waits for its 200 -- on the clock that times calls,
`call_ticks`, not the wall clock: a step of the wall clock (NTP, `date -s`) during a call made its duration
-3570 s (read as 0 s, a short call) after a step back of 1 h and a day longer after a step forward (found by the
clock-step probe) -- the dialog's parties digest
(identity.dialog_parties), the address the INVITE was sent to, the caller's side digest (identity.caller_side),
the answering 200's To tag digest or None): a re-INVITE passes in the dialog the 200 made -- that tag in the
caller's To with the caller's side as it was, or in the callee's From when it comes from where the call's answer is
believed (RFC 4916: the callee's identity may change in the dialog) -- or between the same parties; a BYE ends an
answered call only when it is of that dialog (a forked INVITE's other 2xx, ACKed and ended at once by the caller,
RFC 3261 §13.2.2.4, is another dialog), and a BYE before the answer ends nothing.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import partial

from .responses import same_host
from .recent import Recent, dialog_digest
from .identity import caller_side, dialog_parties


# The screen's clock unless one is given (SipScreen): now, UTC. A partial, not a function: datetime.now called from C,
# no Python frame an INVITE (its call's time)
wall_clock = partial(datetime.now, timezone.utc)


_GONE = object()
# Recent's methods read once (Python 3.11 reads an attribute of a class without specialising it: the generic getattr
# at every call, ~400 instructions)
_recent_put, _recent_put_low, _recent_promote, _recent_pop = Recent.put, Recent.put_low, Recent.promote, Recent.pop


class AnsweredCalls(Recent):
    """The `answered` memory: a Recent that counts its changes (`changes`), so the periodic save (dialogsave.py)
    writes the memory only when it changed since the last save: no disk churn on an idle screen. Every write of
    the memory goes through these methods (restore_dialogs fills it before it counts: the file is that memory)."""

    __slots__ = ("changes",)

    def __init__(self, size: int, ttl: float | None = None, low_min: int = 0):
        super().__init__(size, ttl, low_min)
        self.changes = 0

    def put(self, key, value, now: float = 0.0) -> None:
        self.changes += 1
        _recent_put(self, key, value, now)

    def put_low(self, key, value, now: float = 0.0) -> None:
        self.changes += 1
        _recent_put_low(self, key, value, now)

    def promote(self, key, value, now: float = 0.0) -> None:
        self.changes += 1
        _recent_promote(self, key, value, now)

    def pop(self, key, default=None):
        ent = _recent_pop(self, key, _GONE)
        if ent is _GONE:
            return default
        self.changes += 1
        return ent


class Dialogs:
    """Mixin of SipScreen: its `answered` memory read for re-INVITEs and BYEs."""

    def _dialog_answered(self, msg, call_id: str, first, src) -> bool:
        """A re-INVITE of a call this screen judged and let through and whose 200 it relayed from where the
        INVITE went (its answer time is set: responses._invite_final), in the dialog that 200 made (its To tag,
        the caller's From tag and user as they were) or between the same parties (its From tag, From and To users,
        from either side): only those go on unjudged. A call it rejected or never saw answered has no dialog, and
        a Call-ID alone is no dialog."""
        dk = self.dialog_key
        ent = self.answered.get(dialog_digest(dk, call_id)) if self.answered else None
        if ent is None or ent[1] is None:
            return False
        frm, to = first.get("from"), first.get("to")
        t = ent[5] if len(ent) > 5 else None
        if t is not None and ent[4] is not None and (
                t == dialog_digest(dk, msg.tag_in(to)) and ent[4] == caller_side(dk, msg, frm)
                or (t == dialog_digest(dk, msg.tag_in(frm)) and ent[4] == caller_side(dk, msg, to)
                    and (same_host(ent[3], src[0]) or self._answers_from(src[0])))):
            # the answering 200's To tag (responses._invite_final), in the To of the caller's re-INVITE or the From of
            # the callee's, with the caller's side as it was (its From tag and user): the dialog, whatever the callee's
            # side says now (RFC 4916: a callee may change its From in the dialog, and the caller's To follows; such
            # a refresh was judged as a new call, an advertiser's refused by its own count -- found by the SIP dialog
            # probe). The tag alone let any caller to any callee past unjudged on an answered call's Call-ID
            # (test_sip_transactions_dialogs.test_a_call_id_alone_is_no_dialog; found by review39). The callee's side, whose
            # From user may be anything now, only from where the call's answer is believed (responses._invite_final):
            # from anywhere, a caller's INVITE with From and To swapped (the 200's tag in From) went to any callee
            # as any caller, a blacklisted one too, unjudged (found by review40)
            return True
        return ent[2] in (dialog_parties(dk, msg, frm, to), dialog_parties(dk, msg, to, frm))

    def _call_ended(self, call_id, tags=None):
        """A BYE on `call_id` with `tags` (its From and To tags): the call's end (its duration for the pipeline, its
        re-INVITEs judged again after it) when it is of the dialog the call's answer made (the answering 200's To
        tag, responses._invite_final), from either side. A BYE of another dialog -- a forked INVITE's other 2xx,
        which the caller ACKs and ends at once (RFC 3261 §13.2.2.4) -- leaves the call as it is: it ended the call
        with a duration of 0 s (read by the short-call criterion) and its session refreshes were judged as new
        calls, counted against the caps again. A BYE before the answer (of an early dialog, RFC 3261 §15, or with
        made-up tags) leaves the call waiting for it: it erased the call, so the 200 that came next was no answer --
        the call's refreshes judged as new calls, its end never counted (a caller sending one at once kept all its
        calls from the short-call criterion; found by review40)."""
        if not self.answered:
            return
        k = dialog_digest(self.dialog_key, call_id)
        ent = self.answered.get(k)
        if ent is None or ent[1] is None:
            return
        if ent[5] is not None and tags is not None:
            for t in tags:                              # (a loop, not any() over a generator: a frame less a BYE)
                if t and dialog_digest(self.dialog_key, t) == ent[5]:
                    break
            else:
                return
        self.answered.pop(k)
        # (the wall clock as POSIX seconds, as wall_clock().timestamp() reads it: no datetime made a BYE)
        now = time.time() if self.clock is wall_clock else self.clock()
        self.pipeline.call_ended(ent[0], now, self.call_ticks() - ent[1])

    def call_ticks(self) -> float:
        """Seconds on the clock that times calls: `ticks` when set, else the monotonic clock (no step of the wall
        clock moves it) -- or, when `clock` is not the wall clock's (a test's, a replay's), that clock."""
        if self.ticks is not None:
            return self.ticks()
        if self.clock is wall_clock:
            return time.monotonic()
        return self.clock().timestamp()

    def _fast_bye(self, call_id, to_tag, base, before=b""):
        """_call_ended for a BYE the fast path relays (the C pump reads the tag as this does, _sipdatagram.h's
        bye_from_tag, and calls _call_ended itself): `base` (its branch key,
        "uri|call-id|cseq|from-tag|to-tag|") holds its From tag, between the CSeq number (digits) and the To tag (a
        From tag holding a '|', "a|b", read whole by the full parse, was read as its tail after the key's last '|').
        `before`, the request as relayed up to our Via, starts with its request line: the Request-URI's length says
        where the Call-ID starts (a URI holding '|<Call-ID>|' -- the caller's Contact, the URI of the callee's BYE --
        was taken for it, and the callee's BYE on these paths did not end the call; found by review40)."""
        head, tail = f"|{call_id}|", f"|{to_tag}|"
        sp = before.find(b" ")
        i = before.find(b" ", sp + 1) - sp - 1 if sp > 0 else base.find(head)
        from_tag = ""
        if i > 0 and base.startswith(head, i) and base.endswith(tail) and i + len(head) <= len(base) - len(tail):
            from_tag = base[i + len(head):len(base) - len(tail)].partition("|")[2]
        self._call_ended(call_id, (from_tag, to_tag))
