"""Held delivery receipts: kept for an account with no free receiver bind, offered again as room
comes, and kept on disk from the moment the SMSC is told they were delivered (heldjournal.py).

Theory of operation (routing.py `_deliver_receipt` decides when a receipt is held). A receipt the
SMSC still waits on is held only once its journal record is fsynced: `_hold` hands the record to the
receipts' writer thread (engine/groupcommit.py) and answers the SMSC when it is on disk (0), or, when
it could not be written, ESME_RX_T_APPN (the SMSC keeps it and delivers it again), so an
acknowledged receipt survives a crash. Until then it counts toward `max_held_receipts` and is kept
in `held_writing`. One already acknowledged (offered again from the held queue, handed over by
another process) is held at once; its record is written if it has none yet. A receipt leaves the
journal (a gone record, not fsynced alone) when its ESME takes it or refuses it for good, or another
process takes it over (state/receipts.py). `open_held` (serve, before the proxy starts) reads the
journal, and the clean stop file of an older version, and offers what they hold again;
`close_held` (serve, after the hand-overs ended) rewrites the journal with what is still held.

Without `open_held` (the harness, tests) receipts are held in memory only, as before.
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
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
    """Mixin of `SmppProxy`: receipts held for an account (`held`: account -> deque, `held_total`)."""

    held_log: HeldJournal | None = None
    held_writer: GroupCommit | None = None
    _hid = 0

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
        self._hid += 1
        entry.hid = hid = self._hid
        self.held_log.bytes += len(entry.raw) + _RECORD
        if acked:
            # acknowledged already (by another process, or before the journal): held now, written when it can be
            self._held_in(acct, entry)
            if not w.submit(("h", hid, acct, entry.raw), self._held_record_written):
                self._held_record_written(OSError("the receipts writer is full or closed"))
            return on_done(True)
        self.held_total += 1                           # counts toward the bound while it is written
        self.held_writing[hid] = (acct, entry)
        if not w.submit(("h", hid, acct, entry.raw), lambda err: self._held_written(acct, entry, on_done, err)):
            self._held_written(acct, entry, on_done, OSError("the receipts writer is full or closed"))

    def _held_written(self, acct, entry, on_done, err) -> None:
        self.held_writing.pop(entry.hid, None)
        self.held_total -= 1
        if err is not None:
            self.stats["receipts_not_recorded"] += 1
            log.error("receipt for account %s not held: its journal record could not be written (%s); the SMSC "
                      "delivers it again", acct, err)
            entry.hid = 0
            return on_done(False)
        self._held_in(acct, entry)
        on_done(True)
        if self._receivers(acct):
            self._flush_held(acct)          # a receiver bound while it was written

    def _held_record_written(self, err) -> None:
        if err is not None:
            self.stats["receipts_not_recorded"] += 1
            log.error("a held receipt's journal record could not be written (%s): a crash now would lose it", err)

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
        entry.hid = 0
        jl = self.held_log
        jl.bytes += _RECORD
        if w.submit(("d", hid), self._held_record_written) and (
                jl.bytes > COMPACT_EMPTY and not self.held_total and not self.held_writing
                or jl.bytes > COMPACT_BYTES):
            self._compact_held()

    def _compact_held(self) -> None:
        live = self._held_live()
        size = sum(len(raw) + _RECORD for _, _, raw in live)
        if live and self.held_log.bytes < 4 * size:
            return
        if self.held_writer.submit(("reset", live), self._held_record_written):
            self.held_log.bytes = size
            self.stats["receipts_journal_compactions"] += 1

    def _held_live(self) -> list:
        """[(hid, account, raw)] of every receipt held or being written, in the order they were held."""
        live = [(e.hid, a, e.raw) for a, q in self.held.items() for e in q if e.hid]
        live += [(hid, a, e.raw) for hid, (a, e) in self.held_writing.items()]
        return sorted(live)

    def deliver_handed_over(self, acct, raws) -> None:
        """Receipts another process held for `acct` (engine/state/receipts.py): acknowledged to the SMSC."""
        for raw in raws:
            self._deliver_receipt(acct, _HeldReceipt(raw), on_done=_ignore, acked=True)

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
            self.held[acct].append(_HeldReceipt(raw, hid))
            self.held_total += 1
        self._hid = len(live)
        self.held_log = jl
        self.held_writer = GroupCommit(jl.write, self.loop or _running_loop(), name="telfilter-receipts-writer")
        if live:
            log.info("%d receipts held when the last run ended offered again", len(live))
        return len(live)

    async def close_held(self) -> int:
        """Clean stop: every record written, then the journal rewritten with what is still held (read by the
        next start). Returns how many are kept."""
        w = self.held_writer
        if w is None:
            return 0
        if not await w.idle(10.0):
            log.error("held receipts: the journal writer did not finish in 10 s (a stalled disk)")
        w.close()
        self.held_writer = None
        live = self._held_live()
        self.held_log.rewrite(live)
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
    import asyncio
    return asyncio.get_running_loop()


def _ignore(ok) -> None:
    """on_done of a receipt the SMSC was answered for when it was held."""
