"""Held delivery receipts: kept for an account with no free receiver bind, offered again as room
comes, and kept on disk from the moment the SMSC is told they were delivered (heldjournal.py).

Theory of operation (routing.py `_deliver_receipt` decides when a receipt is held). A receipt the
SMSC still waits on is held only once its journal record is fsynced: `_hold` hands the record to the
receipts' writer thread (engine/groupcommit.py) and answers the SMSC when it is on disk (0), or, when
it could not be written, ESME_RX_T_APPN (the SMSC keeps it and delivers it again), so an
acknowledged receipt survives a crash. Until then it counts toward `max_held_receipts`. One already
acknowledged (offered again from the held queue, generated here) is held at once; its record is written
if it has none yet. Receipts another process handed over through Redis are written here before their
claim in the server is deleted (`take_handed_over`). A receipt leaves the journal (a gone record, not
fsynced alone) when its ESME takes it or refuses it for good, or another process takes it over
(state/receipts.py); until then it is in `held_records` -- held, being written, offered to an ESME, or
being handed over -- and every compaction keeps it (the journal is rewritten from `held_records` by the
writer, in order with the records before it, and once a torn write could not be cut off). `open_held` (serve, before the proxy starts) reads the
journal, and the clean stop file of an older version, and offers what they hold again;
`close_held` (serve, after the hand-overs ended) rewrites the journal with what is still held.

Without `open_held` (the harness, tests) receipts are held in memory only, as before.

Shares and age. One account holds at most `max_held_per_account` (held and being written; 0, the
default: half of `max_held_receipts`, all of it when one account is configured), so an account that binds no receiver but asks for receipts cannot take the
room another needs for a reconnect: over its share a receipt is not acknowledged (ESME_RX_T_APPN, the
SMSC keeps it). A receipt held `max_held_days` is let go (housekeeping, oldest first by when it was
held): the SMSC was answered when it was held, so nothing is answered now; it is logged, counted
(`receipts_held_expired`) and its journal record ends. Within a process it ages by the monotonic clock (a step
of the wall clock neither ages it nor keeps it young). When it was held is journalled with it (a
prefix of its record's payload, `_stamped`), so a restart does not make it young again; a record of an
older version has none and counts from the start that reads it, as does one handed over through Redis. A record
that is neither (not a PDU: a later version's, met on a rollback) is never offered; it stays in the journal as
it is and start-up says so as an error.
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from pathlib import Path

import msgpack

from ..disktrouble import trouble
from .codec import encode
from .heldjournal import RecordLog
from .routing import MAX_HELD_RECEIPT

log = logging.getLogger("telfilter.smpp")
# Held receipts one flush of an account's queue passes over (too long for its free receivers, all SMPP 3.3:
# codec/v33.py), each to the back: round a queue of 100,000 such, each read anew, a flush (each housekeeping tick,
# each receipt acknowledged) took 1.1-1.3 s of the loop; now 3 ms (each read once: `v33_fits`); one that fits
# behind them goes at a later flush
MAX_HELD_SKIPS = 256


class _HeldReceipt:
    """A held receipt as the bytes the SMSC sent (the sequence number is rewritten when it goes out);
    `hid`: its journal record (0: none yet); `held_at`: when it was first held (wall clock, seconds: journalled,
    for the next start); `since`: the same instant on this process's monotonic clock, by which it ages (its
    age when read back from the journal is the wall clock's then, at least 0)."""
    __slots__ = ("raw", "hid", "held_at", "since", "v33_fits", "delivered", "timed_out_on", "timed_out_seq")

    def __init__(self, raw: bytes, hid: int = 0, held_at: float | None = None):
        self.raw = raw
        self.hid = hid
        self.v33_fits = None            # whether an SMPP 3.3 bind can take it (codec/v33.fits_v33 says it once)
        self.delivered = False          # a late deliver_sm_resp (0) to the copy that timed out came: not offered again
        # the bind and sequence number of its copy that last timed out (routing._receiving: that bind is offered it
        # again only once it answered a later one; until then its late answer may still come)
        self.timed_out_on, self.timed_out_seq = None, 0
        wall, self.since = time.time(), time.monotonic()
        self.held_at = wall if held_at is None else held_at
        if held_at is not None:
            self.since -= max(0.0, wall - held_at)

    def awaits_late_answer(self, sess, seq: int) -> bool:
        """Whether `sess`'s late answer to `seq` is still for this receipt: the copy of it that last timed out, and
        the receipt still held (not acknowledged late, nor gone: `_held_gone`)."""
        return self.timed_out_on is sess and self.timed_out_seq == seq and not self.delivered


