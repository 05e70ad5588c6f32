"""Screening an initial INVITE: the caller and callee taken from the request (identity.py), the pipeline's
verdict, and what a verdict does to the call (603/608 with the symbols, or a tag header).

The verdict log is written after the verdict is taken, inside its own try: a log that cannot
be written (disk full, a value it cannot encode) is counted and reported, and never changes
what happens to the call. Header values are logged as text; bytes that were not UTF-8 (the
codec keeps them as surrogates so they are forwarded unchanged) are logged as \\xNN escapes.
"""
from __future__ import annotations

import logging
import time
from functools import partial
from typing import NamedTuple

from ..numbers import normalise_number
from ..verdict import Action, Call
from .codec import make_response
from .calllog import _loggable
from .identity import ASSERTING, _callee, _caller, _caller_number, _user_of, caller_key
from .recent import ack_key, dialog_digest, digest
from .responses import same_host
from .settings import BRANCH_PREFIX
from .sources import SourceFilter

log = logging.getLogger("telfilter.sip")
VERDICTS = 131_072              # calls whose decision is kept, for their retransmitted / re-sent INVITEs
VERDICT_MEMORY = 180.0          # seconds: Timer B (64*T1 = 32 s) and a 401/407 round trip fit well within
# seconds an INVITE's retransmissions may come after it (Timer B, 64*T1, RFC 3261 §17.1.1.2), and a next hop keeps
# its transaction to absorb them (Timer H, RFC 6026 Timer L): later, the same top Via branch is another call
RETRANSMISSIONS = 32.0
MAX_CALLER = 128                # a longer caller is no number a call duration is kept for (answered: bytes bound)
PENDING = "pending"             # the call is being judged (a shared state store confirming its counters)
MAX_WAITING = 1_024             # INVITEs (all calls together) waiting for another on their key to be judged
MAX_WAIT = 32.0                 # seconds an INVITE may wait for verdicts (64*T1, Timer B: its caller has given up)


class Decision(NamedTuple):
    """What a verdict means for the call, and all of it a copy of its INVITE needs: kept per call
    in `verdicts`, so a fixed size (symbols are the rule set's own strings, not copies)."""
    action: Action
    code: int                   # the rejection's status code (DROP)
    drop_symbols: tuple         # the Reason header's symbols (DROP)
    symbols: tuple              # the tag header's symbols (TAG)
    score: float


# an enum member read from its class costs ~900 instructions (EnumType's __getattr__ hook): read once here
_DROP = Action.DROP
_decision_of = partial(tuple.__new__, Decision)        # Decision(*t) without its Python-level __new__


CANCELLED = Decision(Action.DROP, 487, (), (), 0.0)     # cancelled while it was judged: answered 487, not sent
BUSY = Decision(Action.DROP, 503, (), (), 0.0)          # not judged: MAX_WAITING wait, or MAX_WAIT waited (503)
RETRY_AFTER = 1                                          # seconds, in BUSY's answer
# the reasons in verdict-log lines: BUSY's and CANCELLED's unjudged (refusal lines), CANCELLED's judged (call_unsent)
TOO_MANY_WAITING, WAITED_TOO_LONG = "too many INVITEs waiting for a verdict", "waited too long for a verdict (Timer B)"
WAIT_FAILED, CANCELLED_WAITING = "internal error while waiting for a verdict", "cancelled while waiting for a verdict"
CANCELLED_JUDGED = "cancelled while judged"
DRAINING = Decision(Action.DROP, 503, (), (), 0.0)      # not judged: serve is stopping (draining.py; known by identity)


def _call_keys(msg, first, called, n, tag) -> tuple[int, int]:
    """A call's two keys, fixed-size digests (the verdict memory stays bounded in bytes whatever a peer writes).
    The verdict key: its Call-ID, From tag, the whole From value (a copy of the call has it byte for byte, RFC 3261
    §8.1.3.5, §22.2: another caller on the same Call-ID and tag gets no verdict of someone else's) and the number
    called (a redirect or a fork to another callee on the same Call-ID and tag is a call of its own: one such INVITE
    to a DNC number was let through on the first callee's verdict). The branch: the top Via's branch (its whole
    value without one) and the CSeq number. A retransmission repeats both (RFC 3261 §17.1.1.2), and so does the
    INVITE's CANCEL (§9.1); an INVITE with the branch of a judged call and a new CSeq number is another request
    (§8.1.1.7: a new branch), no copy (an advertiser's second call to a callee reusing its first call's branch went
    out on that call's verdict, uncounted). `first`: msg.first_values(); `n`: normalise_number(called) (None: not a
    number); `tag`: the From tag (msg.tag_in), None to read it here."""
    frm = first.get("from") or ""
    key = digest(first.get("call-id") or "", msg.tag_in(frm) if tag is None else tag, frm,
                 called if n is None else str(n))
    top, cseq = msg.vias[0], (first.get("cseq") or "").split(None, 1)
    return key, digest(top.params.get("branch") or top.raw, cseq[0] if cseq else "")


