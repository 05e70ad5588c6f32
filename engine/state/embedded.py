"""The embedded state store: counters, recipient history and call durations that survive
`kill -9`, kept in `<data dir>/state/`.

Theory of operation
-------------------
Judging keeps using the in-memory structures (MemoryCounters, RecipientHistory,
CallDurations): this module wraps them at their interface. Every write the pipeline's commit
step makes (`add`, `add_distinct`, `history.add`, `calls.add`) is applied in memory and
appended, as a small record with the message's own timestamp, to an in-memory buffer. A
timer (serve's event loop, every `FLUSH_EVERY` s) hands the buffer to a worker thread that
writes it as one CRC-framed record to the current journal segment and fsyncs it: the
per-message path never waits for the disk. Every `SNAPSHOT_EVERY` s a new journal segment is
started and a forked child writes the tables as they were at the fork, from a copy-on-write
image (forksnap.py: the loop pauses for the fork, ~4x shorter than copying the tables, and no
table is copied in memory); journal flushes go on while it writes, and the file is installed
(rename; the previous snapshot stays as `snapshot.prev` with the journal segments it needs)
once the child succeeded. Where fork is refused, and on a clean stop, the tables are copied on
the loop instead (one memcpy per table) and a worker thread writes the copy.

Start-up (embedded_startup.py) loads `snapshot` (or `snapshot.prev` if `snapshot` is missing or fails its CRC) and
replays, in order, the journal segments from the one the snapshot names; a torn last frame
(a crash in the middle of a write) is ignored with a warning naming file:offset. Replaying a
record calls the same in-memory operation with the same arguments, so the state after a
restart is the state before it, minus what the crash cut off.

Loss window: on a power cut, the commits of at most the last flush interval (`FLUSH_EVERY` =
0.25 s, plus the time its fsync takes; under 1 s); on `kill -9` (a crash) none: the records not
yet written are in a crash spool too, from the end of the loop iteration that committed them
(journalspool.py), and the next start replays them after the journal; on SIGTERM/SIGINT nothing
(serve flushes and snapshots before it exits). The report index is not journalled
here: every 5656 report is already fsync'ed to reports.jsonl before it counts, and the index
is rebuilt from that file on start.

Journal records carry keys with no strings in them: a string part of a key (a folded sender
ID, "o:shopabc", a content key) is replaced by a 63-bit BLAKE2b digest of it (ints, the E.164
numbers, stay as they are), so records are compact, always encodable (a sender ID with odd
bytes included) and the same in every process. The tables receive the same digested keys
(their own hash, slots.stable_hash, is process-independent too and sees only ints here).
Two different strings share a digest with probability 2^-63 per pair.

One process owns a data dir's state: `state/lock` is flock'ed for the life of the process,
and a second serve on the same data dir is refused with a clear error.
"""
from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from pathlib import Path

from ..disktrouble import trouble
from ..durable import TornWrite, append_all, fsync_dir
from ..rules import slotdump  # noqa: F401 (imported here, before any fork: a forked writer imports nothing)
from . import forksnap
from .embedded_startup import StateError, Startup  # noqa: F401 (StateError: the store's error, raised here)
from .journalspool import JournalSpool, Records
from .journalled import (JournalledCalls, JournalledCounters, JournalledHistory, apply_record,  # noqa: F401
                         dump_state, load_state, stable, stable_key)
from .journal import frame, install_snapshot, snapshot_tmp, write_snapshot_tmp

log = logging.getLogger("telfilter")

FLUSH_EVERY = 0.25          # seconds between journal flushes (each one fsync'ed)
SNAPSHOT_EVERY = 60.0       # seconds between snapshots
SNAPSHOT_JOURNAL_BYTES = 64 << 20    # ...or sooner, once the journal since the last one is this big
MAX_BUFFER = 1_000_000      # records kept for retry while the disk refuses writes (~100 B each)


# ---------------------------------------------------------------- the store

