"""The submit path: judge each submitted message (or each concatenated message once: submit_concat.py),
then drop it, forward it byte for byte, or forward it tagged.

A message is judged as it will be delivered: at its schedule_delivery_time when that is later than now
(SMPP 3.4 §7.1.1, absolute or relative; one that is not a time is refused ESME_RINVSCHED; in datagram or forward
mode, which the SMSC does not store, at once: schedule.stored), so the hour
windows and the 24 h caps apply at delivery. validity_period is only checked (ESME_RINVEXPIRY when it is not a
time or ends at or before the delivery: schedule.validity_problem): it bounds how long the SMSC keeps trying,
which no rule is about. A submit_multi is one message for the SMSC (taken whole or
refused whole): every destination is judged before any is counted (`_judge_multi`). A replace_sm is
judged as the message it turns the stored one into (`_replace`: its recipient, data_coding and schedule
are kept with the message_id, msgids.py). A message let through goes on in forward.py (to the SMSC, tagged
or not, and its answer back to the ESME)."""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from ..numbers import normalise_number
from ..verdict import Action, Message
from .codec import (RemoteProtocolError, SmView, Tlv, encode, pdu_concat, pdu_user_data, read_text, readable_text,
                    with_sequence)
from .codec.udh import pdu_check_user_data
from .codec import constants as C
from .codec import pdu as P
from .accounts import ONE_SEGMENT_PDU, message_cost
from .forward import ForwardPath
from .multi import multi_dest_tons, multi_dests
from .refund import Refund
from .schedule import TooFarAhead, delivery_time, stored, validity_problem
from .submit_grace import GraceSlots, Settling

if TYPE_CHECKING:
    from .esme import EsmeSession


_DROP, _TAG = Action.DROP, Action.TAG          # (enum member lookups cost a descriptor call)
_SUBMIT_SM, _DATA_SM = C.SUBMIT_SM, C.DATA_SM
_perf_counter = time.perf_counter
_STAT_KEY = {a: f"verdict_{a}" for a in Action}
_PDU_NAME = {c: P.name_of(c) for c in (C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM)}
# A submit_multi is judged once per recipient: its text times its recipients may be at most this many times
# max_message_chars (254 recipients of 2,000 characters pass; 254 of a 60 KB payload, ~1.3 s of judging, not)
MULTI_WORK = 8
# A silent drop's REJECTD receipt that goes over another bind than the submit came on (an ESME bound as a
# transmitter + receiver pair) waits this long after the submit_sm_resp, as an SMSC's receipt comes after its
# answer: such an ESME reads its binds apart (Kannel: a thread each) and matches a receipt against the ids its
# transmitter has stored; one read before its resp is acknowledged and thrown away. On the submit's own bind TCP
# keeps the order: sent at once.
REJECTED_RECEIPT_OTHER_BIND_DELAY = 1.0


_ERROR_RESPS: dict = {}


def _error_resp(command_id: int, seq: int, status: int) -> bytes:
    """The bytes of `command_id`'s resp with an error status (as the codec encodes it), from a
    kept template with the sequence_number put in (statuses are few; the kept set is bounded)."""
    t = _ERROR_RESPS.get((command_id, status))
    if t is None:
        t = encode(P.response_class(command_id)(sequence_number=0, command_status=status))
        if len(_ERROR_RESPS) < 1024:
            _ERROR_RESPS[command_id, status] = t
    return with_sequence(t, seq)


def local_id_prefix() -> str:
    """How this process's local message_ids (silent drops) start: L, its start time in ms and its pid, in hex, so
    no later process (a restart, another --workers process) gives an id out again. An ESME keeps an id until its
    receipt comes, across our restarts (Kannel's DLR store): a reused one had a new message's REJECTD receipt taken
    as the final state of the earlier message that had the id."""
    return f"L{time.time_ns() // 1_000_000:X}{os.getpid():X}-"


def _ignore(ok) -> None:
    pass


