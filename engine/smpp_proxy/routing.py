"""From the SMSC: delivery receipts routed by message_id to the account that sent the MT (held until it
binds again; the id matched as sent or by its twin: receipt_ids.py); MO messages go to mo.py, which judges
them and uses the routing by destination prefix kept here and the short-code replies (shortcode_replies.py)."""
from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from .codec import as_request, encode
from .codec.v33 import fits_v33
from .codec import constants as C
from .codec import pdu as P
from .msgids import id_key
from .receipt_ids import _ReceiptIds
from .shortcode_replies import ShortcodeReplies

if TYPE_CHECKING:
    from .smsc_link import SmscLink

log = logging.getLogger("telfilter.smpp")
HELD_RETRY = 1.0        # seconds before a receipt an ESME refused (or left unanswered) is offered again
# Bytes of a receipt that may wait in memory (held, or before its resp): a receipt is ~100-300 bytes; a
# deliver_sm of 64 KB "receipt" is delivered when a receiver is free, else the SMSC keeps it (ESME_RX_T_APPN).
# So held receipts take at most max_held_receipts x 4 KB, early ones max_early_receipts x 4 KB.
MAX_HELD_RECEIPT = 4096
_RECEIPT_ID = re.compile(rb"id:([^\s\x00]+)")
_SME_ACKS = (0x08, 0x10)       # SMPP 3.4 §5.2.12 esm_class message types: SME delivery / manual (user) acknowledgement
# A receipt relayed while the submit_sm_resp with its id has been out for less than this (an SMSC's receipt for a
# message it failed at once: UNDELIV, REJECTD, EXPIRED for an unknown number), for an account with more than one
# bind, waits until it has been: an ESME bound as a transmitter + receiver pair (or with several binds) reads
# them apart (Kannel 1.4.5: a thread each) and matches a receipt against the ids its transmitter has stored; one
# read before its resp is acknowledged and thrown away ("got DLR but could not find message"). Kannel, TX + RX
# binds straight to the simulator, 2,000 MTs: with the receipt 0 / 10 / 50 / 200 ms after its resp it lost
# 226 / 31 / 2 / 0 of them; so 250 ms. The SMSC's deliver_sm stays unanswered meanwhile (as an early receipt's
# does): such receipts flow at most at the SMSC's window / 0.25 s a link. A receipt that comes later, or for an
# account bound once (a transceiver: TCP keeps the order), goes at once. (msgids.py RecentlyAnswered: which ids.)
# Only for accounts that ask for it (`[[account]] receipt_after_resp = true`): behind an SMSC with a small
# deliver_sm window, every other receipt and MO on that link would go at that pace while such receipts come.
RECEIPT_AFTER_RESP = 0.25
MAX_RECEIPTS_AFTER_RESP = 10_000    # waiting so; over it a receipt goes at once (~300 B each, <= 4 KB: 40 MB)


