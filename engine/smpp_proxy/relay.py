"""query_sm / cancel_sm / replace_sm: relayed to the SMSC that issued the message_id, for the account that
sent the message; a replace_sm judged as the message it turns the stored one into (`_replace`)."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from ..numbers import format_number
from ..verdict import Action, Message
from .codec import constants as C
from .codec import pdu as P
from .codec import append_tlv, with_sequence
from .forward import tag_value
from .msgids import MULTI, SINGLE, id_key, source_fp
from .refund import Refund
from .smsc_link import LATE
from .submit import Refusal, message_content

log = logging.getLogger("telfilter.smpp")

_DROP = Action.DROP
_SAR_TAGS = (C.TAG_SAR_MSG_REF_NUM, C.TAG_SAR_TOTAL_SEGMENTS, C.TAG_SAR_SEGMENT_SEQNUM)
_REPLACE_SM_NAME = P.name_of(C.REPLACE_SM)          # (the verdict log names PDUs as the codec does)


class RelayPath:
    """Mixin of `SmppProxy`: requests about a message already forwarded."""

    def _relay(self, sess, pdu, done=None, refund=None, raw=None, unknown=None):
        """query_sm / cancel_sm / replace_sm: to a link of the id space that issued the message_id, and
        only for the account that sent the message (another account's id -> ESME_RINVMSGID). `done(key)`
        after the SMSC's success (in time or late), with the id's key in the map; `refund` (a replace_sm's
        Refund) given back when the SMSC refuses it or no link can take it."""
        mid = getattr(pdu, "message_id", "")
        spaces = self.id_spaces()           # (configured: a link binding again still has its ids, smsc.py)
        owner = space = None
        for sp in spaces:
            owner = self.msgid_account.get(id_key(sp, mid))
            if owner is not None:
                space = sp
                break
        if owner is not None and owner != sess.account.system_id:
            self.stats["msgid_not_owned"] += 1
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=C.ESME_RINVMSGID))
        if owner is None and unknown is not None:
            self.stats["query_unverified_refused" if pdu.command_id == C.QUERY_SM else "cancel_unverified_refused"] += 1
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=unknown))
        acct = sess.account.system_id
        link = self._pick_link(space=space if len(spaces) > 1 else None, account=acct)
        if link is None:
            if refund is not None:
                refund.refused(self)
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=C.ESME_RTHROTTLED))
        esme_seq = pdu.sequence_number

        def on_resp(resp, status):
            if refund is not None:
                refund.answered(self, resp, pdu.command_id)
            if status == LATE:
                # the ESME had its error already; the SMSC did what it asked all the same: the note follows
                if done is not None and resp is not None and resp.command_id == pdu.command_id | 0x80000000 \
                        and resp.command_status == 0:
                    done(id_key(space or "", mid))
                return
            sess.in_flight -= 1
            self._held(acct, -1)
            failed = self._failed_answer(link, pdu, resp, status)
            if failed:
                sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=esme_seq, command_status=failed))
            else:
                sess.send_raw(with_sequence(resp.raw, esme_seq))
                if done is not None and resp.command_status == 0:
                    done(id_key(space or "", mid))
            self.owed_nothing(sess)             # owed before its unbind_resp, like a forwarded submit
        sess.in_flight += 1
        self._held(acct, 1)
        link.request(pdu.raw if raw is None else raw, on_resp)

    def _replace(self, sess, pdu):
        """replace_sm: new text (and perhaps a new schedule) for a message the SMSC holds, judged as the message
        it becomes: to the recipient, from the source and in the data_coding of the submit we forwarded under
        that message_id (kept with it, msgids.py), at its delivery time (the replace_sm's
        schedule_delivery_time, else the stored message's; at once if that is past), and with the count of the
        message it replaces left out of the advertiser caps counted at delivery (Message.replacing: a correction
        of the day's third ad is no fourth; that count stays until the SMSC takes it). Refused, never judged
        blind: another account's id ESME_RINVMSGID (as query_sm / cancel_sm); an id this process did not
        forward or has forgotten (past the map's bound, another `--workers` process's, from before an
        upgrade), an id of a submit_multi or of one part of a concatenated message (the message it becomes
        is not known from one text), or a source_addr other than the message's: ESME_RREPLACEFAIL."""
        mid = pdu.message_id
        ids = self.msgid_account
        owner = sent = key = space = None
        for space in self.id_spaces():
            key = id_key(space, mid)
            owner = ids.get(key)
            if owner is not None:
                sent = ids.sent(key)
                break
        if owner is not None and owner != sess.account.system_id:
            self.stats["msgid_not_owned"] += 1
            return sess.send_pdu(P.ReplaceSmResp(sequence_number=pdu.sequence_number,
                                                 command_status=C.ESME_RINVMSGID))
        why = None
        if sent is None:
            why = (f"message_id {mid!r} not forwarded by this process or forgotten: its recipient is unknown, the "
                   "replacement cannot be judged")
        elif sent.kind != SINGLE:
            why = (f"message_id {mid!r} is " + ("a submit_multi's (several recipients)" if sent.kind == MULTI else
                   "one part of a concatenated message") + ": the message the replacement makes cannot be judged")
        elif source_fp(pdu.source_addr) != sent.source_fp:
            why = f"source_addr {pdu.source_addr!r} is not the one message_id {mid!r} was submitted from"
        if why is not None:
            self.stats["replace_refused"] += 1
            return self._refuse(sess, pdu, C.ESME_RREPLACEFAIL, why)
        if any(t.tag in _SAR_TAGS for t in pdu.tlvs or ()):
            # (SMPP 3.4 gives replace_sm no TLVs: an SMSC that honoured these would make the replacement, judged
            # alone, a part of another message -- found by a conformance probe)
            return self._refuse(sess, pdu, C.ESME_ROPTPARNOTALLWD, "replace_sm with SAR TLVs: a replacement cannot "
                                                                   "become a part of a concatenated message")
        try:
            text, binary, reading = message_content(pdu, sess.account.text_reading if sess.account else "auto",
                                                    sent.data_coding)
            if pdu.schedule_delivery_time:          # a new schedule; NULL keeps the stored one (§4.10.1)
                when = self._delivery_time(pdu.schedule_delivery_time)
            else:
                when = _later(sent.delivery, self.clock())
            if pdu.validity_period:                 # NULL keeps the stored one (§4.10.1), not known here
                self._check_validity(pdu.validity_period, when)
        except Refusal as r:
            return self._refuse(sess, pdu, r.status, r.reason)
        recipient = format_number(sent.destination) if sent.destination else ""
        # as a submit_sm: throttled unjudged when no link of its id space can take it now (judged first, each one a
        # full window refused was judged, counted and given back), and paid for in SMS segments once it is judged
        if self._pick_link(space=space if len(self.id_spaces()) > 1 else None, account=sess.account.system_id) is None:
            return self._upstream_unavailable(sess, pdu)
        self._charge(sess, pdu)

        def judged(v, _at):             # (a replace_sm_resp has no message_id: no sms_id line names its line)
            if v.action is _DROP:
                return sess.send_pdu(P.ReplaceSmResp(sequence_number=pdu.sequence_number,
                                                     command_status=v.smpp_status))

            def replaced(key):
                # the SMSC took it: the message it replaced will not be delivered, its count goes (the
                # replacement's stands); a later replace_sm without a schedule keeps this one's
                pending = self.scheduled.discard(key)       # (dnc_cancel.py) indexed again if still an ad ahead
                if when is not None and self.pipeline.counted_at_delivery(v):
                    due = int(when.timestamp())
                    if pending is not None:
                        self._index_retimed(pending._replace(due=due))     # (earlier or later: due then)
                    elif due > self.clock().timestamp():      # no ad ahead until now: it is one from now on
                        self._index_replaced(key, space, mid, sess.account.system_id, pdu, due, sent.destination)
                cur = ids.sent(key)             # what the SMSC replaced: the note now, not at the request
                if cur is not None and cur.source_fp == sent.source_fp:
                    self._uncharge(sess.account.system_id, pdu.source_addr, recipient, cur, pdu.source_addr_ton)
                second = self.pipeline.delivery_charge(v)
                at = second if second is not None else int(when.timestamp()) if when is not None else 0
                ids.note(key, sent.kind, sent.data_coding, pdu.source_addr, at, sent.destination, second is not None)
            # what goes up: without an ESME's copy of our verdict TLV, with ours when it is tagged
            tag = self.settings.tag_tlv
            raw = self._own_tag_removed(pdu).raw if tag is not None and pdu.tlvs else pdu.raw
            if v.action is Action.TAG and tag is not None:
                raw = append_tlv(raw, tag, tag_value(v))
            return self._relay(sess, pdu, replaced, Refund.of(v), raw)
        # judged and counted as the message it becomes (given back if the SMSC refuses the replace_sm), without
        # the count of the message it replaces (one that has one: its note says so); once the SMSC has taken it,
        # that count is given back (a count at delivery: the advertiser caps) -- never fewer counted than may
        # still be delivered (judged uncounted, a care message replaced by an ad would pass every cap; the old
        # count given back before the SMSC's answer, an ad sent meanwhile would take its place while the SMSC
        # may still deliver the old one)
        replacing = None
        if sent.charged:
            replacing = self.pipeline.replacing(
                _noted(sess.account.system_id, pdu.source_addr, recipient, sent, pdu.source_addr_ton), sent.delivery)
        # (the recipient is written "+E164": its type of number says nothing more)
        return self._judge(sess, pdu.source_addr, recipient, text, _REPLACE_SM_NAME, binary, reading, when,
                           then=judged, s_ton=pdu.source_addr_ton, replacing=replacing)

    def _cancel(self, sess, pdu):
        """cancel_sm: relayed (_relay); once the SMSC has cancelled a message this process forwarded as one
        submit_sm, the count it took toward an advertiser's cap is given back (one named by message_id, from its
        source_addr; one cancelled by source and destination alone, a submit_multi's or a part's id, or another
        `--workers` process's keep their counts). The note is read when the SMSC answers, under the id space
        the request went to: an answer before it (a replace_sm, another cancel_sm in flight) may have used it.
        One not tied to a message of the account (no message_id, or an id not forwarded here) is refused unless
        [cancel_sm] unverified = "relay"."""
        verify = self.settings.cancel_unverified == "refuse"
        if not pdu.message_id:
            if verify:
                # every message from this source to this destination: the SMSC sees one system_id (ours), so it
                # would cancel other accounts' messages too ([cancel_sm] unverified = "relay" sends it)
                self.stats["cancel_unverified_refused"] += 1
                return sess.send_pdu(P.CancelSmResp(sequence_number=pdu.sequence_number,
                                                    command_status=C.ESME_RCANCELFAIL))
            return self._relay(sess, pdu)
        acct = sess.account.system_id

        def cancelled(key):
            self._scheduled_gone(key)
            self._cancel_taken(key, acct, pdu.source_addr, pdu.source_addr_ton)
        # an id this process did not forward (or has forgotten) may be another account's: refused as unknown
        return self._relay(sess, pdu, cancelled, unknown=C.ESME_RINVMSGID if verify else None)

    def _cancel_taken(self, key: str, acct: str, source: str, source_ton: int) -> None:
        """The SMSC cancelled the message of `key` (an ESME's cancel_sm, or ours: dnc_cancel.py), sent by `acct`
        from `source`: the count it took toward an advertiser's cap given back, and its note says so."""
        ids = self.msgid_account
        cur = ids.sent(key) if ids.get(key) == acct else None
        if cur is None or not cur.charged or cur.source_fp != source_fp(source):
            return
        self._uncharge(acct, source, format_number(cur.destination) if cur.destination else "", cur, source_ton)
        ids.note(key, cur.kind, cur.data_coding, source, 0, cur.destination)

    def _uncharge(self, account: str, source: str, recipient: str, sent, source_ton: int = 0) -> None:
        """Give back the advertiser-cap count of the message `sent` notes (Pipeline.uncharge), sent by `account`;
        never raises into the answer path. `source_ton`: the type of number `source` came with."""
        if not sent.charged:
            return
        try:
            self.pipeline.uncharge(_noted(account, source, recipient, sent, source_ton), sent.delivery)
            self.stats["counts_given_back"] += 1
        except Exception:
            log.exception("giving back the cap count of a replaced or cancelled message failed")


def _noted(account: str, source: str, recipient: str, sent, source_ton: int) -> Message:
    """The message a note (`sent`, msgids.Sent) names, as far as the advertiser caps' keys are made of it: sent by
    `account` from `source` (of type of number `source_ton`) to `recipient`, at the second it was counted at."""
    return Message(source, recipient, "", datetime.fromtimestamp(sent.delivery, timezone.utc), account, "mt",
                   sender_ton=source_ton)


def _later(delivery: int, now):
    """A stored delivery time (Unix seconds, 0 = at once) as an aware datetime in now's zone, if later than now."""
    if delivery and delivery > now.timestamp():
        return datetime.fromtimestamp(delivery, now.tzinfo)
    return None