class Refusal(Exception):
    """A message that cannot be judged as the SMSC would deliver it: refused with `status`."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


# what data_coding 0 and 1 mean when read literally (SMPP 3.4 §5.2.19); another reading is logged
_LITERAL_READING = {0x00: "gsm", 0x01: "ascii"}


def message_content(pdu, reading: str = "auto", data_coding: int | None = None) -> tuple[str, bool, str | None]:
    """(text to judge, binary?) of a submit_sm / submit_multi / data_sm / deliver_sm / replace_sm,
    as the SMSC will deliver it: message_payload if present, else short_message, without its UDH.
    Binary content is judged on the URLs readable in it (codec.readable_text: WAP push SI/SL and
    plain ASCII URLs) and on everything that is not text. Raises Refusal, with the codec's status,
    when what would be delivered is ambiguous (two message_payload TLVs, both short_message and
    message_payload) or the UDH / SAR parameters are malformed. Works on a lean `SmView` (the
    submit_sm hot path: no TLV objects are built) and on the full dataclasses alike. `data_coding`: the
    stored message's, for a replace_sm (which carries none)."""
    try:
        if type(pdu) is SmView:
            ud = pdu.checked_user_data()
        else:
            pdu_check_user_data(pdu)
            ud = pdu_user_data(pdu)
        # `reading`: the sender's setting for data_coding 0 / 1 (codec.text.read_text)
        dc = getattr(pdu, "data_coding", 0) if data_coding is None else data_coding
        text, used = read_text(dc, ud, reading)
    except RemoteProtocolError as e:
        raise Refusal(e.status, str(e)) from None
    if text is not None:
        # the third item names the reading when it is not the literal one (GSM 03.38 bytes sent
        # under data_coding 1, Latin-1 bytes under 0 or 1), so the verdict line says what was judged
        return text, False, (used if used != _LITERAL_READING.get(dc, used) else None)
    return readable_text(ud) or "", True, None


