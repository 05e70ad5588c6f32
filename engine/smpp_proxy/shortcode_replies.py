"""Short-code replies: the confirmation of a 5656 command or report (mo.py) sent to its subscriber as a submit_sm
of ours, on the MO's own link when it has room, else another; capped per subscriber an hour (reply_cap.py)."""
from __future__ import annotations

import logging
import time
from collections import deque
from functools import partial

from ..rules.shortcode import detail_channel
from .accounts import REPLY_CHANNEL
from .codec import Tlv, encode_text
from .codec import constants as C
from .codec import pdu as P
from .reply_cap import ReplyCap
from .smsc_link import LATE

log = logging.getLogger("telfilter.smpp")
# Short-code replies (the confirmation of a DNC command or report) waiting for room upstream: a reply
# whose MO's link has no room goes on another link, else waits here (~300 bytes each: 3 MB at the bound)
# and is sent as room comes; the oldest go first, and one over the bound is counted and logged, never
# silently lost. A reply the SMSC refuses with a temporary status is sent again, REPLY_TRIES in all.
MAX_REPLIES_WAITING = 10_000
REPLY_TRIES = 3
REPLY_RETRY = 0.25      # seconds between attempts to send waiting replies
TON_ALPHANUMERIC = 5    # SMPP 3.4 §5.2.5 type_of_number
_REPLY_TEMPORARY = (C.ESME_RTHROTTLED, C.ESME_RMSGQFUL, C.ESME_RSYSERR, C.ESME_RX_T_APPN)


class ShortcodeReplies:
    """Mixin of `SmppProxy` (through routing.DeliveryRouting)."""

    _replies = None             # short-code replies waiting for room upstream: deque of (submit_sm, attempt)
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
        # SMPP 3.4 §5.2.21: short_message holds 254 octets; a longer reply (an operator's 128+ characters with
        # diacritics, UCS-2) goes whole in message_payload (§5.3.2.32): it was cut there, mid-sentence
        sm, tlvs = (body, ()) if len(body) <= 254 else (b"", (Tlv(C.TAG_MESSAGE_PAYLOAD, body),))
        mt = P.SubmitSm(source_addr_ton=0, source_addr_npi=0, source_addr=self.pipeline.settings.shortcode,
                        dest_addr_ton=mo.source_addr_ton, dest_addr_npi=mo.source_addr_npi,
                        destination_addr=mo.source_addr, data_coding=dc, short_message=sm, tlvs=tlvs)
        if self._replies is None:
            self._replies = deque()
        if len(self._replies) >= MAX_REPLIES_WAITING:
            old = self._replies.popleft()
            self.stats["shortcode_replies_dropped"] += 1
            log.warning("short-code reply to %r not sent: %d replies already wait for room upstream",
                        old[0].destination_addr, MAX_REPLIES_WAITING)
        self._replies.append((mt, 1))
        self._send_replies(link)

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
            link = prefer if prefer is not None and prefer.available else self._pick_link()
            if link is None:
                break
            mt, tries = q.popleft()
            link.request(mt, partial(self._reply_answered, mt, tries))
        if q and self._reply_timer is None:
            self._reply_timer = self.loop.call_later(REPLY_RETRY, self._reply_tick)

    def _reply_tick(self) -> None:
        self._reply_timer = None
        self._send_replies()

    def _reply_answered(self, mt, tries: int, resp, status: int) -> None:
        if status == LATE:              # the answer after the response timeout (counted unanswered then)
            self.stats["shortcode_replies_late"] += 1
            return
        if resp is not None and status == 0:
            self.stats["shortcode_replies_sent"] += 1
        elif resp is None:
            # no answer in time (or the link went): it may well be delivered, and a second copy would
            # be a second SMS to the subscriber: not sent again, counted
            self.stats["shortcode_replies_unanswered"] += 1
            log.warning("short-code reply to %r: no answer from the SMSC (not sent again)", mt.destination_addr)
        elif status in _REPLY_TEMPORARY and tries < REPLY_TRIES:
            self.stats["shortcode_replies_retried"] += 1
            self._replies.append((mt, tries + 1))
            if self._reply_timer is None:       # again after REPLY_RETRY, not at once
                self._reply_timer = self.loop.call_later(REPLY_RETRY, self._reply_tick)
            return
        else:
            self.stats["shortcode_replies_failed"] += 1
            log.warning("short-code reply to %r refused by the SMSC (status 0x%02X, attempt %d)",
                        mt.destination_addr, status, tries)
        self._send_replies()