class Screening:
    """Mixed into SipScreen: the judging of initial INVITEs."""

    def _screen_once(self, msg, src, then, cancelled=False, since=None, tag=None):
        """Judge a call once: `then(decision, replay)`. An INVITE of a call already judged -- a
        retransmission (the same top Via branch, within RETRANSMISSIONS), or the call tried again after a
        final that asks for it (responses.RETRY_FINALS: re-sent with credentials after a 401/407, RFC 3261 §22.2, redirected
        by a 3xx, failed over after a 5xx; same Call-ID, From and callee, a new branch) -- gets the call's
        decision again without being judged: judging it would count it twice against the caps (the
        ad-call cap would reject the call's own copy) and write a second verdict line. Any other INVITE
        on the same Call-ID, From and callee is a new call, judged (an advertiser reusing one Call-ID
        for call after call was counted once). A copy arriving while the call is still being judged is
        dropped: the first copy's answer is on its way. Another INVITE on the key while it is judged (a new
        branch: over TCP nobody retransmits it) waits for that verdict, then is taken as if it came after it
        (_wait_for_judging); `cancelled`: a CANCEL came while it waited; `since`: when it began to wait; `tag`: its From
        tag, when proxying._request read it (~1,800 instructions a read)."""
        first = msg.first or msg.first_values()         # (check_request filled it: no frame)
        ruri = msg.ruri                                 # (_callee's answer when the Request-URI has a user: no frame)
        called = ruri.user if ruri is not None else ""
        if not called:
            called = _callee(msg, first)
        called_n = normalise_number(called)
        if tag is None:                                 # (once: the key's and _screen's)
            tag = msg.tag_in(first.get("from") or "")
        key, branch = _call_keys(msg, first, called, called_n, tag)
        now = time.monotonic()
        tx = msg.tx = digest(key, branch)               # (a forward that fails keeps our 503 there: forwarding.py)
        done = self.transactions.get(tx, now)
        if done is not None:
            # a retransmission of an INVITE transaction judged already, whatever INVITE of the call came since: two
            # at once on one Call-ID, From and callee (a fork upstream to two gateways, a merged request) each keep
            # their own answer, and their interleaved copies are not judged again at every retransmission
            self.stats["replayed"] += 1
            then(done, True)
            return
        known = self.verdicts.get(key, now)
        if known is not None:
            d, judged_branch = known[0], known[1]
            if d is PENDING:
                if branch != judged_branch:
                    return self._wait_for_judging(key, branch, msg, src, then, cancelled, since)
                self.stats["replayed"] += 1
                return
            if self._spiral(msg, first, src):
                self.stats["replayed"] += 1             # (its retransmissions are copies too)
                self.transactions.put(tx, d, now)
                then(d, True)
                return
            # (the same branch as the call judged, RETRANSMISSIONS after it -- `transactions` forgot it --, is no
            # copy: an advertiser sending its answered, ended call's INVITE again byte for byte rang the callee
            # again for 3 minutes, the next hop long done with that transaction, without meeting the caps)
            call_id = first.get("call-id") or ""
            retry = retry_key = self.retries.pop(digest(call_id))
            if retry is not None:
                # only when tried again as the caller it was judged as (the retry of a plain number's challenged
                # call asserting an advertiser's number rang the callee at 23:00 on the plain number's verdict,
                # the advertiser's call never judged nor counted): as another, it is a call of its own
                trusted = self._identity_trusted(src[0])
                retry = retry == caller_key(_loggable(_caller(msg, first, trusted)[0]))
            if retry:
                self.stats["replayed"] += 1
                # (cancelled: its retransmissions are answered 487 too, never sent -- and so after a restart: its
                # first answer, kept for the next process as a judged one's, proxying._screened)
                first_answer = cancelled and d.action is not _DROP
                if first_answer:
                    d = CANCELLED
                self.verdicts.put(key, (d, branch), now)    # the retry's retransmissions are copies too
                self.transactions.put(tx, d, now)
                msg.replay_of = (digest(call_id), retry_key)    # (forwarding._forward_failed)
                then(d, not first_answer)
                return
            self.stats["call_id_reused"] += 1
        if self.draining:                               # a call to judge while serve stops: 503, tried elsewhere
            return self._drain_refused(msg, src, then, cancelled, tx)
        self.verdicts.put(key, (PENDING, branch, cancelled), now)

        try:
            self._screen(msg, src, partial(self._judged, key, branch, tx, msg, then), called, called_n, tag)
        except Exception:                               # a bug of ours (this INVITE is answered 500 by its caller):
            ent = self.verdicts.get(key)                # the key is not left being judged, nothing waits on it
            if ent is not None and ent[0] is PENDING:
                self.verdicts.pop(key)
                for w in self._waiting_pop(key):
                    self._unjudged(w, WAIT_FAILED)
            raise

    def _judged(self, key, branch, tx, msg, then, v):
        """_screen_once's `then`, a partial (a closure's variables were cells made at every INVITE): verdict `v`."""
        d = self._decision(v)
        ent = self.verdicts.get(key)
        if ent is not None and ent[0] is PENDING and ent[2] and d.action is not _DROP:
            # a CANCEL came while it was judged (_cancel_pending): not sent, its counts given back, the INVITE
            # (and any copy of it) answered 487
            self.stats["cancelled_while_judged"] += 1
            if v.charged:
                self._give_back((key, v, tx))
            d = CANCELLED
            self._unsent_logged(msg, 487, CANCELLED_JUDGED)    # (its line says what it was judged: not sent)
        now = time.monotonic()
        self.verdicts.put(key, (d, branch), now)
        self.transactions.put(tx, d, now)
        # (rejected or cancelled: no dialog will exist, its entry in `answered` leaves -- _screen's `unsent`)
        if d.action is not _DROP and v.charged:   # counted toward an advertiser's caps: given back if it
            msg.charge = (key, v, tx)                   # cannot leave (forwarding._forward_failed)
        waiting = self._waiting_pop(key) if self.waiting else ()    # (none waits for most: no frame)
        try:
            then(d, False)
        finally:
            for w in waiting:                           # as if each came now, in the order they came
                try:
                    if time.monotonic() - w[4] >= MAX_WAIT:     # its caller has given up (_wait_for_judging)
                        self.stats["waiting_refused"] += 1
                        self._unjudged(w, WAITED_TOO_LONG)
                        continue
                    self._screen_once(*w)               # (msg, src, then, cancelled, since)
                except Exception:                       # a bug of ours: answered all the same, the rest taken
                    self.stats["internal_errors"] += 1
                    log.exception("judging an INVITE that waited for another's verdict failed")
                    self._unjudged(w, WAIT_FAILED)

    def _spiral(self, msg, first, src) -> bool:
        """Whether the INVITE `msg` is one this screen sent coming back through it (RFC 3261 §16.3 step 4: a spiral,
        its Request-URI changed -- a next hop's number-portability routing, `;npdi;rn=`, or the number's E.164 form):
        the same call, whose verdict it gets again. A Via of ours with, under it, the Via of an INVITE sent with that
        branch (the forwarded-INVITE memory), from where that INVITE was sent or `answer_networks`: a caller adding a
        Via of ours to its next call is judged as ever. (It was judged again, and an ad call's spiral was refused
        AD_CALL_FREQUENCY_CAP by the call's own count: found by the SIP counting probe.)"""
        vias = msg.vias
        for i in range(1, len(vias) - 1):
            via, below = vias[i], vias[i + 1]
            b = via.params.get("branch", "")
            if b.startswith(BRANCH_PREFIX) and (via.host, via.port or 5060) in self.me and "branch" in below.params:
                went = self.invites.get(ack_key(below.params["branch"], first.get("call-id") or ""))
                return went is not None and went[0] == b and (same_host(self._resolve(went[1][0]), src[0])
                                                               or self._answers_from(src[0]))
        return False

    def _give_back(self, charge):
        """The call judged under `charge` = (verdict key, Verdict, transaction key[, its INVITE's ack_key]) was counted
        toward an advertiser's caps and could not be forwarded (answered 503 by us): its counts are given back
        (Pipeline.refund) and its decision forgotten -- in `invites` too, so no restart carries it (judgedstore.py)
        --, so the caller's retry is judged, and counted, again."""
        key, v, tx = charge[:3]
        if len(charge) > 3 and (went := self.invites.d.get(charge[3])) is not None:
            self.invites.put(charge[3], went[1][:2], went[0])   # not carried to the next process (judgedstore.py)
        ent = self.verdicts.get(key)
        if ent is not None and digest(key, ent[1]) == tx:    # (another call on the key judged since keeps its own)
            self.verdicts.pop(key)
        self.transactions.pop(tx)
        self.stats["uncounted_unsent"] += 1
        try:
            self.pipeline.refund(v, self.clock().timestamp())
        except Exception:
            log.exception("giving back the caps of a call that could not be forwarded failed")

    def _decision(self, v) -> Decision:
        # (v.deciding_hit, v.symbols and the DROP hits' symbols in one pass over the hits, no generator; the Decision
        # made as the tuple it is, without NamedTuple's Python __new__)
        action, hits = v.action, v.hits
        d, drop = None, []
        for h in hits:
            if d is None and h.action is action:
                d = h
            if h.action is _DROP:
                drop.append(h.symbol)
        symbols = tuple([h.symbol for h in hits])
        return _decision_of((action, d.sip_code if d is not None and d.sip_code else self.s.default_drop_code,
                             tuple(drop) or symbols, symbols, v.score))

    def _screen(self, msg, src, then, callee=None, callee_n=None, tag=None):
        """Judge an initial INVITE and call `then(verdict)` (at once, or once a shared state
        store has confirmed its counter commits). `callee`: the number it calls, when _screen_once read it, and
        `callee_n` its normalise_number: the call's MessageContext is given both numbers (Call.nums), not reading
        them again; `tag`: its From tag, read there too (its dialog keys' here: ~1,800 instructions a read)."""
        first = msg.first or msg.first_values()         # as received: From is edited only after this
        # (every peer trusted, the default: _identity_trusted's answer without its two frames)
        f = self.trust
        trusted = f.every and f.networks is self.s.trusted_identity_networks or self._identity_trusted(src[0])
        if not trusted and not first.keys().isdisjoint(ASSERTING):     # (no generator: `first` no cell)
            self.stats["identity_untrusted"] += 1       # read as From only (_caller)
        raw, from_user, caller_n = _caller_number(msg, first, trusted)  # (the From user read once: dialog_parties too)
        if callee is None:
            callee = _callee(msg, first)
        if callee_n is None:                            # (not given, or no number: read, cheap for the second)
            callee_n = normalise_number(callee)
        # (_loggable's answer for ASCII text, the common case, without its frame)
        caller = raw if raw.isascii() else _loggable(raw)
        logged = callee if callee.isascii() else _loggable(callee)
        # (a value _loggable escapes is no number, escaped or not: the numbers go on with the text they were read from)
        nums = (caller_n, callee_n) if caller is raw and logged is callee else None
        callee = logged
        clock = self.clock                              # (self.clock() is a LOAD_METHOD that cannot specialise)
        call = Call(caller, callee, clock(), f"{src[0]}:{src[1]}", nums)     # (by position: verdict.Call)
        dk = self.dialog_key
        k = msg.call_key = dialog_digest(dk, first.get("call-id") or "")
        ent, mine = self.answered.get(k), None
        # (an answered call on this Call-ID keeps its entry: another INVITE on it must not erase its duration)
        if len(caller) <= MAX_CALLER and (ent is None or ent[1] is None):
            # (caller, answer time, the dialog's parties: its From tag and the From and To users, which a
            # re-INVITE from either side must carry -- identity.dialog_parties --, the address the INVITE
            # is sent to: only its answer counts, responses._invite_final; set when it leaves; the caller's
            # side, caller_side, which a re-INVITE in the dialog the 200 made keeps whatever else changed). In the tier
            # forgotten first until its 200 promotes it: INVITEs that never get a final (a next hop that
            # black-holes them) cannot push the answered calls out of the bound (recent.Recent.put_low)
            # (identity.dialog_parties' and caller_side's digests, the From user and tag read once for both, without
            # their frames)
            frm = first.get("from")
            if from_user is None:
                from_user = _user_of(msg, frm or "")
            if tag is None:
                tag = msg.tag_in(frm)
            mine = (caller, None, dialog_digest(dk, tag, from_user, _user_of(msg, first.get("to") or "")), None,
                    dialog_digest(dk, tag, from_user))
            self.answered.put_low(k, mine)
        t0 = time.perf_counter()
        shared = self.pipeline.state.shared
        try:
            if shared is not None:
                shared.begin()
            v = self.pipeline.judge(call)
            us = (time.perf_counter() - t0) * 1e6
            self.stats["screened"] += 1
            if shared is not None:
                # a shared state store (engine/state/redis_store.py) confirms the counter commits
                # first: a call over a cap shared with other nodes comes back dropped
                if mine is not None:                        # (a partial made here: no cells, no closure)
                    then = partial(self._settled_unsent, then, k, mine, ent)
                return shared.settle(self.pipeline, v, self._logged(then, call, msg, caller, callee, us))
            v = self._log_call(call, msg, caller, callee, v, us)
        except BaseException:
            # judging failed (_screen_once answers 500): an INVITE never sent gives its entry back, as one rejected
            # does, so a sibling's unanswered entry it took the place of is not lost
            if mine is not None and self.answered.get(k) is mine:
                self._answered_back(k, ent)
            raise
        if mine is None:
            return then(v)
        # judged at once (no shared store): _settled_unsent's work without its partial and frame (~4,000 instructions
        # a call, instrbench)
        try:
            then(v)
        finally:
            if self.answered.get(k) is mine:            # not sent
                self._answered_back(k, ent)

    def _logged(self, then, call, msg, caller, callee, us):
        """`then` for a verdict settled later, its line logged first (a closure made here, not in _screen: its
        variables would be cells made at every INVITE)."""
        return lambda v: then(self._log_call(call, msg, caller, callee, v, us))

    def _settled_unsent(self, then, k, mine, before, v):
        """`then` (as _screen's partial of this, for a verdict a shared store settles later; one judged at once, _screen
        does the same itself) for an INVITE whose entry `mine` took the place of `before` (None, or another INVITE's on
        the Call-ID `k` not answered) in `answered`: once its verdict `v` is acted on, if it was not sent (rejected, or
        cancelled while judged; _forward stores where a sent one went) its entry leaves and `before` is back. No
        dialog will exist for it, and a sibling on its Call-ID let through (a fork upstream, to the same callee or
        another) keeps its own: a rejected sibling popped it, the call's 200 was then no answer and its session refresh
        was judged as a new call, refused by the call's own count (found by the SIP counting probe)."""
        try:
            then(v)
        finally:
            if self.answered.get(k) is mine:
                self._answered_back(k, before)

    def _answered_back(self, k, before):
        """An INVITE not sent gives its Call-ID's entry in `answered` back: `before` (None: no entry) is back."""
        if before is None:
            self.answered.pop(k)
        else:
            self.answered.put_low(k, before)

    def _identity_trusted(self, host: str) -> bool:
        """Whether `host`, an INVITE's previous hop, is in sip.toml's trusted_identity_networks (RFC 3325 Spec(T)):
        its identity headers are read (_caller). Checked as accept_networks is (sources.SourceFilter, built again
        when the list is another: a reload; every peer trusted, the default, costs no address parse; the others'
        answers cached by address, bounded)."""
        f = self.trust
        if f.networks is not self.s.trusted_identity_networks:
            f = self.trust = SourceFilter(self.s.trusted_identity_networks)
        return f.accepts(host)

    def _reject(self, msg, d, transport, src, conn, replay=False):
        if not replay:
            self.stats["rejected"] += 1
        extra = [["Reason", f'SIP ;cause={d.code} ;text="{" ".join(d.drop_symbols)}"']]
        if self.s.remedy_url:           # "" leaves it out: `<>` is no URI (RFC 3261 §20.9)
            extra.append(["Call-Info", f"<{self.s.remedy_url}>;purpose=info"])
        self._reply(msg, make_response(msg, d.code, None, self._tag(msg), extra), transport, src, conn)

    def _tag_request(self, msg, d, replay=False):
        if not replay:
            self.stats["tagged"] += 1
        if self.s.tag_header:
            msg.add(self.s.tag_header, f"{d.score:g}; symbols={','.join(d.symbols)}")
        if self.s.display_prefix:
            for h in msg.headers:
                if h[2] == "from":
                    na = msg.name_addr(h[1])
                    # the display name as parsed (a quoted one without its quotes, its escapes kept: "\"VIP\""),
                    # the URI and parameters written again (a '<' inside the quotes is not the URI's)
                    tail = f"<{na.uri}>" + "".join(f";{k}={v}" if v else f";{k}" for k, v in na.params.items())
                    h[1] = f'"{self.s.display_prefix}{na.display}" {tail}'
                    break
