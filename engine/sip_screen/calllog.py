"""The SIP screen's lines in the verdict log (engine/verdictlog.py): a judged call's (`_log_call`, once its verdict is
taken) and an INVITE's the screen answered itself with a final, unjudged (`_refusal_logged`: kind call, action
refuse, the status and the reason -- the drain's 503, the 503 of one that waited for a verdict too long or found too
many waiting, the 487 of one cancelled while it waited for another's verdict, the 503 when it has no usable
destination, the 500 of an internal error, the 400/416/420/482/483/505 of the §16.3 checks and the parser): every
INVITE answered leaves a line, as an SMS answered unjudged does. Once per INVITE transaction (its top Via branch,
Call-ID and CSeq number): a retransmission answered again (from the transaction memory, or refused again by the same
check) writes none -- the screen's refusals are remembered under the INVITE's top Via branch and Call-ID
(`rejected`, RETRANSMISSIONS) with its CSeq number (`cseq_of`), and one already there for that CSeq number is its
line's; an INVITE reusing the branch with another CSeq number is another transaction (RFC 3261 §8.1.1.7), its own
line. A call judged and let through that never leaves (its forward failed: our 503; cancelled while judged: 487)
keeps its verdict line and gets a `call_unsent` line tied to it (`_unsent_logged`: its Call-ID and the verdict
line's time; `telfilter report` counts the call refused, not among its caller's calls): `msg.logged` holds the Call
its line was written for, True once its INVITE has a refusal line or a `call_unsent` one, or is a copy given its
call's decision again (a retransmission, a retry, a spiral: proxying._screened; a 500 after writes no line). Values
as they can be read (an INVITE that did not parse may lack Call-ID or From: null, ""), made loggable (_loggable).
The log never decides a call's fate: a line that cannot be written is counted (`log_failed`), and the call is
answered as ever.
"""
from __future__ import annotations

import logging
from time import monotonic

from .grammar import SipParseError, parse_via
from .identity import _callee, _caller
from .recent import ack_key, digest

log = logging.getLogger("telfilter.sip")


def _loggable(s):
    """A header value as text the verdict log can write: bytes that were not UTF-8 (kept as
    surrogates by the codec) become \\xNN escapes."""
    if s is None or s.isascii():
        return s
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def refused_key(msg):
    """The key an INVITE the screen answered itself is remembered by (its ACK's and CANCEL's, ack_key): its top Via's
    branch and its Call-ID; None when its top Via does not parse (nothing could name it). One with no branch (RFC
    2543) or no Via at all (answered to its source) is named as RFC 3261 §17.2.3 names such a transaction: its top
    Via's sent-by, From tag, Request-URI and Call-ID (the CSeq number is the entry's: cseq_of), so its retransmission
    finds its refusal and writes no second line ("|" is no token character: no branch makes the same text)."""
    try:
        top = msg.vias[0] if msg.vias else parse_via(msg.values("via")[0])
    except SipParseError:
        return None
    except IndexError:
        top = None
    first = msg.first_values()
    if top is not None and "branch" in top.params:
        return ack_key(top.params["branch"], first.get("call-id") or "")
    sent_by = "" if top is None else f"{top.host}:{top.port or ''}"
    return ack_key(f"|{sent_by}|{msg.tag_in(first.get('from'))}|{msg.uri}", first.get("call-id") or "")


MAX_CSEQS = 8                   # CSeq numbers a refusal's entry keeps: the transactions on one branch and Call-ID


def cseqs_of(ent) -> tuple:
    """The CSeq digests a `rejected` entry holds: none (carried over a restart), one (an int) or several."""
    seen = ent[3] if len(ent) > 3 else ()
    return (seen,) if type(seen) is int else seen


def cseq_of(msg) -> int:
    """The CSeq number of `msg` as a fixed-size digest (what a refusal is remembered with: `rejected` stays bounded in
    bytes whatever a peer writes there)."""
    cseq = (msg.first_values().get("cseq") or "").split(None, 1)
    return digest(cseq[0] if cseq else "")


class CallLog:
    """Mixed into SipScreen: its verdict-log lines."""

    def _log_call(self, call, msg, caller, callee, v, us):
        if self.vlog is not None:
            msg.logged = call                           # (a call_unsent line names it: _unsent_logged)
            try:                                        # the log never decides a call's fate
                # (_loggable's answer for ASCII, and the first values kept, without their frames)
                cid = (msg.first or msg.first_values()).get("call-id")
                self.vlog.write_call(call.time, cid if cid is None or cid.isascii() else _loggable(cid), caller, callee,
                                     call.ingress, v, us)
            except Exception as e:
                self._log_failed(e)
        return v

    def _refusal_logged(self, msg, src, status, reason, key=False):
        """The line of an INVITE from `src` answered `status` by the screen itself, unjudged, for `reason` (theory of
        operation above); none for another method, nor for a transaction refused already (`key`: its refused_key,
        computed when not given). Called before the refusal is remembered."""
        if msg.method != "INVITE" or self.vlog is None:
            return
        if msg.logged is not None:
            return                                      # (a line for it already: an internal error after its refusal)
        if key is False:
            key = refused_key(msg)
        ent = None if key is None else self.rejected.get(key, monotonic())
        if ent is not None and cseq_of(msg) in cseqs_of(ent):
            return                                      # a retransmission answered again: its transaction has a line
        msg.logged = True
        try:                                            # the log never decides a call's fate
            first = msg.first_values()
            try:
                caller = _caller(msg, first, self._identity_trusted(src[0]))[0]
            except SipParseError:                       # an identity header that does not parse: what else was read
                caller = ""
            self.vlog.write_call_refusal(self.clock(), _loggable(first.get("call-id")), _loggable(caller),
                                         _loggable(_callee(msg, first)), f"{src[0]}:{src[1]}", status, _loggable(reason))
        except Exception as e:
            self._log_failed(e)

    def _unsent_logged(self, msg, status, reason):
        """The `call_unsent` line of an INVITE judged and let through (its verdict line written: msg.logged is its
        Call) that the screen answered itself, `status`, for `reason`, instead of forwarding it; at most one."""
        call = msg.logged
        if self.vlog is None or call is None or call is True:
            return
        msg.logged = True
        try:                                            # the log never decides a call's fate
            self.vlog.write_call_unsent(self.clock(), _loggable(msg.first_values().get("call-id")), call.caller,
                                        call.callee, call.ingress, call.time, status, _loggable(reason))
        except Exception as e:
            self._log_failed(e)

    def _log_failed(self, e):
        self.stats["log_failed"] += 1
        if self.stats["log_failed"] in (1, 10, 100) or self.stats["log_failed"] % 1000 == 0:
            log.error("verdict log write failed (%d so far): %s", self.stats["log_failed"], e)