class DeliveryRouting(_ReceiptIds, ShortcodeReplies):
    """Mixin of `SmppProxy`: the SMSC -> ESME direction."""

    _mo_index = None            # MO prefix -> system_ids (_prefix_index), made on first use, dropped on a reload

    def handle_smsc_deliver(self, link: SmscLink, pdu):
        resp_cls = P.response_class(pdu.command_id)
        seq = pdu.sequence_number
        ack = lambda status=0: link.send_pdu(resp_cls(sequence_number=seq, command_status=status))
        is_receipt = pdu.esm_class & C.ESM_TYPE_MASK in (0x04, 0x08, 0x10, 0x20)
        if is_receipt:
            mid = (P.tlv(pdu, C.TAG_RECEIPTED_MESSAGE_ID) or b"").rstrip(b"\x00").decode("latin-1")
            if not mid:
                # no receipted_message_id, or one sent empty: the id the receipt's text names (SMPP 3.4 appendix B)
                body = P.tlv(pdu, C.TAG_MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"")
                m = _RECEIPT_ID.search(body)
                mid = m.group(1).decode("latin-1") if m else None
            acct, key = self._owner_of(mid, link.id_space) if mid else (None, None)
            if acct is None:
                if not mid and pdu.esm_class & C.ESM_TYPE_MASK in _SME_ACKS:
                    # SMPP 3.4 §5.2.12: an SME delivery or manual/user acknowledgement is the handset's own
                    # message (its text, e.g. a reply to the MT); with no id to tie it to an MT it goes as an MO
                    # does, judged, to the account its destination routes to (esm_class kept: the ESME sees an ack)
                    self.stats["sme_acks_as_mo"] += 1
                    return self.handle_mo(link, pdu, ack)
                if not mid:
                    # nothing to route it by, now or later: refused, never acknowledged and dropped
                    log.info("receipt without a message_id from SMSC %s: refused", link.where)
                    self.stats["receipts_unroutable"] += 1
                    return ack(C.ESME_RX_P_APPN)
                return self._hold_early_receipt(id_key(link.id_space, mid), pdu, ack)
            self._receipt_came(key, pdu)           # (the resp's id: a twin's, when the receipt wrote it otherwise)
            self._receipt_after_resp(acct, key, pdu, lambda ok: ack(_receipt_status(ok)))
            return
        # mobile-originated: judged (a concatenated one once, whole) and routed in mo.py
        return self.handle_mo(link, pdu, ack)

    def _receipt_came(self, key: str, pdu) -> None:
        """A receipt for the message of `key` is routed: its message reached a final state, so a cancel_sm or
        replace_sm the SMSC answers 0 after it gives no count back (msgids.receipted) and it is no ad scheduled
        ahead any more (dnc_cancel.py). Not an intermediate notification (SMPP 3.4 §5.2.12: esm_class type 0x20,
        asked for with registered_delivery bit 4; an SMSC sends one when it stores or schedules the message): the
        message still waits, and an ad cancelled after one kept its count for nothing."""
        if pdu.esm_class & C.ESM_TYPE_MASK == C.ESM_TYPE_INTERMEDIATE:
            return
        self.msgid_account.receipted(key)
        self._scheduled_gone(key, pdu)

    # ------------------------------------------------------------ receipts before their resp
    # An SMSC may send a receipt before (or just after) the submit_sm_resp that tells us its
    # message_id, typically on another bind. Such a receipt is held, unanswered, for
    # `receipt_wait` seconds and routed as soon as the resp arrives; if none does, the SMSC
    # gets ESME_RX_T_APPN and delivers it again later. The hold is bounded (`max_early_receipts`,
    # the oldest answered first): nothing is acknowledged and dropped.
    def _hold_early_receipt(self, mid: str, pdu, ack) -> None:
        if len(getattr(pdu, "raw", b"")) > MAX_HELD_RECEIPT:     # memory: only receipt-sized PDUs wait
            self.stats["receipts_too_big_to_hold"] += 1
            return ack(C.ESME_RX_T_APPN)
        q = self.early_receipts
        old = q.pop(mid, None)
        if old is not None:
            old[0](C.ESME_RX_T_APPN)                    # the same receipt again: the newer one waits
        if len(q) >= self.settings.max_early_receipts:
            _, (old_ack, _, _) = q.popitem(last=False)
            old_ack(C.ESME_RX_T_APPN)
            self.stats["receipts_retry_later"] += 1
        q[mid] = (ack, pdu, time.monotonic() + self.settings.receipt_wait)
        self.stats["receipts_early"] += 1

    def _answer_early_receipts(self) -> None:
        """A stop: every receipt still waiting for its resp answered ESME_RX_T_APPN (the SMSC delivers it again)."""
        q = self.early_receipts
        while q:
            _, (ack, _, _) = q.popitem(last=False)
            self.stats["receipts_retry_later"] += 1
            ack(C.ESME_RX_T_APPN)

    def _early_receipt_matched(self, mid: str, acct: str, twin: bool = False, same_base: bool = False,
                               resp_key: str | None = None) -> None:
        """The resp (its id `resp_key`, when not `mid`: a twin) of a receipt waiting in `early_receipts` came."""
        ack, pdu, _ = self.early_receipts.pop(mid)
        self._receipt_came(resp_key or mid, pdu)
        f = self._id_form(mid.rpartition("\x1f")[0])
        f[1 if twin else 0] += 1
        f[2] += same_base
        self._receipt_after_resp(acct, resp_key or mid, pdu, lambda ok: ack(_receipt_status(ok)))

    def _expire_early_receipts(self, now: float) -> None:
        q = self.early_receipts
        while q:
            mid, (ack, pdu, until) = next(iter(q.items()))
            if until > now:
                break
            del q[mid]
            space, _, bare = mid.rpartition("\x1f")
            acct, key = self._twin_match(bare, space) if self._by_twin(space, waited=True) else (None, None)
            if acct is not None:                # its own id never came: an SMSC that writes it otherwise
                self._receipt_came(key, pdu)
                self._deliver_receipt(acct, pdu, on_done=lambda ok, ack=ack: ack(_receipt_status(ok)))
                continue
            log.info("receipt for unknown message_id %r after %.0fs: SMSC asked to retry", mid, self.settings.receipt_wait)
            self.stats["receipts_retry_later"] += 1
            ack(C.ESME_RX_T_APPN)

    def _mo_target(self, dest: str, room: int = 1, pdus=()):
        """A receiver session of the account whose MO prefix is the longest match of `dest`, with
        room in its window for `room` deliver_sm (the parts of one message go to one bind, which
        may reassemble only its own) and able to take `pdus` whole, or None: the SMSC retries later."""
        index = self._mo_index
        if index is None:
            index = self._mo_index = _prefix_index(self.accounts)
        binds = self.binds
        for k in range(min(len(dest), index.longest), -1, -1):       # longest prefix first: O(len(dest))
            for sid in index.get(dest[:k], ()):
                sessions = binds.get(sid)
                if not sessions:
                    continue
                rx = self._receiving(sessions, pdus)     # none with room -> a shorter prefix, else the SMSC retries
                if room > 1:
                    # more parts than a window holds need an empty window, not an impossible one
                    rx = [s for s in rx if len(s.window) + min(room, s.account.window) <= s.account.window]
                if rx:
                    return rx[next(self._rr) % len(rx)]
        return None

    def _receivers(self, acct, pdu=None):
        return self._receiving(self.binds.get(acct, ()), () if pdu is None else (pdu,))

    def _receiving(self, sessions, pdus=()):
        """The sessions that can take a deliver_sm now: a receiver bind, open, with room in its window; for `pdus`
        (the SMSC's deliver_sm / data_sm), not a bind of SMPP 3.3 or earlier when one of them does not fit a
        deliver_sm without TLVs whole (codec/v33.py: its user data over 254 octets)."""
        # a bind with a request of ours timed out and nothing from it since (stalled: not reading, or gone without
        # a FIN) has room for one only, a probe: each deliver_sm it does not answer times out, is held and offered
        # again, and when it catches up it had them all twice or more (2,200 deliver_sm for 700 receipts after a 40 s
        # pause, a window of 100). Anything it sends (a late answer too) frees it; other receivers take the rest
        rx = [s for s in sessions if s.state.can_receive and not s.closed
              and len(s.window) < (1 if s.last_timeout > s.last_rx else s.account.window)
              and not s.transport.is_closing()]
        if pdus and any(s.interface_version < 0x34 for s in rx) and not all(map(fits_v33, pdus)):
            rx = [s for s in rx if s.interface_version >= 0x34]
        on = getattr(pdus[0], "timed_out_on", None) if len(pdus) == 1 else None
        if on is not None and on.answered_seq <= pdus[0].timed_out_seq:
            # a held receipt whose copy timed out on a bind still waits for its late answer there (an ESME catching
            # up answers in order): not offered to it again before it answered a later one; others may take it
            rx = [s for s in rx if s is not on]
        return rx

    def _v33_only(self, acct) -> bool:
        """Whether `acct` has receiver binds open, all of SMPP 3.3 or earlier (their windows full or not)."""
        rx = [s for s in self.binds.get(acct, ()) if s.state.can_receive and not s.closed]
        return bool(rx) and all(s.interface_version < 0x34 for s in rx)

    # ------------------------------------------------------------ receipts right after their resp
    def _receipt_after_resp(self, acct, key, pdu, on_done) -> None:
        """Deliver a receipt now, or RECEIPT_AFTER_RESP after the resp of its id (`key`) went to the ESME when that
        was less than that ago and the account has more than one bind (the receipt may go on another)."""
        r = self.recent_resps
        if (key in r.new or key in r.old) and self._receipt_may_pass_resp(acct):
            now = time.monotonic()
            due = r.due(key, now)
            q = self.receipts_after_resp
            if due is not None and len(q) < MAX_RECEIPTS_AFTER_RESP \
                    and len(getattr(pdu, "raw", b"")) <= MAX_HELD_RECEIPT:
                q.append((due, acct, pdu, on_done))
                self.stats["receipts_after_resp_waited"] += 1
                if self._after_resp_timer is None:
                    self._after_resp_timer = self.loop.call_later(due - now, self._receipts_after_resp_due)
                return
            if due is not None:
                self.stats["receipts_after_resp_not_waited"] += 1
        self._deliver_receipt(acct, pdu, on_done=on_done)

    def _receipt_may_pass_resp(self, acct) -> bool:
        """Whether a receipt for an account that asked for the wait (`[[account]] receipt_after_resp`) may reach it
        on another bind than its resp: it has more than one bind here, or (--workers / --state redis://: the resp may
        have gone out in another process) any bind here."""
        a = self.accounts.get(acct)
        if a is None or not a.receipt_after_resp:
            return False
        binds = self.binds.get(acct, ())
        return len(binds) > 1 or (self.receipt_handover is not None and len(binds) > 0)

    def _receipts_after_resp_due(self, now: float | None = None) -> None:
        """Deliver the waiting receipts whose time has come (all of them when `now` is inf: a stop). Their dues
        are nearly in order (each RECEIPT_AFTER_RESP after a resp); one behind a later one waits for it."""
        self._after_resp_timer = None
        q = self.receipts_after_resp
        now = time.monotonic() if now is None else now
        while q and q[0][0] <= now:
            _, acct, pdu, on_done = q.popleft()
            self._deliver_receipt(acct, pdu, on_done=on_done)   # (its ESME gone meanwhile: held, as ever)
        if q:
            self._after_resp_timer = self.loop.call_later(max(0.0, q[0][0] - now), self._receipts_after_resp_due)

    def _receipts_after_resp_now(self) -> None:
        """A stop or a drain: every waiting receipt delivered now (or held, when its ESME is gone)."""
        if self._after_resp_timer is not None:
            self._after_resp_timer.cancel()
        self._receipts_after_resp_due(float("inf"))

    # ------------------------------------------------------------ held receipts (held.py)
    # A receipt with no receiver bind of its account free (none bound, every window full, or the ESME
    # answered it with an error) is held, in arrival order, and sent again as soon as a window slot of
    # the account frees (a deliver_sm_resp), a receiver binds, or HELD_RETRY after an ESME refused
    # or did not answer one (housekeeping). The SMSC is answered once the receipt is delivered or
    # held. The held receipts of all accounts are bounded (`max_held_receipts`, raw bytes only, ~300
    # bytes each), one account's by its share (`max_held_per_account`): at a bound a new receipt is not
    # acknowledged, the SMSC keeps it and delivers it later. One held `max_held_days` is let go (held.py).
    # With --state redis:// one held for an account with no receiver bind in this process goes to a process
    # that has one (`receipt_handover`, engine/state/receipts.py), and comes back here by `take_handed_over` (held.py).
    def _deliver_receipt(self, acct, pdu, on_done, target=None, acked=False):
        rx = self._receiving((target,), (pdu,)) if target is not None else self._receivers(acct, pdu)
        if not rx:
            if not acked and target is None and self._v33_only(acct) and not fits_v33(pdu):
                # its receivers are bound, all SMPP 3.3 (codec/v33.py), free or busy, and none can take it whole: the
                # SMSC keeps it (ESME_RX_T_APPN) and delivers it again, rather than we hold what they never take
                self.stats["receipts_too_long_for_v33"] += 1
                return on_done(False)
            return self._hold(acct, pdu, acked, on_done)      # held: we answer for it once on disk (or: retry later)
        sess = rx[next(self._rr) % len(rx)]

        def done(r):
            if r is not None and (r.command_status == C.ESME_RX_P_APPN
                                  or r.command_id == C.GENERIC_NACK and r.command_status in _NACK_FINAL):
                # the ESME refuses it for good (or cannot read it): not offered again. The SMSC gets that
                # answer when it is still waiting; one answered already when it was held is counted and logged.
                # A generic_nack with any other status (ESME_RTHROTTLED, ESME_RMSGQFUL, ESME_RSYSERR, even 0)
                # is a "not now", as a deliver_sm_resp with that status: held and offered again below
                self.stats["receipts_refused_by_esme"] += 1
                log.info("receipt for account %s refused by the ESME for good (status 0x%02x)", acct, r.command_status)
                self._held_gone(pdu)
                return on_done(C.ESME_RX_P_APPN)
            if r is None or r.command_status != 0 or r.command_id == C.GENERIC_NACK:
                # the ESME went away, did not answer or refused it (a nack, whatever its status, is no
                # acknowledgement): held, tried again after HELD_RETRY
                self.held_retry_at[acct] = time.monotonic() + HELD_RETRY
                entry = self._hold(acct, pdu, acked, on_done)
                if r is None and entry is not None and seq in sess.timed_out:
                    sess.timed_out[seq] = entry     # timed out: a late answer to it is for this entry (late_receipt_answer)
                    entry.timed_out_on, entry.timed_out_seq = sess, seq
                return
            self._held_gone(pdu)
            on_done(True)
            if self.held.get(acct):
                self._flush_held(acct)        # a window slot is free: the next held receipt takes it
            elif self.receipt_handover is not None:
                self.receipt_handover.slot_free(acct)   # or one another process handed over
        seq = self._send_to_esme(sess, pdu, done)

    def _send_to_esme(self, sess, pdu, on_resp) -> int:
        seq = sess.conn.next_sequence()
        cid = getattr(pdu, "command_id", None)
        if cid is None:                     # a held receipt is its bytes only
            cid = int.from_bytes(pdu.raw[4:8], "big")
        if cid == C.DATA_SM and sess.interface_version < 0x34:
            cid = C.DELIVER_SM              # an SMPP 3.3 bind is sent a deliver_sm (codec/v33.py)
        # the answer it expects: one of another type is taken as none (dispatch.handle_esme_pdu)
        sess.window[seq] = (on_resp, time.monotonic() + self.settings.smsc_response_timeout, cid | 0x80000000)
        sess.send_raw(as_request(pdu.raw, seq) if getattr(pdu, "raw", b"") else encode(P.replace(pdu, sequence_number=seq)))
        return seq


