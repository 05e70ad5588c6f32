"""Short-code replies: the confirmation of a 5656 command or report (mo.py) sent to its subscriber as a submit_sm
of ours, on the MO's own link when it has room, else another; capped per subscriber an hour (reply_cap.py). One
longer than an SMS goes as concatenated parts (reply_parts.py), or under `[shortcode] long_replies = "payload"` whole
in message_payload, as parts if the SMSC refuses that TLV."""
from __future__ import annotations

import logging
import random
import time
from collections import deque
from functools import partial

from ..rules.shortcode import detail_channel
from .accounts import REPLY_CHANNEL
from .codec import Tlv, encode_text
from .codec import constants as C
from .codec import pdu as P
from .reply_cap import ReplyCap
from .reply_parts import Reply, concatenated, one_sms
from .smsc_link import LATE

log = logging.getLogger("telfilter.smpp")
# Short-code replies (the confirmation of a DNC command or report) waiting for room upstream: a reply
# whose MO's link has no room goes on another link, else waits here (~300 bytes a submit_sm, one a part of a
# reply in parts: 3 MB at the bound) and is sent as room comes; the oldest go first, and one over the bound is
# counted and logged, never silently lost. A submit_sm the SMSC refuses with a temporary status is sent again,
# REPLY_TRIES in all.
MAX_REPLIES_WAITING = 10_000
REPLY_TRIES = 3
REPLY_RETRY = 0.25      # seconds between attempts to send waiting replies
TON_ALPHANUMERIC = 5    # SMPP 3.4 §5.2.5 type_of_number
_REPLY_TEMPORARY = (C.ESME_RTHROTTLED, C.ESME_RMSGQFUL, C.ESME_RSYSERR, C.ESME_RX_T_APPN)
# a reply in message_payload refused with one of these: the SMSC takes no such TLV in a submit_sm (0xC0-0xC2, 0xC4
# name the optional parameters), or read the empty short_message beside it, or holds less than the reply
# (RINVMSGLEN): sent again as parts, which each fit one SMS. Not 0xC3 (a parameter it wants and we did not send:
# parts would miss it too)
_PAYLOAD_REFUSED = (C.ESME_RINVOPTPARSTREAM, C.ESME_ROPTPARNOTALLWD, C.ESME_RINVPARLEN, C.ESME_RINVOPTPARAMVAL,
                    C.ESME_RINVMSGLEN)


