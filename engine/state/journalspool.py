"""The state journal's crash spool: the counter updates not yet written to the journal, in a memory-mapped file
beside it, so `kill -9` (a crash, the OOM killer) loses none of them. An ad let through and killed at once used to
lose its count with the last FLUSH_EVERY (0.25 s) of updates: the 4th ad after a restart was let through.

Theory of operation. The journalled wrappers append each write's record to the store's buffer (`Records`, a
list). The first record a loop iteration appends asks for a pack: in serve, at the SMPP proxy's next flush point
(`later`: inbox.WriteBatch.later), before the writes of the message that committed leave (outside its slices and
reads, at the flush a write already asked for in that iteration, if any); elsewhere (no proxy) a call_soon, right
after that iteration. The records added meanwhile are packed as
one journal frame (journal.frame: CRC-framed msgpack, the journal's own format) and copied into a spool
(engine/crashspool.py, `overwrite=False`: `.journal.spool.<pid>.<token>` in the state directory, a shared mapping
a dead process leaves in the page cache). An ad's count so reaches the spool before its submit_sm reaches the
SMSC, so before the ESME can have the answer. (A call_soon alone did not ensure it under uvloop, which reads the
sockets of an iteration before it runs such callbacks: an answer caught by the zero-timeout poll they cause was
relayed first; and it cost each committing message a loop iteration of its own at a moderate rate.) When the
store's flush or snapshot takes the buffer (`taken`), every record in it is spooled and the spool's end noted;
once they are written (fsynced) that far is marked written (`written`). The next start (EmbeddedStore.__init__)
replays the unwritten frames of every dead process's spool after the journal segments, writes them to a new
segment, fsynced, and only then deletes those spools (`discard`).

At least once: a crash between a write and its mark replays that write's records twice (an over-count of at most
one flush: an ad counted twice is a conservative error for a cap). A power cut still loses what the OS had not
written back (the spool is never fsynced; the journal is, every 0.25 s).

Bounds: crashspool.CAPACITY bytes (~80,000 records, ~100 B each, not yet written: 16 s of a 5k/s load at ~1
record a message with a stalled disk); beyond, records are not spooled (`unspooled` counts them) and a crash
loses them as before. Cost: one frame packed on the loop per flush point (or iteration) that committed anything
(the writer thread packs the journal's own frame as before).
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import msgpack

from .. import crashspool
from .journal import _scan, frame

log = logging.getLogger("telfilter")


class Records(list):
    """The journal's buffer. `soon` (set once the spool runs): called at the first record since the last pack."""
    __slots__ = ("due", "soon")

    def __init__(self):
        super().__init__()
        self.due = False
        self.soon = None

    def append(self, rec) -> None:
        list.append(self, rec)
        if not self.due and self.soon is not None:
            self.due = True
            self.soon()


class JournalSpool:
    def __init__(self, state_dir: Path, buf: Records):
        self.path = Path(state_dir) / "journal"     # the spools: .journal.spool.<pid>.<token>
        self.buf = buf
        self.spool: crashspool.Spool | None = None
        self.spooled = 0                # buf[:spooled] are in the spool
        self.marked = 0                 # the spool's end as of the last write done
        self.unspooled = 0              # records the spool had no room for (the disk stalled that long)
        # later(fn): run fn before the proxy's next write leaves (serve: SmppProxy.batch.later, inbox.py); None:
        # loop.call_soon, right after the iteration (a loop iteration of its own per committing message)
        self.later = None

    def recover(self) -> tuple[list, list]:
        """Dead processes' unwritten records, oldest spool first, and the spools they came from (to `discard`
        once the records are durable elsewhere; until then a crash reads them again)."""
        recs, taken = [], []

        def take(data: bytes) -> None:
            bodies, off, why = _scan(data, 0)
            for body in bodies:
                recs.extend(msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True))
            if why is not None:             # (never written so: a frame is whole once the spool's end counts it)
                log.error("state journal crash spool: a %s frame at byte %d; the %d bytes after it ignored", why,
                          off, len(data) - off)
        crashspool.recover(self.path, take, taken=taken)
        return recs, taken

    def start(self, loop) -> None:
        """Spool from now on (serve's store timer: the loop that commits)."""
        if self.spool is None:
            try:
                self.spool = crashspool.Spool(self.path, overwrite=False)
            except OSError as e:
                log.warning("state journal: no crash spool in %s (%s): a crash loses the counter updates of its "
                            "last 0.25 s", self.path.parent, e)
                return
        self.buf.soon = partial(self.later or loop.call_soon, self.pack)
        self.pack()                     # what is buffered already

    def stop(self) -> None:
        """No more call_soon (the loop is stopping); what comes is spooled when the buffer is next taken."""
        self.buf.soon = None

    def pack(self) -> None:
        buf = self.buf
        buf.due = False
        k = self.spooled
        if k >= len(buf) or self.spool is None:
            return
        self.spooled = len(buf)
        if not self.spool.append(frame(buf[k:])):
            self.unspooled += len(buf) - k

    def taken(self) -> int:
        """The buffer is being emptied for a write: every record of it spooled; returns the mark to pass to
        `written` once they are on disk."""
        self.pack()
        self.spooled = 0
        return self.spool.end if self.spool is not None else 0

    def put_back(self, n: int) -> None:
        """`n` records taken and not written are back at the buffer's head (spooled already)."""
        self.spooled += n

    def dropped(self, n: int) -> None:
        """The buffer's oldest `n` records were dropped (a disk refusing writes for too long)."""
        self.spooled = max(0, self.spooled - n)

    def written(self, mark: int) -> None:
        if self.spool is not None and mark > self.marked:
            self.spool.wrote(mark - self.marked)
            self.marked = mark

    def close(self) -> None:
        """Deleted when everything it held was written; else left for the next start."""
        if self.spool is not None:
            self.buf.soon = None
            self.spool.close()
            self.spool = None
