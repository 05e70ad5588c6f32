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
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import msgpack

from ..groupcommit import GroupCommit
from .codec import encode
from .heldjournal import COMPACT_BYTES, COMPACT_EMPTY, HeldJournal
from .routing import MAX_HELD_RECEIPT

log = logging.getLogger("telfilter.smpp")
_RECORD = 24                # bytes of a record beside its PDU (the journal's size as the loop counts it)


class _HeldReceipt:
    """A held receipt as the bytes the SMSC sent (the sequence number is rewritten when it goes out);
    `hid`: its journal record (0: none yet)."""
    __slots__ = ("raw", "hid")

    def __init__(self, raw: bytes, hid: int = 0):
        self.raw = raw
        self.hid = hid


class HeldReceipts:
    """Mixin of `SmppProxy`: receipts held for an account (`held`: account -> deque, `held_total`), and
    `held_records`: hid -> (account, receipt) for every receipt with a journal record not yet gone (held,
    being written, offered to an ESME, being handed over): what a compaction keeps."""

    held_log: HeldJournal | None = None
    held_writer: GroupCommit | None = None
    held_live_bytes = 0         # journal bytes of `held_records`
    _hid = 0
    _reset_pending = False

    def _hold(self, acct, pdu, acked: bool, on_done) -> None:
        """Hold a receipt, then `on_done(True)`; `on_done(False)` (not held: the SMSC is answered
        ESME_RX_T_APPN and keeps it) at max_held_receipts, for one too big, or when its record could not
        be written, for one the SMSC still waits on. One already acknowledged is always held (net zero)."""
        raw = getattr(pdu, "raw", b"")
        if not acked and (self.held_total >= self.settings.max_held_receipts or len(raw) > MAX_HELD_RECEIPT):
            self.stats["receipts_refused_held_full" if len(raw) <= MAX_HELD_RECEIPT else "receipts_too_big_to_hold"] += 1
            return on_done(False)
        entry = pdu if isinstance(pdu, _HeldReceipt) else _HeldReceipt(raw or encode(pdu))
        w = self.held_writer
        if w is None or entry.hid:
            self._held_in(acct, entry)                 # in memory only, or on disk already
            return on_done(True)
        if acked:
            # acknowledged already (before the journal, or locally generated): held now, written when it can be
            self._held_record(acct, entry, self._held_record_written)
            self._held_in(acct, entry)
            return on_done(True)
        self.held_total += 1                           # counts toward the bound while it is written
        self._held_record(acct, entry, lambda err: self._held_written(acct, entry, on_done, err))

    def _held_record(self, acct, entry, done) -> None:
        """Give `entry` a journal record (written by the receipts' writer; `done(error)` on the loop after)."""
        self._hid += 1
        entry.hid = hid = self._hid
        size = len(entry.raw) + _RECORD
        self.held_records[hid] = (acct, entry)
        self.held_live_bytes += size
        self.held_log.bytes += size
        if not self.held_writer.submit(("h", hid, acct, entry.raw), done):
            done(OSError("the receipts' journal writer is full or closed"))

    def _forget_record(self, entry) -> None:
        if self.held_records.pop(entry.hid, None) is not None:
            self.held_live_bytes -= len(entry.raw) + _RECORD
        entry.hid = 0

    def _held_written(self, acct, entry, on_done, err) -> None:
        self.held_total -= 1
        if err is not None:
            self.stats["receipts_not_recorded"] += 1
            log.error("receipt for account %s not held: its journal record could not be written (%s); the SMSC "
                      "delivers it again", acct, err)
            self._forget_record(entry)
            self._after_error()
            return on_done(False)
        self._held_in(acct, entry)
        on_done(True)
        if self._receivers(acct):
            self._flush_held(acct)          # a receiver bound while it was written

    def _held_record_written(self, err) -> None:
        if err is not None:
            self.stats["receipts_not_recorded"] += 1
            log.error("a held receipt's journal record could not be written (%s): a crash now would lose it", err)
            self._after_error()

    def _after_error(self) -> None:
        if self.held_log is not None and self.held_log.torn:
            self._compact_held()  # a torn write the journal could not cut off: rewritten whole

    def _held_in(self, acct, entry) -> None:
        self.held[acct].append(entry)
        self.held_total += 1
        self.stats["receipts_held"] += 1
        if self.receipt_handover is not None:
            self.receipt_handover.held(acct)    # with no receiver bind here: to one elsewhere (state/receipts.py)

    def _held_gone(self, entry) -> None:
        """A held receipt left for good (its ESME took or refused it, another process took it over)."""
        hid = getattr(entry, "hid", 0)
        w = self.held_writer
        if not hid or w is None:
            return
        self._forget_record(entry)
        jl = self.held_log
        jl.bytes += _RECORD
        w.submit(("d", hid), self._held_record_written)
        if (jl.bytes > COMPACT_EMPTY and not self.held_records) or (
                jl.bytes > COMPACT_BYTES and jl.bytes > 4 * self.held_live_bytes):
            self._compact_held()

    def _compact_held(self) -> None:
        """The journal rewritten as the records still live (by the writer, in order with the other items)."""
        if self._reset_pending or self.held_writer is None:
            return
        live = self._held_live()
        size = self.held_live_bytes

        def done(err):
            self._reset_pending = False
            if err is None:
                self.held_log.bytes = size
                self.stats["receipts_journal_compactions"] += 1
            else:
                self._held_record_written(err)
        if self.held_writer.submit(("reset", live), done):
            self._reset_pending = True

    def _held_live(self) -> list:
        """[(hid, account, raw)] of every receipt with a live record, in the order they were held."""
        return [(hid, a, e.raw) for hid, (a, e) in sorted(self.held_records.items())]

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
                self._held_record(acct, e, lambda err, f=f: f.done() or f.set_result(err))
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
        while q:
            if not self._receivers(acct):
                return
            pdu = q.popleft()
            self.held_total -= 1
            self._deliver_receipt(acct, pdu, on_done=_ignore, acked=True)
        del self.held[acct]

    def _retry_held(self, now: float) -> None:
        """Housekeeping: held receipts whose back-off has passed go to any free receiver."""
        for acct in [a for a, q in self.held.items() if q]:
            self._flush_held(acct, now)

    # ------------------------------------------------------------ across restarts
    def open_held(self, path: Path) -> int:
        """Offer again the receipts held when the last run ended (a crash too): the journal beside `path`
        (`<path stem>.journal`) and, from an older version's clean stop, `path` itself (msgpack). From now
        on every receipt held is journalled (needs the running loop). Returns how many were read."""
        jl = HeldJournal(path.with_suffix(".journal"))
        items = jl.replay() + _read_stop_file(path)
        live = [(i + 1, acct, raw) for i, (acct, raw) in enumerate(items)]
        jl.rewrite(live)                    # numbered afresh, durable before the old file goes
        path.unlink(missing_ok=True)
        jl.bytes = sum(len(raw) + _RECORD for _, _, raw in live)
        for hid, acct, raw in live:
            e = _HeldReceipt(raw, hid)
            self.held[acct].append(e)
            self.held_total += 1
            self.held_records[hid] = (acct, e)
            self.held_live_bytes += len(raw) + _RECORD
        self._hid = len(live)
        self.held_log = jl
        self.held_writer = GroupCommit(jl.write, self.loop or _running_loop(), name="telfilter-receipts-writer",
                                       what="held receipt record")
        if live:
            log.info("%d receipts held when the last run ended offered again", len(live))
        return len(live)

    async def close_held(self) -> int:
        """Clean stop: the journal rewritten with what is still held (by the writer, after every record it
        has; read by the next start). Returns how many are kept."""
        w = self.held_writer
        if w is None:
            return 0
        live = self._held_live()
        self._reset_pending = False
        self._compact_held()
        if not await w.idle(10.0):
            log.error("held receipts: the journal writer did not finish in 10 s (a stalled disk); the journal it "
                      "has written keeps every receipt held")
        w.close()
        self.held_writer = None
        if live:
            log.info("%d held receipts kept in %s for the next start", len(live), self.held_log.path)
        return len(live)


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
