"""Screening a SIP MESSAGE (RFC 3428 page-mode instant message; SMS over IMS, 3GPP TS 24.341) as the SMS it is: the one
pipeline judges it (kind sms, direction mt, as an SMPP submit_sm from an ESME), the verdict log's one SMS line records
it, and the verdict acts as an INVITE's does.

Theory of operation: every MESSAGE request is judged when sip.toml's `judge_messages` is on (the default), in a dialog
or not -- a To tag proves no dialog, as for an INVITE (a made-up one carried a message past the screen); the fast paths
leave MESSAGE to the full parse (fastpath.NOT_IN_DIALOG, _sipdialog.h). The sender is the caller an INVITE from that
peer would be judged as (identity._caller_number: P-Asserted-Identity from a trusted peer, else From), the recipient
the Request-URI's user (as the INVITE's callee); an SMS-SUBMIT's TP-DA is the real recipient and an SMS-DELIVER's
TP-OA the real sender (an alphanumeric one with its type of number 5, as an SMPP source_addr_ton). The text is what
msgbody.message_content reads. Direction mt: the screen stands at the interconnect, where a MESSAGE toward the network
is the traffic the advertiser rules (sms-mt) are written for, and an unauthenticated peer must not send a 5656
command (an ESME's MT to 5656 is no command either: pipeline.judge).

The decision is kept per transaction (its top Via branch, Call-ID and CSeq number, with what is judged: another
message under those names is judged, not taken for a copy) in a bounded memory of its own, `messages_tx`
(MESSAGE_TRANSACTIONS entries, RETRANSMISSIONS seconds; in the INVITEs' `transactions` a flood of unique MESSAGEs
pushed a call's INVITE out, and its retransmission was judged again): a retransmission gets the same answer -- forwarded again, or our final again
-- without a second judging or line. Allow: forwarded; tag: the INVITE's tag header (and From display prefix), then
forwarded; drop: answered with the INVITE's rejection (the hit's sip_code or default_drop_code, Reason and Call-Info),
not forwarded. A body that carries no text (RP-ACK, is-composing ...) is relayed unjudged, counted
(`messages_unjudged`); one that does not parse is answered 400 with the reason, and a refusal line is logged, as is a
MESSAGE the screen answers before judging it (a §16.3 check, the parser: `_message_refusal_logged`). One let through
whose forward fails is answered 503 (forwarding._fail) and keeps its line and its counts: its retransmission is
forwarded again on the decision kept, not judged again. Under a shared state store (Redis) the answer waits for the
settled verdict; a copy meanwhile is dropped (the first copy's answer is on its way). A part of a concatenated SMS (a
3GPP body whose UDH says so) waits for its message's other parts, unanswered, and gets the whole message's answer
(msgparts.py).
"""
from __future__ import annotations

import time

from ..numbers import normalise_number
from ..verdict import Action, Message
from .calllog import _loggable, cseq_of, refused_key
from .codec import make_response
from .grammar import SipParseError
from .identity import _callee, _caller_number
from .msgbody import BodyError, NoText, message_content
from .recent import digest
from .screening import RETRANSMISSIONS, Decision
from .settings import MESSAGE_CONCAT_TIMEOUT_MAX
from .shares import cost

MESSAGE_TRANSACTIONS = 131_072  # MESSAGE transactions whose answer is kept for their retransmissions (as VERDICTS)
PDU = "SIP MESSAGE"                 # the verdict line's "pdu" (then the body's kind: text, SMS-SUBMIT, SMS-DELIVER)
UNJUDGED = Decision(Action.ALLOW, 0, (), (), 0.0)       # no text: relayed as it came
PENDING = Decision(Action.ALLOW, 0, ("pending",), (), 0.0)      # a shared state store settling its verdict
_DROP, _TAG = Action.DROP, Action.TAG
# the headers a sender is read from besides From (identity._caller_number), every value: in a transaction's key
IDENTITIES = ("p-asserted-identity", "remote-party-id", "p-preferred-identity")


class Refused(tuple):
    """(status, reason, extra headers) a MESSAGE was answered with unjudged, kept for its retransmissions."""