class SubmitPath(ForwardPath, GraceSlots):
    """Mixin of `SmppProxy`: the ESME -> SMSC direction."""

    def _submit(self, sess: EsmeSession, pdu):
        # (no closures in here: a function that builds one pays for its cells on every call;
        # the paths that need callbacks are _judge's and _judge_multi's)
        cid = pdu.command_id
        acct = sess.account
        try:
            text, binary, reading = message_content(pdu, acct.text_reading if acct else "auto")
        except Refusal as r:
            return self._refuse(sess, pdu, r.status, r.reason)
        when = None                         # judged now; else at its scheduled delivery (data_sm has none)
        if cid != _DATA_SM and pdu.schedule_delivery_time:
            try:
                when = self._delivery_time(pdu.schedule_delivery_time)
            except Refusal as r:
                return self._refuse(sess, pdu, r.status, r.reason)
            if when is not None and not stored(pdu):
                when = None                 # datagram / forward mode: the SMSC sends it now or never
        if cid != _DATA_SM and pdu.validity_period:
            try:
                self._check_validity(pdu.validity_period, when)
            except Refusal as r:
                return self._refuse(sess, pdu, r.status, r.reason)
        if cid == _SUBMIT_SM or cid == C.DATA_SM:
            # concatenation is told by a UDH (esm_class UDHI) or by SAR TLVs; checked above (a data_sm's
            # parts, SAR's own use, are put together like a submit_sm's)
            ci = pdu.concat if type(pdu) is SmView else pdu_concat(pdu)
            if ci is not None and ci[1] > 1 and 1 <= ci[2] <= ci[1]:
                return self._concat_part(sess, pdu, ci, text, binary)     # bounded whole there
            recipient, r_ton = pdu.destination_addr, pdu.dest_addr_ton
        elif cid == C.SUBMIT_MULTI:
            dests = multi_dests(pdu)
            if dests and dests[-1] == "" and self.settings.distribution_lists == "refuse":
                # a distribution list's members are known only to the SMSC
                return self._refuse(sess, pdu, C.ESME_RCNTSUBDL, "submit_multi to a distribution list")
            ci = pdu_concat(pdu)
            if ci is not None and ci[1] > 1:
                # the handset joins a message's parts whichever PDU carried them: put together and judged
                # whole, as a submit_sm's (judged part by part, a link split across two parts went out)
                return self._concat_part(sess, pdu, ci, text, binary, dests)
            if len(dests) != 1:                 # (one recipient: bounded below, as a submit_sm)
                if self._multi_too_long([(sess, pdu)], text, dests):
                    return
                if self._link_to_judge(sess.account.system_id) is None:     # as below: throttled unjudged
                    return self._upstream_unavailable(sess, pdu)
                self._charge(sess, pdu)
                return self._judge_multi(sess, pdu, dests, text, binary, reading, when)
            recipient, r_ton = dests[0], multi_dest_tons(pdu)[0]
        else:
            recipient, r_ton = pdu.destination_addr, pdu.dest_addr_ton
        if len(text) > self.settings.max_message_chars:
            return self._refuse_too_long(sess, pdu, text)
        # Where it would go is settled before it is judged: a message no link can take now gets
        # ESME_RTHROTTLED unjudged, so the ESME's retries are not counted against it (a flood or
        # frequency cap it never got past) and nothing is logged that did not happen.
        # (_link_to_judge's and _judged_answer's work inline for the common case, no shared state store: two
        # frames less a message)
        shared = self.pipeline.state.shared
        link = self._pick_link(1, None, sess.account.system_id) if shared is None else \
            self._link_to_judge(sess.account.system_id)     # (arguments by position on the hot path: keywords
        # cost ~0.1 µs a call)
        if link is None:
            return self._upstream_unavailable(sess, pdu)
        if len(pdu.raw) > ONE_SEGMENT_PDU:
            self._charge(sess, pdu)
        if shared is not None:
            return self._judge(sess, pdu.source_addr, recipient, text, _PDU_NAME[cid], binary, reading, when,
                               then=lambda v, at: self._judged_answer(sess, pdu, v, at), s_ton=pdu.source_addr_ton,
                               r_ton=r_ton)
        # the common case, judged at once (nothing runs in between: the link can still take it). Its numbers read
        # here (Message.nums): the recipient's is also the message-id map's note when it is forwarded
        s_ton = pdu.source_addr_ton
        nums = (normalise_number(pdu.source_addr, s_ton), normalise_number(recipient, r_ton))
        v, at = self._judge_now(sess, pdu.source_addr, recipient, text, _PDU_NAME[cid], binary, reading, when,
                                s_ton, r_ton, nums)
        if v.action is _DROP:
            return self._drop(sess, (pdu,), v)
        return self._forward(sess, pdu, v if v.action is _TAG else None, True, link, False,
                             Refund((v,), 1) if v.charged else None, nums, at)     # (Refund.of, inline)

    def _link_to_judge(self, account: str):
        """The link a message about to be judged can go to now, or None (ESME_RTHROTTLED unjudged). With a shared
        state store it is forwarded only once the server has settled its counts, so the messages settling hold a
        window slot each: looked at only before, a burst over the windows (or what a Redis pause piled up) was
        judged whole, logged and counted, and what the windows could not take was then throttled, its retry
        logged and counted again."""
        link = self._pick_link(account=account)
        if link is None or self.pipeline.state.shared is None:
            return link
        # (held messages whose re-seed grace ended take the free slots first: submit_grace.py)
        return link if self.settling + len(self.grace_ready) < self.settle_room() else None

    def _multi_too_long(self, parts, text: str, dests) -> bool:
        """True, with every (session, PDU) of `parts` refused ESME_RINVMSGLEN, when a submit_multi's text is over
        max_message_chars or times its destinations (each is judged) over MULTI_WORK times that."""
        limit = self.settings.max_message_chars
        if len(text) <= limit and len(text) * len(dests) <= MULTI_WORK * limit:
            return False
        for s, p in parts:
            if not s.closed:
                self._refuse_too_long(s, p, text, len(dests))
        return True

    def _delivery_time(self, schedule: str):
        """When a message with this schedule_delivery_time is to be delivered, if later than now (else None:
        at once). Refusal ESME_RINVSCHED when it is not a time or is over max_schedule_days ahead."""
        try:
            return delivery_time(schedule, self._schedule_now(), self.settings.max_schedule_days)
        except ValueError as e:
            self.stats["schedule_invalid"] += 1
            sep = " " if isinstance(e, TooFarAhead) else ": "
            raise Refusal(C.ESME_RINVSCHED, f"schedule_delivery_time {schedule!r}{sep}{e}") from None

    def _check_validity(self, validity: str, when) -> None:
        """Refusal ESME_RINVEXPIRY when a validity_period is not a time or ends at or before the message's delivery
        (`when`, None: now; schedule.validity_problem)."""
        why = validity_problem(validity, self._schedule_now(), when)
        if why is not None:
            self.stats["validity_invalid"] += 1
            raise Refusal(C.ESME_RINVEXPIRY, f"validity_period {validity!r}: {why}")

    def _refuse_too_long(self, sess, pdu, text: str, recipients: int = 1) -> None:
        """ESME_RINVMSGLEN for a text over max_message_chars, or a submit_multi whose text times recipients
        (each is judged) is over MULTI_WORK times that."""
        limit = self.settings.max_message_chars
        why = (f"text of {len(text)} characters, over max_message_chars ({limit})" if len(text) > limit else
               f"submit_multi of {len(text)} characters to {recipients} recipients (each is judged): over "
               f"{MULTI_WORK} x max_message_chars")
        self._refuse(sess, pdu, C.ESME_RINVMSGLEN, why)

    def _charge(self, sess, pdu) -> None:
        """The rest of what a message costs the account's rate (dispatch._admit_message took one token), once it
        is going to be judged or held: a PDU refused unjudged costs one, however long."""
        n = message_cost(pdu) - 1
        b = self.buckets.get(sess.account.system_id)
        if n > 0 and b is not None:
            b.charge(n)

    def _upstream_unavailable(self, sess, pdu) -> None:
        self.stats["upstream_unavailable"] += 1
        sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                      command_status=C.ESME_RTHROTTLED))

    def _judged_answer(self, sess, pdu, v, at, link=None) -> None:
        # (_submit does the same inline for a message judged at once; `at`: its line's time, as _judge_now's)
        if v.action is _DROP:
            return self._drop(sess, (pdu,), v)
        return self._forward(sess, pdu, v if v.action is _TAG else None, link=link, refund=Refund.of(v), judged=at)

    def _message(self, sess, sender, recipient, text, when=None, s_ton=0, r_ton=0, nums=None) -> Message:
        """The Message a submitted SMS is judged as: at `when` (its scheduled delivery) when given; `s_ton`,
        `r_ton`: the type of number its addresses came with (numbers.normalise_number); `nums`: Message.nums."""
        now = self.clock()
        acct = sess.account
        msg = Message(sender, recipient, text, now if when is None else when, acct.system_id if acct else "", "mt",
                      s_ton, r_ton, nums)
        if when is not None:
            msg.submitted = now
        return msg

    def _refuse(self, sess, pdu, status: int, reason: str) -> None:
        """Answer a message we will not forward because it cannot be judged; logged like a verdict."""
        self.stats["refused"] += 1
        self.vlog.write_refusal(self.clock(), P.name_of(pdu.command_id), sess.account.system_id if sess.account else "",
                                getattr(pdu, "source_addr", ""), getattr(pdu, "destination_addr", ""), status, reason)
        sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number, command_status=status))

    def _judge_now(self, sess, sender, recipient, text, what, binary=False, reading=None, when=None, s_ton=0,
                   r_ton=0, nums=None, commit=True, counted=None, late=False, concat=None, replacing=None):
        """Judge and log one message when no shared state store is in use (its verdict is final
        at once); `_judge` is the general form. `when`: its scheduled delivery, later than now; `s_ton`,
        `r_ton`: its addresses' types of number; `nums`: their normalise_number when read already
        (Message.nums); `commit` false: nothing counted (Pipeline.judge);
        `counted`, `late`, `concat`: a concatenated message's, `replacing`: a replace_sm's (`_judge`).
        Returns the verdict and its line's time (`"ts"`: when it was judged, a scheduled one's too), what the
        sms_id line of its message_id names it by (`"judged"`, forward.py _id_line)."""
        t0 = _perf_counter()
        acct = sess.account
        if when is None:
            msg = Message(sender, recipient, text, self.clock(), acct.system_id if acct else "", "mt", s_ton, r_ton,
                          nums)
        else:
            msg = self._message(sess, sender, recipient, text, when, s_ton, r_ton, nums)
        msg.counted = counted
        msg.replacing = replacing
        v = self.pipeline.judge(msg, commit)
        us = (_perf_counter() - t0) * 1e6
        self.stats[_STAT_KEY[v.action]] += 1
        self.vlog.write_sms(msg, what, v, us, binary, reading, None, late, concat)     # (by position)
        sub = msg.submitted
        return v, msg.time if sub is None else sub

    def _judge(self, sess, sender, recipient, text, what, binary=False, reading=None, when=None, *, then, s_ton=0,
               r_ton=0, commit=True, counted=None, late=False, concat=None, replacing=None):
        """Judge one message and call `then(verdict, at)` (`at`: its line's time, as _judge_now returns it): at
        once, or, with a shared state store
        (engine/state/redis_store.py), once the server has confirmed the counter commits
        (an allowed ad whose shared cap is full comes back dropped). `commit` false: nothing counted.
        `counted`: Message.counted (a concatenated message judged before its parts all came, or a late part of
        one); `late`: a late part, its verdict line says so (its message was logged when it was judged); `concat`:
        the identity (concat.concat_id) of a concatenated message that may have late parts, or of a late part's
        message, named on its line so the report ties the two; `replacing`: Message.replacing (a replace_sm's
        replacement of a message counted toward the advertiser caps, relay.py)."""
        shared = self.pipeline.state.shared
        if shared is None:
            return then(*self._judge_now(sess, sender, recipient, text, what, binary, reading, when, s_ton, r_ton,
                                         None, commit, counted, late, concat, replacing))
        t0 = _perf_counter()
        msg = self._message(sess, sender, recipient, text, when, s_ton, r_ton)
        msg.counted = counted
        msg.replacing = replacing
        shared.begin()
        v = self.pipeline.judge(msg, commit)
        us = (_perf_counter() - t0) * 1e6

        def judged(v):
            sess.in_flight -= 1
            self.settling -= 1
            self.stats[_STAT_KEY[v.action]] += 1
            self.vlog.write_sms(msg, what, v, us, binary, reading, late=late, concat=concat)
            # forwarded (in flight again) or answered now
            then(v, msg.time if msg.submitted is None else msg.submitted)
            self.grace_resume()                          # (its slot, if it was dropped: the next held message's)
            self.owed_nothing(sess)                  # an unbind that came while the verdict was settling
        sess.in_flight += 1                              # owed an answer until the shared store settles it
        self.settling += 1
        shared.settle(self.pipeline, v, Settling(self, judged))     # (its slot given back while a grace holds it)

    def _drop(self, sess, pdus, v):
        silent_symbols = self.settings.silent_symbols
        silent = bool(silent_symbols) and any(h.symbol in silent_symbols for h in v.hits if h.action is _DROP)
        for pdu in pdus:
            if not silent:
                sess.send_raw(_error_resp(pdu.command_id, pdu.sequence_number, v.smpp_status))
                continue
            resp = P.response_class(pdu.command_id)
            mid = self.local_ids.issue(sess.account.system_id, self.clock())    # (its query_sm answered: local_ids.py)
            sess.send_pdu(resp(sequence_number=pdu.sequence_number, message_id=mid))
            if self.settings.rejected_receipt and getattr(pdu, "registered_delivery", 0) & 0x03:
                self._rejected_receipt(sess, pdu, mid)

    def _rejected_receipt(self, sess, pdu, mid):
        """The REJECTD receipt(s) of a message dropped silently: one per recipient, as the SMSC would send them
        (a submit_multi's SME destinations; a distribution list's members are the SMSC's to know). Its dates are on
        the clock of `[engine] timezone`, as the carrier's SMSC dates its own receipts (in UTC, 7 hours behind them)."""
        now = self._schedule_now().strftime("%y%m%d%H%M")
        body = f"id:{mid} sub:001 dlvrd:000 submit date:{now} done date:{now} stat:REJECTD err:000 text:".encode()
        if pdu.command_id == C.SUBMIT_MULTI:
            dests = [d[1:4] for d in pdu.dest_addresses if d[0] == 1]
        else:
            dests = [(pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr)]
        target = sess if sess.state.can_receive and not sess.closed else None
        drs = [P.DeliverSm(source_addr_ton=ton, source_addr_npi=npi, source_addr=addr,
                           dest_addr_ton=pdu.source_addr_ton, dest_addr_npi=pdu.source_addr_npi,
                           destination_addr=pdu.source_addr, esm_class=C.ESM_TYPE_DELIVERY_RECEIPT,
                           short_message=body, tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid.encode() + b"\x00"),
                                                     Tlv(C.TAG_MESSAGE_STATE, b"\x08")))
               for ton, npi, addr in dests]
        acct = sess.account.system_id
        if target is not None:
            for dr in drs:
                self._deliver_receipt(acct, dr, target=target, on_done=_ignore)
            return
        key = object()
        handle = self.loop.call_later(REJECTED_RECEIPT_OTHER_BIND_DELAY, self._rejected_receipts_due, key)
        self.rejected_receipts_waiting[key] = (handle, acct, drs)

    def _rejected_receipts_due(self, key) -> None:
        """REJECTD receipts whose wait after their resp is over (or a stop: all of them now, while the
        receivers are bound; one with no receiver is held, on disk before the stop ends)."""
        handle, acct, drs = self.rejected_receipts_waiting.pop(key)
        handle.cancel()
        for dr in drs:
            self._deliver_receipt(acct, dr, on_done=_ignore)

    def _rejected_receipts_now(self) -> None:
        for key in list(self.rejected_receipts_waiting):
            self._rejected_receipts_due(key)