# generic_nack statuses that say the ESME cannot read the deliver_sm (SMPP 3.4 §5.1.3): the same bytes would
# be refused again, so the receipt is not offered again. Any other status in a generic_nack is transient.
_NACK_FINAL = frozenset((C.ESME_RINVMSGLEN, C.ESME_RINVCMDLEN, C.ESME_RINVCMDID, C.ESME_RINVOPTPARSTREAM,
                         C.ESME_RINVPARLEN, C.ESME_RX_P_APPN))


class _PrefixIndex(dict):
    """MO destination prefix -> the system_ids routed by it (accounts' `mo_prefixes`), in account order."""
    longest = 0


def _prefix_index(accounts: dict) -> _PrefixIndex:
    ix = _PrefixIndex()
    for sid, acct in accounts.items():
        for pfx in acct.mo_prefixes:
            ix.setdefault(pfx, [])
            if sid not in ix[pfx]:
                ix[pfx].append(sid)
            ix.longest = max(ix.longest, len(pfx))
    return ix


def _receipt_status(ok) -> int:
    """The SMSC's answer for a receipt: True delivered or held (0), False retry later (ESME_RX_T_APPN), or a
    status of its own (the ESME's permanent refusal)."""
    return 0 if ok is True else C.ESME_RX_T_APPN if ok is False else ok
