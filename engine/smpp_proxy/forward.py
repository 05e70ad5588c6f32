"""The forward half of the submit path: a judged message goes to the SMSC, its answer comes back.

`_forward` sends the PDU's own bytes (tagged, `_tagged`: the text prefix and the verdict TLV
spliced in, nothing else re-encoded; an ESME's copy of our verdict TLV taken out first,
`_own_tag_removed`) on an SMSC link, and relays the SMSC's resp to the ESME under the ESME's
sequence_number. A message_id the SMSC gives is remembered (`_remember_message_id`: the account
its receipts go to, and what a replace_sm of it needs, msgids.py). An answer that is not the resp
of the command (`_failed_answer`), or comes after the response timeout (`_late_response`), is
counted and logged, never relayed as if it were. When the SMSC refuses the message, its counts
toward advertisers' caps are given back (`_refund`, refund.py).

The submit path (submit.py), the submit_multi path (multi.py), the concatenated one
(submit_concat.py) and replace_sm (relay.py) all come here; this is on the hot path: one closure
per forwarded message, and no method call on the common answer (see `_failed_answer`).
"""
from __future__ import annotations

import logging
import time

from ..numbers import normalise_number
from .codec import (RemoteProtocolError, SmView, append_tlv, decode, encode, encode_prefix, prefix_user_data, view_sm,
                    with_sequence, without_tlv)
from .codec import constants as C
from .codec import pdu as P
from .msgids import MID_MAX, MULTI, PART, SINGLE, id_key
from .multi import multi_dests
from .schedule import pdu_delivery
from .smsc_link import LATE

log = logging.getLogger("telfilter.smpp")

_GENERIC_NACK = C.GENERIC_NACK
_SUBMIT_MULTI_RESP = C.SUBMIT_MULTI | 0x80000000
_perf_counter = time.perf_counter


def tag_value(v) -> bytes:
    """The verdict TLV's value: "score;SYMBOL,SYMBOL" (a tagged submit and a tagged replace_sm carry it)."""
    return f"{v.score:g};{','.join(v.symbols)}".encode()


