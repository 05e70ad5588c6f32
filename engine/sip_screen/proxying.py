"""A request's way through the SIP screen, a stateless proxy (RFC 3261 §16): the §16.3 checks, Max-Forwards
(§16.6 step 3), the received/rport stamp, our branch (§16.11) and the loop check (§16.3 step 4: one pass over the
Vias, one hash per Via of ours), the destination (routing.py) -- for a retransmitted INVITE, its CANCEL and the ACK
of its non-2xx final, where the INVITE went (`invites`, forwarding.py) --, then an initial INVITE to the screen
(screening.py) and its decision (`_screened`: a rejection, or a tag and the forward), any other request straight
to forwarding.py. `_in_dialog` forwards what the fast path checked and edited as bytes (fastpath.py; the C pump
takes the plain cases before Python). Mixed into SipScreen; no I/O of its own: every send is forwarding.py's.
"""
from __future__ import annotations

from functools import partial
from time import monotonic

from ..listen import host_ref
from ..verdict import Action
from .checks import check_request
from .calllog import MAX_CSEQS, cseq_of, cseqs_of, refused_key
from .codec import MAX_VIAS, make_response, parse_datagram
from .grammar import parse_via
from .message import SipMessage
from .forwarding import NOT_SENT, UDP_MAX, UNSENT
from .recent import ack_key
from .screening import BUSY, CANCELLED, DRAINING, RETRY_AFTER, Decision
from .settings import BRANCH_PREFIX, TAG_PREFIX

INVITE_TRANSACTION = ("INVITE", "CANCEL", "ACK")     # the methods that share an INVITE's branch (§9.1, §17.1.1.3)
NO_DESTINATION = "no usable destination"             # an INVITE's 503 when no next hop can be used (_request)
OPTIONS_ANSWER = (("Accept", "*/*"), ("Accept-Language", "en"))    # an OPTIONS to the screen itself (_options_here)
_DROP, _TAG = Action.DROP, Action.TAG                # (an enum member read from its class: ~900 instructions a read)