# a journal record's payload: _STAMP, when the receipt was held (float64) and the PDU. A PDU starts with its
# command_length, whose first octet is 0 for any PDU a receipt can be (at most 4 KB): an older record is the PDU alone
_STAMP = b"\xffT"
_WHEN = struct.Struct("<d")


def _stamped(entry) -> bytes:
    return _STAMP + _WHEN.pack(entry.held_at) + entry.raw


def _unstamped(payload: bytes, now: float) -> tuple[bytes, float]:
    """(PDU, when held) of a journal record's payload."""
    if payload[:2] == _STAMP and len(payload) >= 10:
        return payload[10:], _WHEN.unpack_from(payload, 2)[0]
    return payload, now


def _is_pdu(raw: bytes) -> bool:
    """A whole PDU: a 16-octet header at least, whose command_length is its length (SMPP 3.4 3.2)."""
    return len(raw) >= 16 and int.from_bytes(raw[:4], "big") == len(raw)


class HeldReceipts:
    """Mixin of `SmppProxy`: receipts held for an account (`held`: account -> deque, `held_total`), and
    `held_log` (heldjournal.RecordLog): a record for every receipt acknowledged and not yet gone (held, being
    written, offered to an ESME, being handed over): what a compaction keeps."""

    held_log: RecordLog | None = None

    @property
    def held_writer(self):
        return self.held_log.writer if self.held_log is not None else None

    @property
    def held_records(self) -> dict:
        return self.held_log.records if self.held_log is not None else {}

    def _hold(self, acct, pdu, acked: bool, on_done) -> None:
        """Hold a receipt, then `on_done(True)`; `on_done(False)` (not held: the SMSC is answered
        ESME_RX_T_APPN and keeps it) at max_held_receipts or the account's share, for one too big, or when
        its record could not be written, for one the SMSC still waits on. One already acknowledged is
        always held (net zero). Returns the held entry (None: not held)."""
        raw = getattr(pdu, "raw", b"")
        if not acked:
            s = self.settings
            if self.held_total >= s.max_held_receipts or len(raw) > MAX_HELD_RECEIPT:
                self.stats["receipts_refused_held_full" if len(raw) <= MAX_HELD_RECEIPT else "receipts_too_big_to_hold"] += 1
                on_done(False)
                return None
            share = s.max_held_per_account or (max(1, s.max_held_receipts // 2) if len(self.accounts) > 1
                                               else s.max_held_receipts)
            q = self.held.get(acct)
            if (len(q) if q else 0) + self.held_writing.get(acct, 0) >= share:
                self.stats["receipts_refused_held_share"] += 1          # its share taken: the SMSC keeps it
                on_done(False)
                return None
        entry = pdu if isinstance(pdu, _HeldReceipt) else _HeldReceipt(raw or encode(pdu))
        if self.held_writer is None or entry.hid:
            self._held_in(acct, entry)                 # in memory only, or on disk already
            on_done(True)
            return entry
        if acked:
            # acknowledged already (before the journal, or locally generated): held now, written when it can be
            entry.hid = self.held_log.add(acct, _stamped(entry), self._held_record_written)
            self._held_in(acct, entry)
            on_done(True)
            return entry
        self.held_total += 1                           # counts toward the bounds while it is written
        self.held_writing[acct] = self.held_writing.get(acct, 0) + 1
        entry.hid = self.held_log.add(acct, _stamped(entry), lambda err: self._held_written(acct, entry, on_done, err))
        return entry

    def _held_written(self, acct, entry, on_done, err) -> None:
        self.held_total -= 1
        n = self.held_writing[acct] - 1
        if n:
            self.held_writing[acct] = n
        else:
            del self.held_writing[acct]
        if err is not None:
            self.stats["receipts_not_recorded"] += 1
            self.held_log.forget(entry.hid)
            entry.hid = 0
            on = entry.timed_out_on
            if on is not None:          # not held: its timed-out copy's late answer is a plain late answer, and
                entry.timed_out_on = None   # esme.late_held, bounded by the receipts held, keeps nothing for it
                if on.timed_out.get(entry.timed_out_seq) is entry:
                    on.timed_out[entry.timed_out_seq] = None
            self.held_log.failed(err, f"a receipt for account {acct} not held (its journal record could not be "
                                      "written): the SMSC delivers it again")
            return on_done(False)
        self.held_log.failed(None)
        self._held_in(acct, entry)
        on_done(True)
        if self._receivers(acct):
            self._flush_held(acct)          # a receiver bound while it was written

    def _held_record_written(self, err) -> None:
        if err is not None:
            self.stats["receipts_not_recorded"] += 1
            self.held_log.report(err)

    def _held_in(self, acct, entry) -> None:
        self.held[acct].append(entry)
        self.held_total += 1
        self.stats["receipts_held"] += 1
        if self.receipt_handover is not None:
            self.receipt_handover.held(acct)    # with no receiver bind here: to one elsewhere (state/receipts.py)

    def _held_gone(self, entry) -> None:
        """A held receipt left for good (its ESME took or refused it, another process took it over)."""
        if getattr(entry, "timed_out_on", None) is not None:
            entry.timed_out_on = None   # a late answer to its timed-out copy is for nothing held (esme.late_held)
        hid = getattr(entry, "hid", 0)
        if hid and self.held_log is not None:
            entry.hid = 0
            self.held_log.gone(hid)

    async def take_handed_over(self, acct, raws) -> bool:
        """Receipts another process held for `acct` (engine/state/receipts.py): on disk here first (the caller
        deletes their claim in the server only then), then delivered or held. False, and none taken, when
        their records could not be written (the server gives them again)."""
        entries = [_HeldReceipt(raw) for raw in raws]
        if self.held_writer is not None:
            loop = self.loop or _running_loop()
            futs = []
            for e in entries:
                f = loop.create_future()
                futs.append(f)
                e.hid = self.held_log.add(acct, _stamped(e), lambda err, f=f: f.done() or f.set_result(err))
            errs = await asyncio.gather(*futs)
            if any(e is not None for e in errs):
                self.stats["receipts_not_recorded"] += len(entries)
                log.error("receipts taken over for account %s not recorded (%s): left to the server",
                          acct, next(e for e in errs if e is not None))
                for e in entries:
                    self._held_gone(e)
                return False
        for e in entries:
            self._deliver_receipt(acct, e, on_done=_ignore, acked=True)
        return True

    def _flush_held(self, acct, now: float | None = None):
        q = self.held.get(acct)
        if not q or (now or time.monotonic()) < self.held_retry_at.get(acct, 0.0):
            return
        self.held_retry_at.pop(acct, None)
        skips = MAX_HELD_SKIPS
        for _ in range(len(q)):             # each once
            if q[0].delivered:              # its ESME took the copy that timed out after all (late_receipt_answer)
                self._held_gone(q.popleft())    # (its record: ended then, or written again by a later copy's timeout)
                self.held_total -= 1
                continue
            if not self._receivers(acct, q[0]):
                if not self._receivers(acct):
                    return                  # no receiver free at all
                # the free ones cannot take it (too long for SMPP 3.3 binds; its timed-out copy's late answer may
                # still come from the one free): it waits at the back
                q.rotate(-1)
                skips -= 1
                if not skips:
                    return                  # the others at the next flush (MAX_HELD_SKIPS)
                continue
            pdu = q.popleft()
            self.held_total -= 1
            self._deliver_receipt(acct, pdu, on_done=_ignore, acked=True)
        if not q:
            del self.held[acct]

    def late_receipt_answer(self, entry, status: int) -> None:
        """A late deliver_sm_resp to a receipt of ours that timed out and was held (`entry`): with status 0 the ESME
        has it; its held copy is not offered again (its record ends now, the entry leaves the queue at its next
        flush). A copy in flight meanwhile is answered as any."""
        if status == 0 and not entry.delivered:
            entry.delivered = True
            self._held_gone(entry)
            self.stats["receipts_late_acknowledged"] += 1

    def _retry_held(self, now: float) -> None:
        """Housekeeping: receipts held past max_held_days are let go; held receipts whose back-off has passed go
        to any free receiver."""
        # by the monotonic clock: a step of the wall clock (NTP, `date -s`) let every receipt go at once when it
        # went forward by max_held_days, and kept them longer when it went back (found by the clock-step probe)
        oldest = time.monotonic() - self.settings.max_held_days * 86400.0
        for acct in [a for a, q in self.held.items() if q]:
            if self.held[acct][0].since < oldest:
                self._expire_held(acct, oldest)
            self._flush_held(acct, now)

    def _expire_held(self, acct, oldest: float) -> None:
        """Let go the receipts of `acct` held since before `oldest`, from the first held (the SMSC was answered
        when they were held: nothing to answer; their records end)."""
        q = self.held[acct]
        n = 0
        while q and q[0].since < oldest:
            self._held_gone(q.popleft())
            n += 1
        self.held_total -= n
        self.stats["receipts_held_expired"] += n
        log.warning("%d receipts held for account %s longer than max_held_days (%g) let go: no receiver bind took "
                    "them", n, acct, self.settings.max_held_days)
        if not q:
            del self.held[acct]

    # ------------------------------------------------------------ across restarts
    def open_held(self, path: Path, adopt=()) -> int:
        """Offer again the receipts held when the last run ended (a crash too): the journal beside `path`
        (`<path stem>.journal`) and, from an older version's clean stop, `path` itself (msgpack); the same of
        each path in `adopt` (the files of a pool's workers no longer started). From now on every receipt
        held is journalled (needs the running loop). Returns how many were read."""
        rl = RecordLog(path.with_suffix(".journal"), "telfilter-receipts-writer", "held receipt", self.stats,
                       "receipts_journal", trouble=trouble("held_receipts"))
        now = time.time()
        stops = [path, *adopt]
        # (a receipt is one by its PDU: a stop file's, read again after a crash before its removal below, is stamped
        # anew; the copy the journal took from it the first time is not offered twice)
        live = rl.open(self.loop or _running_loop(),
                       [(acct, _stamped(_HeldReceipt(raw, 0, now))) for p in stops for acct, raw in _read_stop_file(p)],
                       adopt=[p.with_suffix(".journal") for p in adopt],
                       same=lambda acct, payload: (acct, _unstamped(payload, 0.0)[0]))
        for p in stops:
            p.unlink(missing_ok=True)       # (its receipts are in the journal now, fsynced)
        unstamped = foreign = 0
        for hid, acct, payload in live:
            raw, held_at = _unstamped(payload, now)
            if not _is_pdu(raw):
                # neither this format nor an older one: a later version's (a rollback). Offered, its bytes would
                # reach an ESME as a broken PDU; dropped, a receipt would be lost. Left in the journal as it is
                # (every rewrite keeps the records it holds) for the version that wrote it, and said
                foreign += 1
                continue
            entry = _HeldReceipt(raw, hid, held_at)
            if raw is payload:                  # an older version's record: from now on with when it was held
                rl.replace(hid, _stamped(entry))
                unstamped += 1
            self.held[acct].append(entry)
            self.held_total += 1
        self.held_log = rl
        if unstamped:
            rl.compact()
        if foreign:
            log.error("%d held receipts in %s are in a format this version does not read (a later version's): kept "
                      "there as they are, not delivered; start the version that wrote them to deliver them", foreign,
                      rl.journal.path)
        if len(live) > foreign:
            log.info("%d receipts held when the last run ended offered again", len(live) - foreign)
        return len(live) - foreign

    async def close_held(self) -> int:
        """Clean stop: the journal rewritten with what is still held (by the writer, after every record it
        has; read by the next start). Returns how many are kept."""
        if self.held_log is None:
            return 0
        n = await self.held_log.close()
        if n:
            log.info("%d held receipts kept in %s for the next start", n, self.held_log.journal.path)
        return n


def _read_stop_file(path: Path) -> list:
    """[(account, raw)] from an older version's clean stop file (msgpack list); unreadable: set aside."""
    try:
        items = msgpack.unpackb(path.read_bytes(), raw=False)
        return [(str(acct), bytes(raw)) for acct, raw in items]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        bad = path.with_name(path.name + ".unreadable")
        os.replace(path, bad)
        log.error("held receipts in %s unreadable (%s): moved to %s", path, e, bad)
        return []


def _running_loop():
    return asyncio.get_running_loop()


def _ignore(ok) -> None:
    """on_done of a receipt the SMSC was answered for when it was held."""