class ShortcodeReplies:
    """Mixin of `SmppProxy` (through routing.DeliveryRouting)."""

    _replies = None             # short-code replies waiting for room upstream: deque of (submit_sm, attempt, Reply)
    _reply_ref = None           # the UDH reference of the last reply sent in parts (one octet, per reply)
    _payload_refused_said = float("-inf")
    _cap = None                 # replies one subscriber gets an hour (reply_cap.py), made at the first
    _capped_said = float("-inf")    # when a capped reply was last said in the log
    _reply_timer = None

    def _confirm_shortcode(self, link, mo, v):
        if not self.settings.confirm_shortcode or not v.hits:
            return
        hit = v.hits[0]
        reply = self.settings.shortcode_replies.get(hit.symbol)
        if not reply:
            return
        if "{channel}" in reply:        # (a DNC reply only: config_checks.py) named as its hit names it
            reply = reply.replace("{channel}", REPLY_CHANNEL[detail_channel(hit.detail) or "SV"])
        if not mo.source_addr.strip() or mo.source_addr_ton == TON_ALPHANUMERIC:
            # nobody to answer: no address, or an alphanumeric one (a brandname) no SMS can reach, which an SMSC
            # refuses with a warning each time; the command is carried out, unconfirmed, counted
            self.stats["shortcode_replies_unaddressable"] += 1
            return
        if not self._reply_cap().allow(mo.source_addr, time.monotonic()):
            return self._reply_capped(mo.source_addr)
        dc, body = encode_text(reply)
        mt = P.SubmitSm(source_addr_ton=0, source_addr_npi=0, source_addr=self.pipeline.settings.shortcode,
                        dest_addr_ton=mo.source_addr_ton, dest_addr_npi=mo.source_addr_npi,
                        destination_addr=mo.source_addr, data_coding=dc, short_message=body)
        if one_sms(dc, body):
            mts, r = [mt], Reply(mo.source_addr, 1)
        elif self.settings.shortcode_long_replies == "payload":
            # SMPP 3.4 §5.3.2.32: the SMSC splits it (short_message over one SMS, up to 254, many refuse)
            mts, r = [P.replace(mt, short_message=b"", tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, body),))], \
                Reply(mo.source_addr, 1, payload=True)
        else:
            try:
                mts = self._reply_parts(mt, body)
            except ValueError as e:         # (config_checks.py refuses such a reply in smpp.toml)
                self.stats["shortcode_replies_failed"] += 1
                log.warning("short-code reply to %r not sent: %s ([shortcode.replies])", mo.source_addr, e)
                return
            r = Reply(mo.source_addr, len(mts))
        for one in mts:
            self._reply_waits(one, 1, r)
        self._send_replies(link)

    def _reply_parts(self, mt, body: bytes) -> list:
        """`body` as concatenated submit_sm like `mt` (reply_parts.py), with a new reference (one a reply: the handset
        puts together the parts of one originator with one reference). ValueError over 255 parts."""
        ref = self._reply_ref = random.randrange(256) if self._reply_ref is None else (self._reply_ref + 1) & 0xFF
        # SMPP 3.4 §5.2.12: esm_class bit 6 = UDHI, short_message opens with a UDH
        return [P.replace(mt, esm_class=mt.esm_class | C.ESM_UDHI, short_message=sm, tlvs=())
                for sm in concatenated(mt.data_coding, body, ref)]

    def _reply_waits(self, mt, tries: int, r: Reply) -> None:
        """One submit_sm of reply `r` waits for room upstream; over the bound the oldest waiting is let go (its reply
        counted dropped, its other parts not sent)."""
        if self._replies is None:
            self._replies = deque()
        q = self._replies
        if len(q) >= MAX_REPLIES_WAITING:
            _, _, old = q.popleft()
            if not old.given_up:
                log.warning("short-code reply to %r not sent: %d replies already wait for room upstream",
                            old.destination, MAX_REPLIES_WAITING)
            old.went_wrong("dropped")
            self._reply_settled(old)
        q.append((mt, tries, r))

    def _reply_settled(self, r: Reply) -> None:
        """One submit_sm of `r` answered, or not to be sent: the reply counted once, when its last one is."""
        r.left -= 1
        if not r.left:
            self.stats["shortcode_replies_" + (r.outcome or "sent")] += 1

    def _reply_cap(self) -> ReplyCap:
        cap = self._cap
        if cap is None or cap.per_hour != self.settings.shortcode_replies_per_hour:     # (a reload may change it)
            cap = self._cap = ReplyCap(self.settings.shortcode_replies_per_hour)
        return cap

    def _reply_capped(self, sender: str) -> None:
        """A 5656 command carried out unconfirmed: its sender had its replies of the hour (reply_cap.py)."""
        self.stats["shortcode_replies_capped"] += 1
        now = time.monotonic()
        if now - self._capped_said >= 60:
            self._capped_said = now
            log.warning("short-code replies to %r not sent: %d this hour already ([shortcode] replies_per_hour; "
                        "its commands are carried out; %d such replies so far)", sender,
                        self.settings.shortcode_replies_per_hour, self.stats["shortcode_replies_capped"])

    def _send_replies(self, prefer=None) -> None:
        """Send waiting short-code replies while a link has room (the MO's own link first)."""
        q = self._replies
        while q:
            if q[0][2].given_up:        # a part of a reply refused or dropped: the rest cannot make it whole
                self._reply_settled(q.popleft()[2])
                continue
            link = prefer if prefer is not None and prefer.available else self._pick_link()
            if link is None:
                break
            mt, tries, r = q.popleft()
            link.request(mt, partial(self._reply_answered, mt, tries, r))
        if q and self._reply_timer is None:
            self._reply_timer = self.loop.call_later(REPLY_RETRY, self._reply_tick)

    def _reply_tick(self) -> None:
        self._reply_timer = None
        self._send_replies()

    def _reply_answered(self, mt, tries: int, r: Reply, resp, status: int) -> None:
        part = f" (part {mt.short_message[5]} of {mt.short_message[4]})" if mt.esm_class & C.ESM_UDHI else ""
        if status == LATE:              # the answer after the response timeout (counted unanswered then)
            if not r.late:
                r.late = True
                self.stats["shortcode_replies_late"] += 1
            return
        if resp is not None and status == 0:
            pass
        elif resp is None:
            # no answer in time (or the link went): it may well be delivered, and a second copy would
            # be a second SMS to the subscriber: not sent again, counted
            r.went_wrong("unanswered")
            log.warning("short-code reply to %r%s: no answer from the SMSC (not sent again)", mt.destination_addr, part)
        elif status in _REPLY_TEMPORARY and tries < REPLY_TRIES:
            self.stats["shortcode_replies_retried"] += 1
            self._reply_waits(mt, tries + 1, r)
            if self._reply_timer is None:       # again after REPLY_RETRY, not at once
                self._reply_timer = self.loop.call_later(REPLY_RETRY, self._reply_tick)
            return
        elif r.payload and status in _PAYLOAD_REFUSED:
            return self._reply_payload_refused(mt, r, status)
        else:
            if not r.given_up:
                log.warning("short-code reply to %r%s refused by the SMSC (status 0x%02X, attempt %d)",
                            mt.destination_addr, part, status, tries)
            r.went_wrong("failed")
        self._reply_settled(r)
        self._send_replies()

    def _reply_payload_refused(self, mt, r: Reply, status: int) -> None:
        """A reply in message_payload the SMSC refused as it takes no such TLV: sent again as parts, once."""
        self.stats["shortcode_replies_payload_refused"] += 1
        r.payload = False
        body = next(t.value for t in mt.tlvs if t.tag == C.TAG_MESSAGE_PAYLOAD)
        try:
            mts = self._reply_parts(P.replace(mt, tlvs=()), body)
        except ValueError as e:
            log.warning("short-code reply to %r not sent: %s ([shortcode.replies])", mt.destination_addr, e)
            r.went_wrong("failed")
            self._reply_settled(r)
            return self._send_replies()
        now = time.monotonic()
        if now - self._payload_refused_said >= 60:
            self._payload_refused_said = now
            log.warning("short-code reply to %r refused in message_payload by the SMSC (status 0x%02X): sent again "
                        "as %d concatenated parts (%d such replies so far; [shortcode] long_replies = \"parts\" "
                        "sends them so at once)", mt.destination_addr, status, len(mts),
                        self.stats["shortcode_replies_payload_refused"])
        r.left += len(mts) - 1          # the refused submit_sm settled, its parts to come
        for one in mts:
            self._reply_waits(one, 1, r)
        self._send_replies()
