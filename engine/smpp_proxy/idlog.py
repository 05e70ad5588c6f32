"""The message_id -> account map (msgids.py) on disk as it grows, so a crash does not lose it.

A receipt names only the SMSC's message_id; the map says which account sent it. Kept in memory and
written at a clean stop only, a crash (kill -9, the OOM killer) lost it, and with it the receipts of
every message of the last minutes: each was refused ESME_RX_T_APPN until the SMSC gave up.

Theory of operation. `MessageIds.add` appends each new id to `journal` (idspool.py's `SpoolJournal`, a list: one append
per forwarded message). Every FLUSH seconds the loop packs the ids added since (with their accounts and
notes, the columns `MessageIds.columns` writes) into one msgpack object and hands it to a writer
thread (engine/groupcommit.py), which appends it to the current segment, `<map>.log.<k>`; another
thread fdatasyncs it after each write (a slow disk never holds back the next write). Between two
writes the ids live in a crash spool as well (engine/crashspool.py: a shared memory mapping of a file beside
the map, `.<map>.log.spool.<pid>.<token>`, which a process that dies leaves in the page cache): when a
forwarded message's note is set (`MessageIds.note`, before its submit_sm_resp goes out to the ESME,
forward.py) the journal copies its id, account and note there as one record (idspool.py, ~0.6 µs), and a
write done marks the records before it written. A process crash (kill -9, the OOM killer) so loses no
id whose resp an ESME may have; it used to lose the last FLUSH of them, whose receipts were refused
until the SMSC gave up. A power cut loses what the last fdatasync had not covered. A segment is closed after `bound` ids and the one before it deleted, so
the two newest segments always hold the map's newest `bound` ids (its coverage) in at most twice the
map's size on disk. `open` (at start) reads the clean stop's file, if any, then the segments in order
(a torn last object ends a segment; an unreadable one is copied aside), writes the whole map as the
first object of a new segment (fsynced) and only then removes the files it read, dead writers' spools
among them (their unwritten records are read after the segments: the newest ids). `close(clean)`
after `save_map` removes the segments (the clean stop's file holds the map). Notes read back from segments or
spools (the last run did not stop cleanly) lose their charged bit (msgids.py `forget_charges`): the state journal may have
lost the counts they name.

Bounds: the ids of one FLUSH in memory (what the loop forwards in 0.05 s: ~250 ids at 5k/s, packed in ~70 µs), MAX_WAITING writes waiting for
a stalled disk (beyond, their ids are not logged: counted and logged, the map itself is unaffected), two
segments of `bound` ids on disk (~30 B an id with its note: 2 x 2M ids ~120 MB at the default bound), one spool
of crashspool.CAPACITY bytes (~200,000 records not yet written; a disk stalled for longer leaves the newer ids out
of it, `unspooled` counts them, and a crash then loses them as before).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from functools import partial
from pathlib import Path

import msgpack

from ..disktrouble import trouble
from ..groupcommit import GroupCommit
from ..durable import fsync_dir
from .. import crashspool
from .idspool import SpoolJournal, spool_records
from .msgids import unpack_map

log = logging.getLogger("telfilter.smpp")
FLUSH = 0.05                # seconds between two writes of the ids added meanwhile (the loop adds at most
                            # what it forwards in that time: the buffer's bound; packing them pauses the loop
                            # ~0.35 us an id: at 0.2 s, 0.36 ms at 5k/s, seen in the p99 added latency)
MAX_WAITING = 200           # writes waiting for a stalled disk (10 s of ids); beyond, ids go unlogged (counted)


def _apply(ids, d) -> int:
    n = ids.add_columns(d)
    if "learned" in d and hasattr(ids, "learned"):
        n += ids.learned.add_columns(d["learned"])
    return n


class IdLog:
    def __init__(self, base: Path, ids):
        self.base = Path(base)              # the clean stop's file (message_ids[.wN].msgpack)
        self.ids = ids
        self.stem = self.base.name[:-len(".msgpack")] if self.base.name.endswith(".msgpack") else self.base.name
        self.pattern = re.compile(re.escape(self.stem) + r"\.log\.(\d+)$")
        self.buf: SpoolJournal | list = []
        self.spool: crashspool.Spool | None = None
        self.marked = 0                     # the spool's `end` when the last write was handed over
        self.from_spools = 0                # ids `open` read from dead writers' spools
        self.seg = 0                        # the segment written to
        self.in_seg = 0                     # ids in it
        self.fd = -1                        # the writer thread's descriptor
        self.writer: GroupCommit | None = None
        self.timer = None
        self.errors = 0
        self._fd_lock = threading.Lock()    # the writer thread's descriptor, against the sync thread's dup
        self._cut_to = None                 # the segment's length before a torn write not yet cut off
        self._sync_wanted = threading.Event()
        self._syncer: threading.Thread | None = None

    def _segments(self) -> list:
        out = []
        for p in self.base.parent.glob(self.stem + ".log.*"):
            m = self.pattern.match(p.name)
            if m:
                out.append((int(m.group(1)), p))
        return sorted(out)

    def _path(self, k: int) -> Path:
        return self.base.parent / f"{self.stem}.log.{k}"

    def _read_back(self):
        """What the last run of this map left (clean stop file, segments, dead writers' spools), into the map:
        (ids read, files read, spools taken, segments read)."""
        n, read = 0, []
        try:
            n += _apply(self.ids, unpack_map(self.base.read_bytes()))
            read.append(self.base)
        except FileNotFoundError:
            pass
        except ValueError as e:
            bad = self.base.with_name(self.base.name + ".unreadable")
            os.replace(self.base, bad)
            log.error("message-id map %s unreadable (%s): moved to %s; receipts of messages sent before the restart "
                      "will be refused ESME_RX_T_APPN", self.base, e, bad)
        segs = self._segments()
        for _, p in segs:
            n += self._replay(p)
            read.append(p)
        spooled = []                        # dead writers' spools: what they held is durable in the new segment
        try:                                # before they are deleted
            crashspool.recover(self._spool_of(), self._replay_spool, taken=spooled)
        except OSError as e:
            log.error("message-id log: the crash spools beside %s could not be read (%s)", self.base, e)
        return n + self.from_spools, read, spooled, segs

    def open(self, loop, adopt=()) -> int:
        """Read what the last run left (clean stop file, then segments) into the map, then the same of each
        map file in `adopt` (a pool's workers no longer started); start a new segment holding all of it (only
        then are the files read removed); journal every id added from now on. Returns how many ids were read."""
        n, read, spooled, segs = self._read_back()
        unclean = bool(segs or spooled)
        for base in adopt:
            other = IdLog(base, self.ids)
            m, r, sp, sg = other._read_back()
            n, read, spooled, unclean = n + m, read + r, spooled + sp, unclean or bool(sg or sp)
            self.from_spools += other.from_spools
        if unclean:
            # the last run did not stop cleanly: a note's count toward an advertiser's cap may be lost with the
            # state journal's last 0.25 s, so no note read back offers a count to be given back (an over-count)
            cleared = self.ids.forget_charges()
            if cleared:
                log.info("%d message ids read back after an unclean stop keep their advertiser-cap counts (a "
                         "cancel_sm or replace_sm of them gives nothing back)", cleared)
        self.seg = segs[-1][0] + 1 if segs else 1
        path = self._path(self.seg)
        try:
            self.base.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:    # the whole map first: durable before the files it came from go
                f.write(self.ids.dump())
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(path.parent)
            for p in read:
                p.unlink(missing_ok=True)
            crashspool.discard(spooled)
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError as e:
            # the message_ids writer's failure until a restart (/healthz 503, telfilter_disk_failing): no write
            # will ever say it works again, and a crash from now on loses the map
            trouble("message_ids").failed(e, f"message-id log {path} not started: the map is kept at a clean stop "
                                             "only (a crash loses it) until a restart")
            return n
        self.in_seg = len(self.ids)
        try:
            self.spool = crashspool.Spool(self._spool_of(), overwrite=False)
        except OSError as e:
            log.warning("message-id log %s: no crash spool beside it (%s): a crash loses the ids of its last %.2f s",
                        path, e, FLUSH)
        self.buf = SpoolJournal(self.spool, self.ids._accounts)
        self.ids.journal = self.buf
        self.writer = GroupCommit(self._write, loop, name="telfilter-msgid-writer", max_waiting=MAX_WAITING,
                                  what="message-id log write")
        self.loop = loop
        self.timer = loop.call_later(FLUSH, self._tick)
        if n:
            log.info("%d message ids of the last run read back (%d from its crash spool): their receipts reach their "
                     "accounts", n, self.from_spools)
        return n

    def _spool_of(self) -> Path:
        """The name the spools are made beside (crashspool: `.<stem>.log.spool.<pid>.<token>`)."""
        return self.base.parent / f"{self.stem}.log"

    def _replay_spool(self, data: bytes) -> None:
        try:
            self.from_spools += _apply(self.ids, spool_records(data))
        except ValueError as e:             # (never written so: the records are whole once `end` counts them)
            bad = self.base.parent / f"{self.stem}.log.spool.unreadable"
            bad.write_bytes(data)
            log.error("message-id log: a crash spool's records unreadable (%s): a copy is in %s", e, bad)

    def _replay(self, p: Path) -> int:
        data = p.read_bytes()
        up = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1))
        n = 0
        try:
            up.feed(data)
            for d in up:
                if not isinstance(d, dict):
                    raise ValueError("not a map")
                n += _apply(self.ids, d)
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            bad = p.with_name(p.name + ".unreadable")
            shutil.copyfile(p, bad)
            log.error("message-id log %s unreadable after %d ids (%s): a copy is in %s", p, n, e, bad)
        return n

    # ------------------------------------------------------------ the loop's side
    def _tick(self) -> None:
        self.flush()
        self.timer = self.loop.call_later(FLUSH, self._tick)

    def flush(self) -> None:
        buf = self.buf
        if not buf or self.writer is None:
            return
        mids = buf[:]
        buf.clear()
        data = msgpack.packb(self.ids.columns_of(mids), use_bin_type=True)
        spooled = 0                         # the spool's records of these ids: written once this write is done
        if self.spool is not None:
            spooled, self.marked = self.spool.end - self.marked, self.spool.end
        if not self.writer.submit(("data", data), partial(self._data_written, spooled)):
            self._data_written(spooled, OSError(f"{len(mids)} ids not logged: {MAX_WAITING} writes already wait for "
                                                "the disk"))
            return
        self.in_seg += len(mids)
        # a new segment after `bound` ids (never skipped: a rotation lost would delete the newest segment later)
        if self.in_seg >= self.ids.bound and self.writer.submit(("rotate", self.seg + 1),
                                                                partial(self._rotated, self.seg + 1)):
            self.seg += 1
            self.in_seg = 0

    def _data_written(self, spooled: int, err) -> None:
        # written, or given up on (counted lost): the spool's copy of those records is done with either way
        if spooled and self.spool is not None:
            self.spool.wrote(spooled)
        self._written(err)

    def _rotated(self, seg: int, err) -> None:
        self._written(err)
        # refused by the disk (the new segment not opened: read-only, no room): the ids go on into the old one,
        # so the rotation is asked for again with the same number at the next write; counted as made, the next
        # one (seg + 1) deleted the old segment and the newest ids in it (a crash then lost them)
        if err is not None and self.seg == seg:
            self.seg, self.in_seg = seg - 1, self.ids.bound

    def _written(self, err) -> None:
        if err is not None:
            self.errors += 1
            trouble("message_ids").failed(err, f"message-id log not written ({self.errors} writes so far): a crash "
                                               "now would lose those ids' receipts")
        else:
            trouble("message_ids").ok()

    async def close(self, clean: bool) -> None:
        """Stop journalling, once what waits is written; `clean`: the map was saved whole by `save_map`, the
        segments go."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.writer is None:
            return
        self.flush()
        self.ids.journal = None
        self.writer.submit(("close", clean), self._written)
        if not await self.writer.idle(10.0):
            log.error("message-id log: the writer did not finish in 10 s (a stalled disk)")
        self.writer.close()
        self.writer = None
        if self.spool is not None:
            self.buf.spool = None
            self.spool.close()              # deleted when all it held was written; else the next start reads it
            self.spool = None

    # ------------------------------------------------------------ the writer thread's side
    def _write(self, items) -> list:
        errs = [None] * len(items)
        for i, (kind, arg) in enumerate(items):
            try:
                if kind == "data":
                    if self.fd >= 0:
                        self._append(arg)
                elif kind == "rotate":
                    fd = os.open(self._path(arg), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    self._close_fd(fd)
                    fsync_dir(self.base.parent)
                    for k, p in self._segments():
                        if k < arg - 1:
                            p.unlink(missing_ok=True)
                elif kind == "close":
                    self._close_fd(-1)
                    if arg:
                        for _, p in self._segments():
                            p.unlink(missing_ok=True)
            except OSError as e:
                errs[i] = e
        self._sync_soon()
        return errs

    def _append(self, arg: bytes) -> None:
        """One object appended whole, or none of it: a write a full disk cut short is cut back, so the ids
        written once there is room again are not behind a torn object (replay stops at one: every id after
        it was lost). A cut-back that fails too (a read-only disk) is made again before the next write."""
        fd = self.fd
        if self._cut_to is not None:
            os.ftruncate(fd, self._cut_to)
            self._cut_to = None
        start = os.fstat(fd).st_size
        data = memoryview(arg)
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            if len(data) < len(arg):
                try:
                    os.ftruncate(fd, start)
                except OSError:
                    self._cut_to = start
            raise

    def _close_fd(self, new: int) -> None:
        """The segment written to becomes `new` (-1: none); the old one fsynced and closed."""
        with self._fd_lock:
            fd, self.fd = self.fd, new
        self._cut_to = None                 # (a torn last object only ends the segment it is in)
        if fd >= 0:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # The fdatasync after each write runs in a thread of its own: on a slow disk it would otherwise hold back
    # the next write (the ids of a kill -9 then lost are those of the last FLUSH, not of the last fdatasync).
    def _sync_soon(self) -> None:
        self._sync_wanted.set()
        if self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_loop, name="telfilter-msgid-sync", daemon=True)
            self._syncer.start()

    def _sync_loop(self) -> None:
        while True:
            self._sync_wanted.wait()
            self._sync_wanted.clear()
            with self._fd_lock:
                fd = os.dup(self.fd) if self.fd >= 0 else -1
            if fd < 0:
                if self.writer is None:
                    return
                continue
            try:
                os.fdatasync(fd)
            except OSError as e:
                self.loop.call_soon_threadsafe(self._written, e)
            finally:
                os.close(fd)
