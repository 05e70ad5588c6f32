"""The scheduled ads indexed and let go (scheduled.py): which forwarded messages are ads scheduled ahead, what their
cancel_sm needs, and when their entries go (a receipt, an ESME's cancel_sm or replace_sm). The look at them, and
the cancels, are dnc_cancel.py's."""
from __future__ import annotations

import logging
import time

from ..numbers import normalise_number
from .msgids import MID_MAX
from .scheduled import PendingAd, member_key

log = logging.getLogger("telfilter.smpp")
SAY_EVERY = 3600.0  # the index full: said at most this often


class DncIndex:
    """Mixin of DncCancel (SmppProxy's `scheduled` index kept)."""

    def _index_scheduled(self, key: str, space: str, mid: str, acct: str, pdu, due: int, refund) -> None:
        """The SMSC took `pdu` under `mid` (its key `key`), to be delivered at `due` (Unix seconds, ahead): indexed
        when it is an ad (its `refund`'s verdict counted at delivery)."""
        if not self.settings.cancel_scheduled_on_dnc or refund is None \
                or not any(self.pipeline.counted_at_delivery(v) for v in refund.verdicts):
            return
        n = normalise_number(pdu.destination_addr, pdu.dest_addr_ton)
        if n is None:
            return
        self._index_ad(PendingAd(key, space, mid, acct, due, n, pdu.service_type, pdu.source_addr_ton,
                                 pdu.source_addr_npi, pdu.source_addr, pdu.dest_addr_ton, pdu.dest_addr_npi,
                                 pdu.destination_addr))

    def _index_scheduled_multi(self, key: str, space: str, mid: str, acct: str, pdu, due: int, refund) -> None:
        """The SMSC took the submit_multi `pdu` under `mid`, to be delivered at `due` (ahead): each recipient an ad
        was counted for indexed (its entry `member_key(key, recipient)`). Its cancel_sm names the message_id, NULL
        destination and service_type (SMPP 3.4 §4.9.1): it cancels every recipient's copy, as a drop at its
        submission would have dropped the PDU whole (multi.py)."""
        if not self.settings.cancel_scheduled_on_dnc or refund is None:
            return
        counted = self.pipeline.counted_at_delivery
        for v, n in zip(refund.verdicts, refund.dests or ()):
            if n is not None and counted(v) and member_key(key, n) not in self.scheduled.entries:
                self._index_ad(PendingAd(member_key(key, n), space, mid, acct, due, n, "", pdu.source_addr_ton,
                                         pdu.source_addr_npi, pdu.source_addr, 0, 0, ""))

    def _index_replaced(self, key: str, space: str, mid: str, acct: str, pdu, due: int, recipient: int) -> None:
        """The SMSC took a replace_sm (`pdu`) that makes the message under `mid`, no ad scheduled ahead until now,
        an ad delivered at `due` to `recipient` (E.164, as noted at its submission): indexed. The destination as
        submitted is not kept for every message, and a cancel_sm naming the message_id may leave it NULL (SMPP 3.4
        §4.9.1), as its service_type; the source is the replace_sm's, which matched the submission's."""
        if self.settings.cancel_scheduled_on_dnc and recipient:
            self._index_ad(PendingAd(key, space, mid, acct, due, recipient, "", pdu.source_addr_ton,
                                     pdu.source_addr_npi, pdu.source_addr, 0, 0, ""))

    def _index_retimed(self, ad: PendingAd) -> None:
        """An indexed ad given another delivery (`ad.due`: a replace_sm's schedule, the SMSC took it): due then, its
        place in a look's queue too (dnc_look.DncLook.retime; was: the index's only, the look judging it by its old
        delivery)."""
        self.scheduled.add(ad)
        self._look.retime(ad.due, ad.key)
        if ad.recipient in self.pipeline.lists.dnc_s:
            # (a look may have let it go as delivered -- its old delivery passed, the SMSC had not sent it yet -- or
            # judged it before its recipient's DK DNC: judged at the next tick, once, as an ad indexed to a DNC number)
            self._scheduled_retry.setdefault(ad.key, float("-inf"))

    def _index_ad(self, ad: PendingAd) -> None:
        if len(ad.message_id) > MID_MAX:
            # no cancel_sm can name it (SMPP 3.4 §5.2.23: 65 octets; an SMSC's answer is read leniently)
            self.stats["scheduled_ads_unindexed"] += 1
            log.warning("scheduled ad %.40s... to %s: its message_id (%d characters) is longer than a cancel_sm can "
                        "name: not cancelled if its recipient registers DK DNC", ad.message_id, ad.to,
                        len(ad.message_id))
            return
        if self.scheduled.add(ad):
            # (an id given again, or one let go and indexed again, while its key waits in a look's queue: its place
            # by this delivery, as a replace_sm's re-timing; nothing when not queued)
            self._look.retime(ad.due, ad.key)
            if ad.recipient in self.pipeline.lists.dnc_s:
                # submitted with consent, or judged before its recipient's DK DNC that a look may have taken already
                # (the SMSC answers after): judged at the next tick, once (left for the next DNC change, it went
                # unjudged while no one else's came)
                self._scheduled_retry.setdefault(ad.key, float("-inf"))     # (an id given again: its back-off kept)
        else:
            self.stats["scheduled_ads_unindexed"] += 1
            now = time.monotonic()
            if now - self._scheduled_said >= SAY_EVERY:
                self._scheduled_said = now
                log.warning("scheduled ads: %d ads scheduled ahead are indexed (the bound): one scheduled now is not, "
                            "and is not cancelled if its recipient registers DK DNC before its delivery",
                            len(self.scheduled))

    def _scheduled_gone(self, key: str, receipt=None) -> None:
        """`key`'s message reached a final state (its `receipt`, never an intermediate notification:
        routing._receipt_came), or an ESME cancelled or replaced it."""
        s = self.scheduled
        if not s.entries:
            return
        if receipt is None or key in s.entries:
            s.discard_message(key)
        elif key in s.groups:           # a submit_multi's: the recipient it names (its source_addr) delivered
            n = normalise_number(receipt.source_addr, receipt.source_addr_ton)
            if n is not None:
                s.discard(member_key(key, n))