class Proxying:
    """Mixed into SipScreen: what happens to a request once it is parsed (on_message) or edited by the fast path
    (on_datagram)."""

    def _request(self, msg: SipMessage, transport, src, conn):
        if msg.method != "ACK":
            err = check_request(msg)
            if err:
                code, reason, extra = err
                return self._refuse_here(msg, code, transport, src, conn, reason, extra)
        else:
            vals = msg.values("via")
            if not vals or len(vals) > MAX_VIAS:
                self.stats["dropped"] += 1
                return                                          # an ACK is never answered
            msg.vias = [parse_via(v) for v in vals]
        first = msg.first or msg.first_values()             # one pass over the headers, not one per read
        to_tag = msg.tag_in(first.get("to"))
        if msg.method == "ACK" and to_tag.startswith(TAG_PREFIX) and to_tag == self._tag(msg):
            return                                          # ACK for a final response we generated
        if msg.method == "OPTIONS" and not to_tag and self._addressed_to_us(msg):
            # to the screen itself (a softswitch's or a dispatcher's keep-alive: §11), whatever its Max-Forwards:
            # answered here, never sent on to check the next hop instead (§16.3 step 3 lets a proxy answer one with
            # Max-Forwards 0 as its final recipient; addressed elsewhere, that is 483 below)
            return self._options_here(msg, transport, src, conn)
        call_id = first.get("call-id") or ""
        if msg.method == "BYE":
            self._call_ended(call_id, (msg.tag_in(first.get("from")), to_tag))
        # RFC 3261 §18.2.1 / RFC 3581: note where the request really came from
        top = self._stamp_received(msg, src)
        mf = first.get("max-forwards")                      # not edited yet (the Via only was)
        mf = mf.strip() if mf is not None else None
        if mf is not None and not (mf.isascii() and mf.isdigit() and len(mf) <= 10):
            self.stats["dropped"] += 1                      # only an ACK gets here unchecked (never answered)
            return
        if mf is None:
            msg.add("Max-Forwards", "70")                   # §16.6 step 3
        elif (mf := int(mf)) == 0:
            if msg.method == "ACK":
                return
            return self._refuse_here(msg, 483, transport, src, conn)
        else:
            msg.set("Max-Forwards", str(mf - 1))
        # §16.11: the branch is a function of the request's identifying fields, so retransmissions
        # (and the CANCEL / non-2xx ACK of an INVITE) get the same one; CSeq method excluded
        cseq = (first.get("cseq") or "").split()
        pr = ",".join(msg.values("proxy-require")) if "proxy-require" in first else ""
        from_tag = msg.tag_in(first.get("from"))           # (an INVITE's: its verdict and dialog keys' too)
        base = "|".join((msg.uri, call_id, cseq[0] if cseq else "", from_tag, to_tag, pr))
        vias = msg.vias
        branch = self._branch(vias[0].params["branch"] if "branch" in vias[0].params else top, base)
        # §16.3 step 4: a Via of ours whose branch is what we would compute for the request as it
        # was when we forwarded it (the Via below ours on top) means the request looped. One
        # pass, one hash per Via of ours: linear in the number of Vias.
        for i, via in enumerate(vias):
            b = via.params.get("branch", "")
            if b.startswith(BRANCH_PREFIX) and (via.host, via.port or 5060) in self.me:
                below = vias[i + 1] if i + 1 < len(vias) else None
                key = "" if below is None else (below.params["branch"] if "branch" in below.params else below.raw)
                if b == self._branch(key, base):
                    if msg.method == "ACK":             # never answered (§17.1.1.3): dropped, counted
                        self.stats["loop_detected_ack"] += 1
                        return
                    return self._refuse_here(msg, 482, transport, src, conn)
        dest = self._destination(msg, to_tag)
        key, went = None, None
        if msg.method in INVITE_TRANSACTION:
            # where this INVITE transaction's INVITE went, if it did: a retransmission of the INVITE, its
            # CANCEL (§9.1) and the ACK of its non-2xx final (§17.1.1.3) share its branch and go there,
            # over the same transport, hop by hop (an ACK of a 2xx is a new transaction and matches none). One
            # with no branch (RFC 2543) is named as §17.2.3 names it (refused_key): its ACK's To tag, in our branch's
            # key, would send that ACK on a branch of its own. Its ACK of a 2xx (the To tag of the dialog that 2xx
            # made: _dialog_answered) is end to end and matches none, as one with a branch has a new one: it has the
            # INVITE's name whenever the callee's Contact is the Request-URI, and went to the next hop on its branch
            if "branch" in vias[0].params:
                key = ack_key(vias[0].params["branch"], call_id)
            elif msg.method == "ACK" and to_tag and self._dialog_answered(msg, call_id, first, src):
                key = None
            else:
                key = refused_key(msg)
            went = self.invites.d.get(key)                  # (Recent.get without its two calls: no ttl here)
            if went is not None and msg.method == "INVITE" and went[1][0] != branch:
                # the INVITE of another transaction on that branch (a new CSeq: screening._call_keys): a call of
                # its own, sent as one (with the first call's branch, the next hop took it for a retransmission)
                went = None
            if went is not None:
                went = went[1]
                branch, dest = went[0], went[1]
        if went is None and msg.method == "CANCEL" and self._cancel_pending(msg):
            # its INVITE is still being judged (a shared state store confirming its counts): it must not overtake
            # it. Answered here (§9.2, §16.10); the INVITE, once judged, is answered 487 instead of forwarded. Looked
            # at first: a retransmission of an INVITE we answered 503 (that 503 lost) is judged again, and its
            # CANCEL is that judging's, not a CANCEL of our 503 (the INVITE went on to ring after it)
            return self._reply(msg, make_response(msg, 200, None, self._tag(msg)), transport, src, conn)
        if went is None and msg.method != "INVITE" and key is not None and key in self.rejected.d:
            # the CANCEL or ACK of an INVITE the screen answered itself with a rejection (within Timer B): the next
            # hop never saw that INVITE. The CANCEL is answered here (§9.2: its INVITE has its final already), the
            # ACK absorbed -- whatever To tag the rejection carried (an INVITE with one keeps it, §8.2.6.2)
            if msg.method == "ACK":
                return
            return self._reply(msg, make_response(msg, 200, None, self._tag(msg)), transport, src, conn)
        if dest is None:
            self._refused_itself(msg, 503, src, NO_DESTINATION)    # an INVITE's: logged, its CANCEL answered here
            return self._fail(msg, transport, src, conn, NO_DESTINATION)
        if msg.method == "MESSAGE":
            if self.s.judge_messages:                   # an SMS, in a dialog or not (messaging.py)
                return self._screen_message(msg, dest, branch, transport, src, conn)
            if self._message_judged_before(msg, dest, branch, transport, src, conn):
                return                                  # (judged before a reload turned judging off: its answer)
        # An INVITE is judged unless it is a re-INVITE of a call this screen let through and saw
        # answered (its Call-ID in `answered` until the BYE): a To tag alone proves no dialog, and a
        # made-up one must not carry a call past the screen. (A re-INVITE of a call forgotten -- a
        # restart, more than ANSWERED calls up at once -- is judged like a new call. A call is in the tier
        # forgotten first, oldest first, from its INVITE until a 200 answers it (Recent.put_low): calls that fail
        # or get no final at all never push an answered one out.)
        if msg.method == "INVITE" and (not to_tag or not self._dialog_answered(msg, call_id, first, src)):
            if to_tag:
                self.stats["reinvite_unknown_dialog"] += 1
            if self.carried is not None and key is not None:    # judged before a restart (judgedstore.py)
                d = self._carried(key, branch)
                if d is not None:
                    return self._screened(msg, dest, branch, transport, src, conn, key, went is not None, d, True)
            # (a partial, not a lambda: a lambda's variables are cells made at every request through here)
            return self._screen_once(msg, src, partial(self._screened, msg, dest, branch, transport, src, conn, key,
                                                       went is not None), False, None, from_tag)
        self._forward(msg, dest, branch, (transport, src, conn), key, went is not None)

    def _screened(self, msg, dest, branch, transport, src, conn, key, fixed, d, replay=False):
        """An initial INVITE's decision `d` (screening.Decision): reject, or tag and forward. `replay`:
        the call's decision given again to a copy of its INVITE (counted once, at the first); `key`,
        `fixed`: as _forward's."""
        if replay and msg.logged is None:
            msg.logged = True                           # its call's line was written (no 500's line: server.py)
        if d is UNSENT:                                 # a retransmission of one whose forward failed: our 503 again
            warning = [["Warning", f'399 telfilter "{NOT_SENT}"']]
            return self._reply(msg, make_response(msg, 503, None, self._tag(msg), warning), transport, src, conn)
        if d is CANCELLED:                              # cancelled while it was judged (or a copy of it)
            self._remember_refused(key, branch, d, msg, replay)    # (judgedstore.py: what the next process replays)
            return self._reply(msg, make_response(msg, 487, None, self._tag(msg)), transport, src, conn)
        if d is BUSY or d is DRAINING:                  # not judged: too many INVITEs wait, it waited too long, or
            self._remember_refused(key, "", d, msg, True)   # serve is stopping (draining.py; not carried: no branch)
            extra = [["Retry-After", str(RETRY_AFTER)]] if d is BUSY else self._drain_headers()
            return self._reply(msg, make_response(msg, 503, None, self._tag(msg), extra), transport, src, conn)
        if d.action is _DROP:
            self._remember_refused(key, branch, d, msg, replay)
            return self._reject(msg, d, transport, src, conn, replay)
        if d.action is _TAG:
            self._tag_request(msg, d, replay)
        if self.s.record_route:
            msg.insert_before_first("Record-Route", f"<sip:{host_ref(self.host)}:{self.port};transport={transport.lower()};lr>")
        if msg.charge is not None and key is not None:  # given back if it cannot leave: its Decision too
            msg.charge += (key,)
        if fixed and not replay and key is not None:
            # judged anew on a branch that went before (its counts given back, or sent again past Timer B): its
            # entry is this decision's, from now (forwarding._went keeps a copy's: it carried the old one or none)
            self.invites.put(key, (branch, dest, d if d.action else 0), monotonic())
        self._forward(msg, dest, branch, (transport, src, conn), key, fixed, d)

    def _remember_refused(self, key, branch, d, msg, replay=False):
        """An INVITE (`msg`) answered with a final of the screen's own (`d`), sent nowhere: kept in `rejected` under
        its ack_key `key` with our `branch` and the CSeq numbers answered on that branch and Call-ID (calllog.cseq_of:
        each transaction has its verdict-log line), so its CANCEL is answered 200 here (§9.2: the INVITE has its
        final) and the ACK of that final is absorbed whatever To tag it carries (_request, _in_dialog, the C pump);
        the next hop never saw it. A `replay` (a copy given the decision again) keeps the entry of the first, and its
        time (it expires RETRANSMISSIONS after the INVITE was judged) -- from now if it is another transaction on the
        branch (another CSeq number, RFC 3261 §8.1.1.7); one on a branch of its own (a retry, a spiral, one that
        waited for a verdict) gets one. A branch that is not ours ("") keeps it from the next process's memory
        (judgedstore.columns): a decision no judging made."""
        if key is None:
            return
        cseq, old = cseq_of(msg), self.rejected.d.get(key)
        seen = cseqs_of(old[1]) if old is not None else ()
        if cseq in seen:
            if replay:
                return
        else:
            seen = (*seen[1 - MAX_CSEQS:], cseq) if seen else cseq      # (one, as it is: no tuple of its own)
        if replay and old is not None:
            branch, d = old[1][:2]
        self.rejected.put(key, (branch, d, None, seen), monotonic())

    def _unsent_final(self, msg):
        """An INVITE (`msg`, our Via off) answered our 503 for a forward that failed (forwarding._forward_failed): a
        final of the screen's own now (RFC 3261 §9.2), kept as a refusal is (_remember_refused, in `rejected`; branch
        "": not carried over a restart, judgedstore.py), not where it went (`invites`): its CANCEL is answered 200
        here and the ACK of the 503 absorbed whatever To tag it carries. Both went on to the dead next hop (the CANCEL answered 503
        for it; the ACK, when the INVITE had a To tag of its own, sent to a hop that never saw the INVITE)."""
        key = refused_key(msg)
        if key is not None:
            self.invites.pop(key)
            self._remember_refused(key, "", UNSENT, msg, True)

    def _answered_here(self, msg) -> bool:
        """Whether the INVITE transaction of `msg` (a CANCEL, our Via off) has a final of the screen's own (in
        `rejected`, not sent on since: `invites`)."""
        key = refused_key(msg)
        return key is not None and key in self.rejected.d and key not in self.invites.d

    def _refuse_here(self, msg, code, transport, src, conn, reason=None, extra=()):
        """Our own final answer to a request the screen will not forward (a §16.3 check: 400, 416, 420, 483; a loop:
        482); an INVITE's remembered as a refusal and logged (_refused_itself)."""
        resp = make_response(msg, code, reason, self._tag(msg), extra)
        self._refused_itself(msg, code, src, resp.reason)
        return self._reply(msg, resp, transport, src, conn)

    def _refused_itself(self, msg, code, src, reason):
        """`msg` from `src`, answered `code` by the screen before it was judged (_refuse_here, a parse error), for
        `reason`: an INVITE is remembered under its top Via branch and Call-ID (_remember_refused), its line in the
        verdict log first (once a transaction: calllog.py). A copy after a restart is refused the same by the checks:
        nothing to carry. One whose top Via does not parse has no branch its CANCEL could name."""
        if msg.method != "INVITE":
            if msg.method == "MESSAGE":                 # an SMS answered unjudged: its refusal line (messaging.py)
                self._message_refusal_logged(msg, src, code, reason)
            return
        key = refused_key(msg)
        self._refusal_logged(msg, src, code, reason, key)
        if key is not None:
            self._remember_refused(key, "", Decision(Action.DROP, code, (), (), 0.0), msg, True)

    def _options_here(self, msg, transport, src, conn):
        """An OPTIONS addressed to the screen itself (routing._addressed_to_us) answered 200 (§11.2), counted as
        `options_answered`, no verdict: as a proxy it takes any body as it comes (Accept: */*) and writes its
        answers in English; no Allow (§11.2: ambiguous from a proxy, which is method agnostic) and no Supported
        (it requires no extension, and refuses every Proxy-Require: checks.py). While draining, 503 with the drain's
        Retry-After (§11.2: the code an INVITE would get; a softswitch's health check takes the node out at once)."""
        self.stats["options_answered"] += 1
        code, extra = (503, self._drain_headers()) if self.draining else (200, OPTIONS_ANSWER)
        return self._reply(msg, make_response(msg, code, None, self._tag(msg), extra), transport, src, conn)

    def _carried(self, key, branch):
        """The decision of an INVITE judged before a restart whose copy this is (the same ack_key `key` and our
        `branch`, within RETRANSMISSIONS: judgedstore.py), or None; `carried` is let go once none can match."""
        now = monotonic()
        if now > self.carried_until:
            self.carried = None
            return None
        ent = self.carried.get(key, now)
        if ent is None or ent[0] != branch:
            return None
        self.stats["replayed"] += 1
        return ent[1]

    def _in_dialog(self, r, data, src):
        """Forward an in-dialog request the fast path has checked and edited (fastpath.py). An ACK
        with our tag prefix never gets here (on_datagram, the pump: the full parse decides)."""
        if r.method == "BYE":
            self._fast_bye(r.call_id, r.to_tag, r.base, r.before)
        branch, dest = None, r.dest
        if r.method == "ACK" and (self.invites or self.rejected):  # §17.1.1.3, as in _request
            k = ack_key(r.top_branch, r.call_id)
            if k in self.rejected.d and k not in self.invites.d:
                return                                      # the ACK of a rejection of ours: absorbed
            branch, dest = self.invites.get(k, default=(None, dest))[:2]
        branch = branch or self._branch(r.top_branch, r.base)
        host, port, out = dest
        via = f"Via: SIP/2.0/{out} {host_ref(self.host)}:{self.port};branch={branch};rport\r\n".encode()
        on_fail = None if r.method == "ACK" else (
            lambda why: self._fail(parse_datagram(r.before + r.after), "UDP", src, None, why))
        data = r.before + via + r.after
        if on_fail is not None and out == "UDP":        # an ICMP error about it: 503 (unreachable.py)
            self._watch_sent(r.method, branch, data, ("UDP", src, None))
        self._send(data, (host, port), out, on_fail=on_fail)

    def _over_udp_max(self, r) -> bool:
        """Whether an in-dialog request (not an ACK) would leave over UDP_MAX bytes with our Via: the
        full path decides (§18.1.1: TCP first), so the fast path's choice of transport is the same."""
        if r.method == "ACK" or r.dest[2] != "UDP":
            return False
        key = (self.host, self.port)
        if getattr(self, "_via_for", None) != key:      # our Via's size, made once (host/port may be reloaded)
            self._via_for = key
            self._via_len = len(f"Via: SIP/2.0/UDP {host_ref(self.host)}:{self.port};branch={BRANCH_PREFIX};rport\r\n") + 20
        return len(r.before) + len(r.after) + self._via_len > UDP_MAX