class Messaging:
    """Mixed into SipScreen: the judging of MESSAGE requests (proxying._request sends them here)."""

    @staticmethod
    def _message_tx(msg, first) -> bytes:
        """The key a MESSAGE transaction's answer is kept under in `messages_tx`: a retransmission is the same request
        again, so what is judged (Request-URI, From, To, the identity headers, Content-Type and -Encoding, the body) is
        in it with the transaction's names: another message on a branch, Call-ID and CSeq seen is judged, not
        forwarded on the first one's decision."""
        top, cseq = msg.vias[0], (first.get("cseq") or "").split(None, 1)
        return digest("MESSAGE", top.params.get("branch") or top.raw, first.get("call-id") or "",
                      cseq[0] if cseq else "", msg.uri, first.get("from"), first.get("to"),
                      first.get("content-type"), first.get("content-encoding"), msg.body,
                      *(tuple(msg.values(h)) for h in IDENTITIES if h in first))

    def _message_replayed(self, tx, now, args) -> bool:
        """Whether transaction `tx` has its answer already (True: sent again, or on its way: a retransmission)."""
        done = self.messages_tx.get(tx, now)
        if done is None:
            return False
        self.stats["messages_replayed"] += 1
        if done is not PENDING:                         # (PENDING: the first copy's answer is on its way)
            self._message_decided(*args, done, True)
        return True

    def _message_judged_before(self, msg, dest, branch, transport, src, conn) -> bool:
        """With judge_messages off: a MESSAGE of a transaction judged before a reload turned it off (a part held, an
        answer lost) keeps its answer -- absorbed while held, answered again after -- never forwarded unjudged besides
        (a held part forwarded now and answered again when its message is judged; a drop's retransmission delivered).
        Looked up only while such an answer can still be asked for (`messages_judged_until`)."""
        now = time.monotonic()
        if now >= self.messages_judged_until:
            return False
        return self._message_replayed(self._message_tx(msg, msg.first or msg.first_values()), now,
                                      (msg, dest, branch, transport, src, conn))

    def _screen_message(self, msg, dest, branch, transport, src, conn):
        first = msg.first or msg.first_values()
        tx = msg.tx = self._message_tx(msg, first)
        now = time.monotonic()
        # an answer of a transaction judged now is asked for (retransmissions) until then, held parts' included
        self.messages_judged_until = now + MESSAGE_CONCAT_TIMEOUT_MAX + RETRANSMISSIONS
        args = (msg, dest, branch, transport, src, conn)
        if self._message_replayed(tx, now, args):      # a retransmission: the transaction's answer again
            return
        sender, recipient, s_ton, r_ton = "", "", 0, 0
        try:
            trusted = self._identity_trusted(src[0])
            sender, _, s_n = _caller_number(msg, first, trusted)
            ruri = msg.ruri
            recipient = (ruri.user if ruri is not None else "") or _callee(msg, first)
            got = message_content(first.get("content-type"), msg.body, first.get("content-encoding"))
        except BodyError as e:
            self._charge_read(src, msg.body)
            return self._message_refused(msg, tx, transport, src, conn, e.status, f"{e.phrase} ({e})"[:200],
                                         sender, recipient, e.headers)
        if isinstance(got, NoText):
            self._charge_read(src, msg.body)
            self.stats["messages_unjudged"] += 1
            self.messages_tx.put(tx, UNJUDGED, now)
            return self._message_decided(*args, UNJUDGED)
        if self.draining:                               # (draining.py: a new request to judge gets 503)
            return self._message_refused(msg, tx, transport, src, conn, 503, "Service Unavailable (draining)",
                                         sender, recipient, self._drain_headers())
        units = cost(len(got.text), got.parts, len(msg.body))
        if units > 1:       # its source's share is charged what judging it costs beyond one request (shares.py)
            self.shares.charge(src[0], units - 1)
        if got.sender is not None:
            sender, s_ton = got.sender.digits, got.sender.ton
        if got.recipient is not None:
            recipient, r_ton = got.recipient.digits, got.recipient.ton
        sender, recipient = _loggable(sender), _loggable(recipient)
        m = Message(sender, recipient, got.text, self.clock(), "", "mt", s_ton, r_ton,
                    (normalise_number(sender, s_ton), normalise_number(recipient, r_ton)))
        what = f"{PDU} {got.what}"
        if got.concat is not None and got.concat[1] > 1:    # a part of a concatenated SMS: judged whole (msgparts.py)
            return self._message_part(m, what, got, tx, args, now)
        if self.pipeline.state.shared is not None:      # its counts confirmed by the shared store first
            self.messages_tx.put(tx, PENDING, now)

        def then(v, d):
            self.messages_tx.put(tx, d, time.monotonic())
            self._message_decided(*args, d)
        self._message_judge(m, what, got.binary, then)

    def _charge_read(self, src, body) -> None:
        """A MESSAGE refused for its body or found without text: its source charged for the body read (shares.cost)."""
        units = cost(0, 1, len(body))
        if units > 1:
            self.shares.charge(src[0], units - 1)

    def _message_judge(self, m, what, binary, then, commit=True, late=False, concat=None, reading=None):
        """Judge SMS `m`, write its verdict line (`late`, `concat`: a part of a concatenated message, msgparts.py;
        `reading`: its UCS2 parts read joined by octets too, as the SMPP side's line says) and call
        `then(verdict, decision)`: at once, or under a shared state store once it settled the verdict's counts."""
        t0 = time.perf_counter()
        shared = self.pipeline.state.shared
        if shared is not None:
            shared.begin()
        v = self.pipeline.judge(m, commit)
        us = (time.perf_counter() - t0) * 1e6

        def judged(v):
            self.stats["messages_judged"] += 1
            if self.vlog is not None:
                try:                                    # the log never decides a message's fate
                    self.vlog.write_sms(m, what, v, us, binary, reading, late=late, concat=concat)
                except Exception as e:
                    self._log_failed(e)
            then(v, self._decision(v))
        if shared is not None:
            return shared.settle(self.pipeline, v, judged)
        judged(v)

    def _message_decided(self, msg, dest, branch, transport, src, conn, d, replay=False):
        if type(d) is Refused:
            return self._reply(msg, make_response(msg, d[0], d[1], self._tag(msg), d[2]), transport, src, conn)
        if d.action is _DROP:
            if not replay:
                self.stats["messages_rejected"] += 1
            return self._reject(msg, d, transport, src, conn, True)    # (True: not counted as a rejected call)
        if d.action is _TAG:
            if not replay:
                self.stats["messages_tagged"] += 1
            self._tag_request(msg, d, True)
        self._forward(msg, dest, branch, (transport, src, conn))

    def _message_refused(self, msg, tx, transport, src, conn, status, reason, sender, recipient, extra=()):
        """Answered `status` unjudged (a body that does not parse, a drain): its refusal line, kept for copies."""
        self.stats["messages_refused"] += 1
        d = Refused((status, reason, list(extra)))
        self.messages_tx.put(tx, d, time.monotonic())
        if self.vlog is not None:
            try:                                        # the log never decides a message's fate
                self.vlog.write_refusal(self.clock(), PDU, "", _loggable(sender), _loggable(recipient), status,
                                        reason)
            except Exception as e:
                self._log_failed(e)
        self._reply(msg, make_response(msg, status, reason, self._tag(msg), extra), transport, src, conn)

    def _message_refusal_logged(self, msg, src, status, reason):
        """The refusal line of a MESSAGE the screen answered `status` before judging it (a §16.3 check, a loop, the
        parser, no usable destination, an internal error: proxying._refused_itself), once a transaction (its
        refused_key and CSeq number, in `messages_tx`: a retransmission refused again writes none)."""
        if not self.s.judge_messages or self.vlog is None:
            return
        try:
            key = refused_key(msg)
            tx = digest("MESSAGE refused", key if key is not None else "", cseq_of(msg))
            now = time.monotonic()
            if self.messages_tx.get(tx, now) is not None:
                return
            self.messages_tx.put(tx, True, now)
            first = msg.first_values()
            try:
                sender = _caller_number(msg, first, self._identity_trusted(src[0]))[0]
            except SipParseError:                   # an identity header that does not parse: From's user then
                sender = ""
            self.stats["messages_refused"] += 1
            self.vlog.write_refusal(self.clock(), PDU, "", _loggable(sender), _loggable(_callee(msg, first)), status,
                                    _loggable(reason or ""))
        except Exception as e:                      # the log never decides a request's fate
            self._log_failed(e)