class EmbeddedStore(Startup):
    """Owns `<data dir>/state/`: load on open, `flush()` on a timer, `snapshot()` now and then,
    `close()` on a clean stop. The coroutines run on serve's event loop; file I/O runs in a
    worker thread, one operation at a time (`_io` lock), in the order they were started."""

    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir) / "state"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lockfd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lockfd)
            raise StateError(f"{self.dir}: in use by another telfilter serve (state/lock is held)") from None
        self.buf = Records()            # the wrappers append each write's record (a list)
        self.warnings: list[str] = []
        self.flushes = self.records = 0
        self.write_errors = self.unjournalled = 0      # disk trouble, for logs and metrics
        self.trouble = trouble("state_journal")
        self._io = asyncio.Lock()
        self._finishing = None          # a snapshot being written in the background (snapshot())
        self._child = None              # ... by this forked writer (forksnap.Writer)
        self._closing = False           # close() has begun
        self.fork = True                # snapshots by a forked writer (forksnap.py) where fork works
        self._last_snap = time.monotonic()
        try:
            mem_c, mem_h, mem_k, first_seg = self._load()
        except StateError:
            os.close(self._lockfd)
            raise
        self.seg = max([first_seg] + [n + 1 for n in self._segments()])
        self.seg_bytes = 0
        self.spool = JournalSpool(self.dir, self.buf)
        self._recover_spools(mem_c, mem_h, mem_k)
        self.counters = JournalledCounters(mem_c, self.buf)
        self.history = JournalledHistory(mem_h, self.buf.append)
        self.calls = JournalledCalls(mem_k, self.buf.append)

    # ------------------------------------------------------------ running
    def _take(self) -> tuple[list, int]:
        """The buffered records, and the crash spool's mark to pass to `spool.written` once they are on disk."""
        mark = self.spool.taken()
        recs = self.buf[:]
        del self.buf[:]          # the wrappers hold this very list
        return recs, mark

    def _write(self, seg: int, data: bytes) -> None:
        fd = os.open(self._seg_path(seg), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            append_all(fd, data)         # all or nothing: a torn frame would hide every frame after it
        finally:
            os.close(fd)
        if self.seg_bytes == 0:
            fsync_dir(self.dir)          # a new segment's directory entry is durable too
        self.seg_bytes += len(data)

    def _write_records(self, seg: int, recs: list) -> None:
        self._write(seg, frame(recs))       # packed in the worker thread too: off the loop

    async def flush(self) -> None:
        """Write and fsync what was committed since the last flush (in a worker thread)."""
        async with self._io:
            recs, mark = self._take()
            if recs:
                err, cancel = await _in_thread(self._write_records, self.seg, recs)
                if err is None:
                    self.flushes += 1
                    self.records += len(recs)
                    self.spool.written(mark)
                else:
                    self.buf[:0] = recs      # kept for the next attempt, in order
                    self.spool.put_back(len(recs))
                    self._after_failed_write(err)
                if cancel is not None:
                    raise cancel
                if err is not None:
                    raise err

    def due(self) -> bool:
        if self._finishing is not None and not self._finishing.done():
            return False                # one at a time; flushes go on while it is written
        return (time.monotonic() - self._last_snap >= SNAPSHOT_EVERY
                or self.seg_bytes >= SNAPSHOT_JOURNAL_BYTES)

    async def snapshot(self, fork: bool = True) -> None:
        """Start a new journal segment and save the state as of now. With `fork` (the timer's
        snapshots) a forked child writes it from a copy-on-write image (forksnap.py: the loop pauses
        for the fork only) and it is installed in the background, journal flushes going on
        meanwhile; else (a clean stop, or fork refused) the tables are copied on the loop and
        written by a worker thread before this returns. One snapshot at a time, each with its own
        temporary file."""
        await self._lock_settled()
        try:
            recs, mark = self._take()
            old, self.seg = self.seg, self.seg + 1
            self._last_snap = time.monotonic()
            head = {"next_segment": old + 1, "written": time.time()}
            tmp = snapshot_tmp(self.dir / "snapshot", old)
            child = forksnap.start(self._child_write, tmp, head) if fork and self.fork else None
            state = None if child is not None else dump_state(self.counters.mem, self.history.mem, self.calls.mem)
            done = {"tail": not recs}
            err, cancel = await _in_thread(self._write_tail, old, recs, done)
            self.seg_bytes = 0                  # the next records go to the new segment either way
            if done["tail"]:
                self._tail_kept(recs, mark, True)   # in segment `old`, which replay reads while the snapshot
            elif child is not None or cancel is not None:   # that failed is not there: never written twice
                self._tail_kept(recs, mark, False)
            if (err is not None or cancel is not None) and child is not None:
                child.kill()                    # its snapshot would count the tail that is not written
                tmp.unlink(missing_ok=True)
            if cancel is not None:
                raise cancel
            if err is not None and child is not None:
                raise err
            if child is not None:               # installed in the background; the next one waits for it
                self._child = child
                self._finishing = asyncio.ensure_future(self._finish(old, tmp, child))
                return
            # the tables copied above hold the tail: a journal that refused it (a full disk: the backlog is larger
            # than the snapshot) leaves the snapshot to save it, and the stop's state is saved all the same
            tail_err = err
            err, cancel = await _in_thread(self._install, old, tmp, None, {**head, "state": state})
            if not done["tail"]:                # (in the snapshot: not counted as journal records)
                self._tail_kept(recs, mark, err is None and cancel is None, journalled=False)
            if cancel is not None:
                raise cancel
            if err is not None and tail_err is not None:
                raise tail_err                  # neither written: the journal's failure, as a failed flush's
            if err is not None and fork:        # the timer's, fork refused: a snapshot writer's failure, as a
                self.write_errors += 1          # forked one's is (_finish); said as the journal's, the next flush
                _snapshot_failed(err)           # called it over (/healthz 200, no snapshot working)
                return
            if err is not None:
                raise err                       # the stop's: its caller says the state was not saved
            trouble("state_snapshot").ok()
        finally:
            self._io.release()

    async def _lock_settled(self) -> None:
        """Take `_io` with no snapshot being written in the background."""
        while True:
            if self._closing and self._child is not None and not self._child.abandoned:
                self._child.abandon()   # a clean stop writes its own: never waits for a slow writer
            await self.settled()
            await self._io.acquire()
            if self._finishing is None or self._finishing.done():
                return
            self._io.release()          # one was started while we waited for the lock

    async def settled(self) -> None:
        """Wait for a snapshot being written in the background."""
        f = self._finishing
        if f is not None:
            await asyncio.shield(f)
            if self._finishing is f:
                self._finishing = None

    async def _finish(self, old: int, tmp: Path, child) -> None:
        err, _ = await _in_thread(self._install, old, tmp, child, None)
        self._child = None
        if err is None:
            trouble("state_snapshot").ok()
            return
        if child.abandoned:
            log.info("state snapshot by pid %d abandoned: the stop writes its own", child.pid)
            return
        self.write_errors += 1
        _snapshot_failed(err)

    def _child_write(self, tmp: Path, head: dict) -> None:
        """In the forked child: the tables as they were at the fork, from their own memory."""
        state = dump_state(self.counters.mem, self.history.mem, self.calls.mem, views=True)
        write_snapshot_tmp(tmp, {**head, "state": state})

    def _tail_kept(self, recs: list, mark: int, on_disk: bool, journalled: bool = True) -> None:
        """A snapshot's tail `recs` is on disk (in the journal, or in the snapshot's tables), else back at the
        buffer's head for the next attempt, in order."""
        if on_disk:
            self.records += len(recs) if journalled else 0
            self.spool.written(mark)
        else:
            self.buf[:0] = recs
            self.spool.put_back(len(recs))

    def _after_failed_write(self, err) -> None:
        """A segment that could not be cut back after a failed append ends in a torn frame, and replay
        stops reading a segment there: the next records go to a new one."""
        if isinstance(err, TornWrite):
            self.seg += 1
            self.seg_bytes = 0

    def _write_tail(self, old: int, tail: list, done: dict) -> None:
        if tail:
            self._write(old, frame(tail))
            done["tail"] = True

    def _install(self, old: int, tmp: Path, child, snap) -> None:
        """Worker thread: the snapshot of everything before segment `old + 1` into place (written by
        `child`, else `snap` written here), then the segments no snapshot needs any more removed.
        A failed one leaves no temporary file behind (a full disk would stay full)."""
        try:
            if child is not None:
                child.wait()
            else:
                write_snapshot_tmp(tmp, snap)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self._snap_next is not None and old + 1 < self._snap_next:      # (one at a time: never; but a
            tmp.unlink(missing_ok=True)                                      # snapshot never goes back)
            return
        # the snapshot being replaced becomes snapshot.prev: keep the segments it needs
        keep_from = self._snap_next if self._snap_next is not None else 0
        install_snapshot(self.dir / "snapshot", tmp)
        self._snap_next = old + 1
        for n in self._segments():
            if n < keep_from:
                self._seg_path(n).unlink(missing_ok=True)

    async def run(self) -> None:
        """The timer: flush every FLUSH_EVERY s, snapshot when due. Cancelled on stop."""
        self.spool.start(asyncio.get_running_loop())
        try:
            while True:
                await asyncio.sleep(FLUSH_EVERY)
                try:
                    # shielded: a stop cancels the timer, never a write half-way (close() waits for it)
                    await asyncio.shield(self.snapshot() if self.due() else self.flush())
                except OSError as e:         # a full or failing disk: keep serving, say so (once, then every 10 s:
                    self.write_errors += 1   # a line every 0.25 s buried the rest of the log)
                    over = len(self.buf) - MAX_BUFFER
                    if over > 0:             # bounded: the oldest go (still in memory, not crash-safe)
                        del self.buf[:over]
                        self.spool.dropped(over)
                        self.unjournalled += over
                    self.trouble.failed(e, f"state journal write failed (counters stay in memory: {len(self.buf)} "
                                           "updates wait for the disk, in the crash spool while it has room, lost by a power cut until "
                                           "written; "
                                           f"{self.unjournalled} more, beyond the wait's bound, are in memory only)")
                else:
                    self.trouble.ok()
        finally:
            self.spool.stop()              # (records go on into the buffer, spooled when it is next taken)

    async def close(self) -> None:
        """Clean stop: everything committed is in a snapshot; the journal is empty. A forked writer
        still at work is stopped (the snapshot written now supersedes it; the stop need not wait)."""
        self._closing = True
        try:
            await self.snapshot(fork=False)
        finally:
            self.spool.close()          # deleted when all it held was written
        os.close(self._lockfd)


def _snapshot_failed(err) -> None:
    # one a minute at most (SNAPSHOT_EVERY), but a disk writer like the others: said once then every 10 s, counted,
    # and /healthz 503 until a later snapshot is installed (engine/disktrouble.py)
    trouble("state_snapshot").failed(err, "state snapshot failed (the journal since the last one is kept, nothing "
                                          "is lost; it grows until a snapshot works)")


async def _in_thread(fn, *args):
    """Run blocking journal I/O in a worker thread and return (error, cancellation). A cancel
    (serve stopping) does not abandon the write in flight: it is waited for (an fsync is
    bounded), so records taken from the buffer are neither lost nor written twice, and the
    caller re-raises the cancellation after settling the records."""
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    cancel = None
    while not fut.done():
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError as c:
            cancel = c
        except BaseException:           # the write's own error: read from the future below
            pass
    return fut.exception(), cancel
