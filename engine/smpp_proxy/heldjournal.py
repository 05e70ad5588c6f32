"""Held delivery receipts on disk as they are held, so a crash does not lose them.

A receipt with no free receiver bind of its account is held (routing.py) and the SMSC is told it was
delivered (deliver_sm_resp 0): from then on this element is the only place it exists. Kept in memory
only, a crash (kill -9, the OOM killer, a power cut) lost every receipt held at that moment. Now the
SMSC is answered only once the receipt is in this journal (fsynced; written by a writer thread,
engine/groupcommit.py, several receipts in one fsync), and the next start offers again every receipt
the journal holds and no record says is gone.

Format: records appended, each framed as its length and CRC-32 (little-endian u32 each) and a msgpack
body: [0, hid, account, raw PDU] (held) and [1, hid] (gone: delivered, refused by the ESME for good, or
handed over to another process). `hid` numbers the
receipts of one run of the writer; the journal is rewritten (a temporary file, fsynced, renamed over
it) at each start and clean stop, and while running once it is mostly gone records (`compact`), with
the receipts still held renumbered 1..n. A record a crash cut short ends the stream (it was never
acknowledged: its fsync had not returned); a damaged one (a checksum that does not match, a length no
record has) ends it too, and the file is copied aside (`.unreadable`) with an error logged: the
receipts before the damage are offered again. An append that failed and could not be cut off
(TornWrite) stops every later append until the loop has the journal rewritten from what is live. A gone record is not fsynced on its own
(it rides with the next write): after a crash a receipt may be offered twice, never lost.

Bounds: the live receipts are bounded by max_held_receipts (routing.py); the journal between two
compactions by COMPACT_BYTES beyond four times their size.
"""
from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib
from pathlib import Path

import msgpack

from ..durable import TornWrite, append_all, fsync_dir, replace_file

log = logging.getLogger("telfilter.smpp")

HOLD, GONE = 0, 1
COMPACT_EMPTY = 1 << 20        # the journal this big and four times what lives: rewritten
COMPACT_BYTES = 64 << 20       # the journal this big and four times what is held: rewritten
RETRY_S = 1.0                  # a rewrite the disk refused is tried again this long after (not at once: a spin)
MAX_RECORD = 8192              # longer than any held receipt's record (at most 4 KB, routing.MAX_HELD_RECEIPT)


_FRAME = struct.Struct("<II")  # a record's frame: the length of its msgpack body, its CRC-32


def _framed(rec) -> bytes:
    body = msgpack.packb(rec, use_bin_type=True)
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


class HeldJournal:
    def __init__(self, path: Path, max_record: int = MAX_RECORD, what: str = "held receipt"):
        self.path = Path(path)
        self.max_record = max_record       # a longer length is damage, not a record
        self.what = what                   # what a record holds, for the log
        self.bytes = 0             # the journal's size as the loop knows it (what it submitted since the rewrite)
        self.torn = False          # an append failed and could not be cut off: no append until a rewrite

    def replay(self) -> list:
        """[(account, raw)] of the receipts held and not gone, in the order they were held."""
        live: dict = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        pos, size = 0, len(data)
        try:
            while size - pos >= _FRAME.size:
                n, crc = _FRAME.unpack_from(data, pos)
                if n > self.max_record:
                    raise ValueError(f"a record of {n} bytes at byte {pos}")
                if pos + _FRAME.size + n > size:
                    break                   # the last record, cut short by a crash (never acknowledged)
                body = data[pos + _FRAME.size:pos + _FRAME.size + n]
                if zlib.crc32(body) != crc:
                    raise ValueError(f"checksum mismatch at byte {pos}")
                rec = msgpack.unpackb(body, raw=False)
                if not isinstance(rec, list) or not rec or rec[0] not in (HOLD, GONE):
                    raise ValueError(f"not a record at byte {pos}")
                if rec[0] == HOLD:
                    _, hid, acct, raw = rec
                    live[int(hid)] = (str(acct), bytes(raw))
                else:
                    live.pop(int(rec[1]), None)
                pos += _FRAME.size + n
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            bad = self.path.with_name(self.path.name + ".unreadable")
            shutil.copyfile(self.path, bad)
            log.error("%ss journal %s damaged (%s): a copy is in %s; the %d read before the damage are kept",
                      self.what, self.path, e, bad, len(live))
        return list(live.values())

    def rewrite(self, live) -> None:
        """The journal as [(hid, account, raw)] alone (atomic: fsynced temporary file renamed over it)."""
        data = b"".join(_framed([HOLD, hid, acct, raw]) for hid, acct, raw in live)
        # (the temporary file named as the start's sweep finds a crash's: NAME.tmp*)
        replace_file(self.path, data, self.path.with_name(self.path.name + f".tmp{os.getpid()}"))

    @staticmethod
    def record(item) -> bytes:
        if item[0] == "h":
            return _framed([HOLD, item[1], item[2], item[3]])
        return _framed([GONE, item[1]])

    def _append(self, data: bytes) -> None:
        if data:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                append_all(fd, data)
            finally:
                os.close(fd)

    def write(self, items) -> list:
        """The writer thread's batch: ("h", hid, account, raw), ("d", hid) or ("reset", [(hid, account, raw)])
        -- the journal rewritten as that list, which already holds what every earlier item did. One
        append and one fsync for the batch (a rewrite when it has a reset). Returns an error or None per item."""
        last = max((i for i, it in enumerate(items) if it[0] == "reset"), default=None)
        if self.torn and last is None:
            return [OSError(f"{self.what}s journal: a write could not be cut off; appends wait for its rewrite")] \
                * len(items)
        try:
            if last is None:
                self._append(b"".join(self.record(it) for it in items))
            else:
                tail = items[last + 1:]
                self.rewrite(list(items[last][1]) + [(it[1], it[2], it[3]) for it in tail if it[0] == "h"])
                self._append(b"".join(self.record(it) for it in tail if it[0] == "d"))
        except TornWrite as e:
            self.torn = True            # the loop rewrites it from what is live (RecordLog.report / failed)
            return [e] * len(items)
        except OSError as e:
            return [e] * len(items)
        if last is not None:
            self.torn = False
        return [None] * len(items)