class ForwardPath:
    """Mixin of `SmppProxy` (through SubmitPath): to the SMSC, and its answer back to the ESME."""

    def _schedule_now(self):
        """The clock in the engine's time zone (`[engine] timezone`), what a relative schedule_delivery_time or
        validity_period counts from: its months are added on that calendar, as the carrier's SMSC does on its
        local one (on UTC's, "1 month" from 01:00 on 1 March in Hanoi, 18:00 on 28 February UTC, was 29 March)."""
        return self.clock().astimezone(self.pipeline.tz)

    def _refund(self, v) -> None:
        """Pipeline.refund at the proxy's clock; never raises into the answer path that calls it."""
        try:
            self.pipeline.refund(v, self.clock().timestamp())
        except Exception:
            log.exception("giving back the caps of a message the SMSC refused failed")

    def _tagged(self, pdu, v, prefix=True, text_reading="auto") -> bytes:
        """The PDU's own bytes with the tag added: the text prefix inserted before the text (after
        any UDH; in short_message, or in message_payload when that carries the text) in the
        message's own encoding, and the vendor TLV appended; nothing else is re-encoded. No prefix
        when the text cannot carry it (binary, an alphabet without its characters, no room)."""
        raw = pdu.raw
        tp = self.settings.tag_prefix
        if prefix and tp and pdu.command_id == C.SUBMIT_SM:
            view = pdu if type(pdu) is SmView else view_sm(raw)
            try:
                reading = view.text(text_reading)[1]      # as it was judged: the account's reading of dc 0 / 1
            except RemoteProtocolError:          # (judged already, so the user data is sound)
                reading = "binary"
            enc = encode_prefix(tp, view.data_coding, reading)
            if enc:
                raw = prefix_user_data(view, enc, reading) or raw
        if self.settings.tag_tlv is not None:
            raw = append_tlv(raw, self.settings.tag_tlv, tag_value(v))
        return raw

    def _own_tag_removed(self, pdu):
        """The PDU without an ESME's copy of our verdict TLV (`tlv_tag`: only the proxy writes it, so an SMSC
        reading it never reads the sender's own verdict); the PDU itself when it carries none."""
        tag = self.settings.tag_tlv
        if type(pdu) is SmView:
            raw = without_tlv(pdu.raw, pdu.tlv_at, tag)
            if raw is pdu.raw:
                return pdu
            out = view_sm(raw)
        elif any(t.tag == tag for t in pdu.tlvs):
            out = decode(encode(P.replace(pdu, tlvs=tuple(t for t in pdu.tlvs if t.tag != tag))))
        else:
            return pdu
        self.stats["esme_tag_tlv_removed"] += 1
        return out

    def _held(self, account: str, n: int) -> None:
        """`account` has n more (or fewer) requests in the SMSC windows (smsc.RESERVE_SHARE; relayed requests too)."""
        held = self.upstream_held
        v = held.get(account, 0) + n
        if v > 0:
            held[account] = v
        else:
            held.pop(account, None)

    def _forward(self, sess, pdu, tag_verdict, prefix=True, link=None, part=False, refund=None, nums=None,
                 judged=None):
        """Send `pdu` (tagged if `tag_verdict`) to the SMSC and relay its answer. `refund`: the message's
        counts toward advertisers' caps (Refund), given back if the SMSC refuses it or it cannot be sent. `nums`:
        its Message.nums when it was judged with them (its recipient's number, noted with its message_id).
        `judged`: the time of the verdict line it goes out on (a submit_multi's: [(recipient, time)] of its
        destinations' lines), what its sms_id line names it by (_id_line)."""
        if link is None:                 # a verdict that came later (shared state store): still a link free?
            link = self._pick_link(account=sess.account.system_id)
        if link is None:
            if refund is not None:
                refund.refused(self)
            return self._upstream_unavailable(sess, pdu)
        if self.settings.tag_tlv is not None and (pdu.tlv_at < len(pdu.raw) if type(pdu) is SmView else pdu.tlvs):
            # (when it has TLVs at all: a view's bytes after its mandatory part; tested inline, a frame less a message)
            pdu = self._own_tag_removed(pdu)
        out = self._tagged(pdu, tag_verdict, prefix, sess.account.text_reading if sess.account else "auto") \
            if tag_verdict is not None else pdu.raw
        esme_seq = pdu.sequence_number
        acct = sess.account.system_id
        held = self.upstream_held
        t0 = _perf_counter()

        def on_resp(resp, status):
            # the one closure a forwarded message costs: the SMSC link's window holds it until
            # the resp (or a timeout, a lost link, the drain) calls it, exactly once
            # (Refund.answered has nothing to do for no answer or for the resp of status 0 to the PDU, the common
            # answer, and is not called for them; a submit_multi_resp of status 0 may list unsuccessful destinations)
            if refund is not None and resp is not None and (resp.command_status or resp.command_id == _SUBMIT_MULTI_RESP
                                                            or resp.command_id != pdu.command_id | 0x80000000):
                refund.answered(self, resp, pdu.command_id)
            if status == LATE:
                return self._late_response(acct, link, resp, pdu, part, refund, nums, judged)
            sess.in_flight -= 1
            v = held.get(acct, 0) - 1               # (self._held(acct, -1), inline: a frame less a message)
            if v > 0:
                held[acct] = v
            else:
                held.pop(acct, None)
            if self.grace_ready:                # a slot free: a held message whose re-seed grace ended goes first
                self.grace_resume()
            if resp is None or resp.command_id != pdu.command_id | 0x80000000:
                sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=esme_seq,
                                                              command_status=self._failed_answer(link, pdu, resp, status)))
            else:
                mid = resp.command_status == 0 and getattr(resp, "message_id", "")
                if mid:
                    # before the resp goes out: from here a crash does not lose the id (idlog.py's spool), so an
                    # ESME that has its resp also gets the receipt after a kill -9 and a restart
                    key = self._remember_message_id(mid, acct, link.id_space, pdu, part, refund, True, nums)
                sess.send_raw(with_sequence(resp.raw, esme_seq) if resp.raw else encode(P.replace(resp, sequence_number=esme_seq)))
                if mid:
                    if self.early_receipts:
                        # after the resp is queued: a receipt that was waiting for this id goes out behind it
                        self._early_receipts_for(key, mid, acct, link.id_space)
                    # the id in the verdict log beside the message's line, written when it was judged (the care
                    # desk's way from an SMSC's message_id to its verdict, `telfilter verdicts --message-id`)
                    if self.settings.smsc_log_message_ids:
                        self._id_line(acct, pdu, mid, part, judged, resp)
                stats = self.stats
                stats["forwarded"] += 1
                stats["added_us_total"] += int((_perf_counter() - t0) * 1e6)
            if not sess.in_flight:              # (owed_nothing's first test, inline: a frame less most answers)
                self.owed_nothing(sess)         # the last answer it was owed: now its unbind_resp
        sess.in_flight += 1
        held[acct] = held.get(acct, 0) + 1          # (self._held(acct, 1), inline)
        link.forward(out, on_resp)

    def _remember_message_id(self, message_id: str, acct: str, space: str = "", pdu=None, part=False,
                             refund=None, answered=True, nums=None) -> str:
        """The account `message_id` was given to, and its note; returns its key in the map. `nums`: the
        message's Message.nums when it was judged with them (its recipient's number: not read again)."""
        # (id_key's common case inline: the shared space, an id of at most MID_MAX characters is its own key)
        key = message_id if not space and len(message_id) <= MID_MAX else id_key(space, message_id)
        ids = self.msgid_account
        if answered:        # the ESME has its resp from now on: its receipt waits a little on another bind (routing.py)
            self.recent_resps.add(key)
        if pdu is None:
            ids.add(key, acct)
        else:
            # what a replace_sm of it needs (_replace): its recipient, source, data_coding, schedule; and for a
            # message counted toward an advertiser's cap (`refund`), the second it was counted at (its delivery:
            # a replace_sm or cancel_sm the SMSC takes gives that count back, relay.py); added and noted in one call
            cid = pdu.command_id
            t = None
            if getattr(pdu, "schedule_delivery_time", ""):         # (most have none: no clock read)
                now = self._schedule_now()
                t = pdu_delivery(pdu, now, self.settings.max_schedule_days)
            at = int(t.timestamp()) if t is not None else 0
            if cid == C.SUBMIT_MULTI:
                ids.add_noted(key, acct, MULTI, pdu.data_coding, pdu.source_addr, at, None)
            elif part:
                ids.add_noted(key, acct, PART, pdu.data_coding, pdu.source_addr, at,
                              normalise_number(pdu.destination_addr, pdu.dest_addr_ton))
            else:
                second = self.pipeline.delivery_charge(refund.verdicts[0]) \
                    if refund is not None and len(refund.verdicts) == 1 else None
                charged = second is not None
                if charged:
                    at = second
                ids.add_noted(key, acct, SINGLE, pdu.data_coding, pdu.source_addr, at,
                              nums[1] if nums is not None else normalise_number(pdu.destination_addr, pdu.dest_addr_ton),
                              charged)
            if t is not None and t > now:
                # an ad scheduled ahead: cancelled if its recipient registers DK DNC before then (dnc_cancel.py)
                index = self._index_scheduled_multi if cid == C.SUBMIT_MULTI else self._index_scheduled
                index(key, space, message_id, acct, pdu, int(t.timestamp()), refund)
        return key

    def _early_receipts_for(self, key: str, message_id: str, acct: str, space: str) -> None:
        """Receipts that came before `message_id`'s resp (held, routing.py) go to `acct` now."""
        if key in self.early_receipts:
            self._early_receipt_matched(key, acct)
        else:
            self._early_twin(message_id, acct, space)

    def _failed_answer(self, link, pdu, resp, status) -> int:
        """0 when `resp` is the SMSC's answer to `pdu`, to be relayed; else the status the ESME gets: the
        link's (a timeout, a lost link) or a generic_nack's, or ESME_RSYSERR when the SMSC answered with
        another command's response (a cancel_sm_resp for a submit_sm: counted and logged, never relayed).
        (_forward tests the common case inline: a method call per forwarded message costs ~50 ns.)"""
        if resp is None or resp.command_id == _GENERIC_NACK:
            return status or C.ESME_RSYSERR
        if resp.command_id == pdu.command_id | 0x80000000:
            return 0
        self.stats["smsc_wrong_response"] += 1
        log.warning("SMSC %s answered seq %d (command 0x%08x) with command 0x%08x: ESME_RSYSERR to the ESME",
                    link.where, resp.sequence_number, pdu.command_id, resp.command_id)
        return C.ESME_RSYSERR

    def _late_response(self, acct, link, resp, pdu, part=False, refund=None, nums=None, judged=None) -> None:
        """The SMSC answered after the response timeout, when the ESME already had
        ESME_RSYSERR. The message may well be delivered: keep its message_id so its receipt
        still reaches the account, and say so in the log (an ESME that resubmitted on 0x08
        has caused a duplicate)."""
        cid = pdu.command_id
        self.stats["late_responses"] += 1
        if resp.command_id != cid | 0x80000000:          # a late generic_nack, or another command's response
            if resp.command_id != _GENERIC_NACK:
                self.stats["smsc_wrong_response"] += 1
            log.warning("late answer from SMSC %s for account %s: command 0x%08x status 0x%02x, not a response to "
                        "command 0x%08x (ESME was answered ESME_RSYSERR)", link.where, acct, resp.command_id,
                        resp.command_status, cid)
            return
        mid = getattr(resp, "message_id", "") if resp.command_status == 0 else ""
        log.warning("late answer from SMSC %s for account %s: status 0x%02x message_id %r (ESME was answered "
                    "ESME_RSYSERR)", link.where, acct, resp.command_status, mid)
        if mid:
            key = self._remember_message_id(mid, acct, link.id_space, pdu, part, refund, False, nums)
            if self.early_receipts:
                self._early_receipts_for(key, mid, acct, link.id_space)
            if self.settings.smsc_log_message_ids:
                self._id_line(acct, pdu, mid, part, judged, resp)

    def _id_line(self, acct: str, pdu, mid: str, part: bool, judged, resp) -> None:
        """The verdict log's sms_id line of a message the SMSC took as `mid`, naming the verdict line it went out on
        by its time (`judged`, as _forward's; a submit_multi's: one a destination, as its verdict lines are). With no
        `judged` (a caller that did not say) none is written: a line that names no verdict would be tied by guess."""
        if judged is None:
            return
        vlog, now = self.vlog, self.clock()
        if type(judged) is not list:
            if pdu.command_id == C.SUBMIT_MULTI and getattr(resp, "unsuccess_smes", ()):
                return                      # its one destination listed unsuccessful: not sent under `mid`
            to = pdu.destination_addr if pdu.command_id != C.SUBMIT_MULTI else multi_dests(pdu)[0]
            return vlog.write_sms_id(now, acct, pdu.source_addr, to, mid, judged, part)
        # a destination the submit_multi_resp lists unsuccessful did not go out under `mid` (each listing once, as
        # refund.Refund.unsuccessful reads them): its line gets no id
        failed = [normalise_number(a) or a for _, _, a, _ in getattr(resp, "unsuccess_smes", ())]
        for dest, at in judged:
            if not dest:                    # (a distribution list's: its members are known only to the SMSC)
                continue
            d = normalise_number(dest) or dest
            if d in failed:
                failed.remove(d)
            else:
                vlog.write_sms_id(now, acct, pdu.source_addr, dest, mid, at, part)