_RECORD = 24                # bytes of a record beside its owner and payload (the journal's size as the loop counts it)


def _size(owner: str, raw: bytes) -> int:
    return len(owner) + len(raw) + _RECORD


class RecordLog:
    """Records kept on disk while they live: `add(owner, raw, done)` journals one (a writer thread, several in
    one fsync; `done(error)` on the loop once it is on disk), `gone(hid)` ends it; `records` holds every live
    one (hid -> (owner, raw)), and the journal is rewritten from them -- by the writer, in order with what it
    writes -- when it is mostly gone records, after a torn write, and at `close`. `open` reads what the last
    run left and numbers it afresh. Held receipts (held.py) keep theirs so."""

    def __init__(self, path: Path, name: str, what: str, stats=None, stat: str = "", max_record: int = MAX_RECORD,
                 trouble=None):
        self.journal = HeldJournal(path, max_record, what)
        self.name, self.what = name, what
        self.trouble = trouble                  # engine/disktrouble.py: failures said once, not one line each
        self.stats, self.stat = stats, stat     # the owner's counters: `<stat>_compactions` counted there too
        self.records: dict = {}
        self.live_bytes = 0
        self.writer = None
        self.loop = None
        self._hid = 0
        self._reset_pending = False
        self._retry = None              # the timer of a rewrite tried again after a refused one
        self.compactions = 0
        self.errors = 0

    def open(self, loop, extra=(), adopt=(), same=None) -> list:
        """[(hid, owner, raw)] the last run left (its journal, the journals `adopt` names -- a worker of a pool
        since made smaller left them -- then `extra` [(owner, raw)]), now the journal's only records (rewritten,
        fsynced; only then are the adopted journals removed, and the caller removes what `extra` came from); from
        now on `add` and `gone` journal. A record of `adopt` or `extra` the journal holds already is not taken
        twice (a crash between the rewrite and those removals reads them again at the next start); `same(owner,
        raw)` says what makes two records one (default: the record itself)."""
        from ..groupcommit import GroupCommit
        jl = self.journal
        taken = jl.replay()
        key = same or (lambda owner, raw: (owner, raw))
        have = {key(*rec) for rec in taken} if adopt or extra else ()
        for rec in [r for p in adopt for r in HeldJournal(p, jl.max_record, jl.what).replay()] + list(extra):
            k = key(*rec)
            if k not in have:
                have.add(k)
                taken.append(rec)
        live = [(i + 1, owner, raw) for i, (owner, raw) in enumerate(taken)]
        jl.rewrite(live)
        for p in (jl.path, *adopt):     # a rewrite's temporary file a crash left (only the serve lock's holder writes)
            for t in Path(p).parent.glob(Path(p).name + ".tmp*"):
                t.unlink(missing_ok=True)
        for p in adopt:             # in this journal now (a crash before this line: read again, not taken twice)
            Path(p).unlink(missing_ok=True)
        if adopt:
            fsync_dir(jl.path.parent)
        for hid, owner, raw in live:
            self.records[hid] = (owner, raw)
            self.live_bytes += _size(owner, raw)
        jl.bytes = self.live_bytes
        self._hid = len(live)
        self.writer = GroupCommit(jl.write, loop, name=self.name, what=self.what)
        self.loop = loop
        return live

    def add(self, owner: str, raw: bytes, done=None) -> int:
        """Journal a record; `done(error)` once written (None: errors logged). Returns its hid."""
        self._hid += 1
        hid = self._hid
        size = _size(owner, raw)
        self.records[hid] = (owner, raw)
        self.live_bytes += size
        self.journal.bytes += size
        done = done or self.report
        if self.writer is None or not self.writer.submit(("h", hid, owner, raw), done):
            # answered like a failed write, after the caller has the hid (never from inside this call)
            self.loop.call_soon(done, OSError(f"the {self.what} writer is full or closed"))
        return hid

    def replace(self, hid: int, raw: bytes) -> None:
        """A live record's payload changed (in memory): on disk at the next rewrite (`compact`, `close`)."""
        owner, old = self.records[hid]
        self.records[hid] = (owner, raw)
        self.live_bytes += len(raw) - len(old)

    def forget(self, hid: int) -> None:
        """A record whose write failed: no longer live (nothing to write about it)."""
        r = self.records.pop(hid, None)
        if r is not None:
            self.live_bytes -= _size(*r)

    def gone(self, hid: int, done=None) -> bool:
        """Record `hid` ends; `done(error)` once its gone record is on disk (when given). False (and `done` not
        called) when it was not live or nothing is journalled."""
        r = self.records.pop(hid, None)
        if r is None or self.writer is None:
            return False
        self.live_bytes -= _size(*r)
        jl = self.journal
        jl.bytes += _RECORD
        if not self.writer.submit(("d", hid), done or self.report) and done is not None:
            self.loop.call_soon(done, OSError(f"the {self.what} writer is full or closed"))
        # mostly gone records: rewritten (small journals only when little lives, so a rewrite stays cheap)
        if jl.bytes > 4 * self.live_bytes and (jl.bytes > COMPACT_BYTES or jl.bytes > COMPACT_EMPTY
                                               and self.live_bytes <= COMPACT_EMPTY // 4):
            self.compact()
        return True

    def gone_all(self, hids, done) -> None:
        """Every record of `hids` ends; `done(error)` once all of that is on disk (the writer keeps order)."""
        last = None
        for hid in hids:
            if hid in self.records and self.writer is not None:
                last = hid
        for hid in hids:
            if hid != last:
                self.gone(hid)
        if last is None or not self.gone(last, done):
            self.loop.call_soon(done, None)

    def live(self) -> list:
        """[(hid, owner, raw)] of every live record, in the order they were added."""
        return [(hid, o, raw) for hid, (o, raw) in sorted(self.records.items())]

    def compact(self, now: bool = False) -> None:
        """Rewrite the journal as what lives (by the writer, in order). After a refused rewrite the next one
        waits RETRY_S (`now`: not, the stop's): a torn journal asks for one after every failure, and on a
        read-only disk each failed at once, ~6,000 a second in a test."""
        if self._reset_pending or self.writer is None or self._retry is not None and not now:
            return
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        size = self.live_bytes

        def done(err):
            self._reset_pending = False
            if err is None:
                self.journal.bytes = size
                self.compactions += 1
                if self.stats is not None:
                    self.stats[self.stat + "_compactions"] += 1
                if self.trouble is not None:
                    self.trouble.ok()
            else:
                if self.loop is not None and self._retry is None and self.writer is not None:
                    self._retry = self.loop.call_later(RETRY_S, self._retry_compact)
                self.report(err)
        if self.writer.submit(("reset", self.live()), done):
            self._reset_pending = True

    def _retry_compact(self) -> None:
        self._retry = None
        if self.journal.torn:
            self.compact()

    def report(self, err) -> None:
        """A write's outcome (the default `done`): an error counted and logged."""
        self.failed(err)

    def failed(self, err, what: str = "") -> None:
        """A write's outcome (err None: it worked), counted; an error logged (through `trouble`: the first at
        once, then at most every few seconds, `what` saying what it cost); a journal a torn write left damaged
        is rewritten whole."""
        what = what or f"a {self.what} record could not be written: a crash now would lose it"
        if err is not None:
            self.errors += 1
            if self.trouble is not None:
                self.trouble.failed(err, what)
            else:
                log.error("%s: %s (%s)", self.name, what, err)
        elif self.trouble is not None:
            self.trouble.ok()
        if self.journal.torn:
            self.compact()

    async def close(self) -> int:
        """The journal rewritten as what lives (after everything written before); returns how many."""
        w = self.writer
        if w is None:
            return 0
        n = len(self.records)
        self._reset_pending = False
        self.compact(now=True)
        if not await w.idle(10.0):
            log.error("%s: the journal writer did not finish in 10 s (a stalled disk); the journal it has written "
                      "keeps every live %s", self.name, self.what)
        w.close()
        self.writer = None
        if self._retry is not None:         # armed by the stop's own rewrite, refused: nothing to retry now
            self._retry.cancel()
            self._retry = None
        return n
