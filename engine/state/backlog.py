"""The state journal's way back from a disk that refused it (full, read-only): what the store's timer does while
its journal writes fail, and how much it keeps in memory meanwhile.

Theory of operation. Every update is applied to the tables before its record is buffered for the journal, so
the tables always hold the state; the journal and the snapshots are how it survives a restart. A flush the disk
refuses keeps its records at the buffer's head (EmbeddedStore.flush). Before, the timer tried that whole backlog
again every 0.25 s as one frame, and the minute's snapshot wrote the backlog to the journal first: the journal
came back only once the disk had room for the whole backlog at once. On a disk that freed less than that it never
did (probed on a tmpfs under ~2,000 updates/s: 600,000 updates waiting, a ~60 MB frame, 30 MB free, a 24 MB
snapshot: /healthz 503 for good, RSS 1.2 GB and growing, the backlog packed again three times a second).

While the journal fails (`behind`):
- one attempt every RETRY_EVERY s, not every flush;
- an attempt writes the backlog to the journal; when that fails and the disk has room for a snapshot of the
  tables (statvfs against their size), a snapshot that covers the backlog (EmbeddedStore.snapshot(cover=True)):
  the records are not written to the journal, the snapshot saves them (its tables hold them) and the journal
  starts again empty in the next segment, as at a clean stop;
- a backlog past MAX_BUFFER records is dropped from memory (`resync`): the tables still hold it, the crash spool
  what it had room for; an append after that hole would restart into a state missing those updates, so from then
  each attempt is a covering snapshot and the buffer is emptied at every tick until one is installed.

Memory: at most MAX_BUFFER buffered records (~200 B each in memory: ~10 MB) plus one tick's. Loss, the same as
before: a crash loses what the crash spool had no room for, a power cut what no write reached. A clean stop saves
everything (its snapshot copies the tables). The DNC journal is not this one (lists/store.py): a DNC registration
is refused, and asked again, when it cannot be written.
"""
from __future__ import annotations

import errno
import os
import time

RETRY_EVERY = 1.0           # seconds between attempts while the journal fails
MAX_BUFFER = 50_000         # records kept for the journal while it fails; beyond, a snapshot saves them


class Backlog:
    """Mixed into EmbeddedStore: `attempt()` is one turn of its timer, `failed()` what a failed turn does."""

    def _backlog_init(self) -> None:
        self.behind = False         # the journal's last write failed
        self.resync = False         # records were dropped: only a snapshot brings the journal back
        self.dropped_gen = 0        # drops so far: a snapshot whose tables were taken after the last one saves them
        self.unsaved = 0            # records dropped since the last snapshot (in the tables only)
        self.snapshots = 0          # snapshots installed
        self.snapshot_error = None  # the last snapshot's failure
        self._retry_at = 0.0

    def waiting(self) -> bool:
        """A tick with nothing to do: the journal fails and its next attempt is not due. A dropped backlog's
        records are let go at every tick (their memory: the tables hold them)."""
        if self.resync:
            self._drop(len(self.buf))
        return self.behind and time.monotonic() < self._retry_at

    async def attempt(self) -> None:
        if self.resync:
            return await self._recover()
        if not self.behind:
            return await (self.snapshot() if self.due() else self.flush())
        try:
            await self.flush()
        except OSError:
            if not self._room():
                raise
            await self._recover()

    def succeeded(self) -> None:
        self.behind = False
        self.trouble.ok()

    def failed(self, err) -> None:
        self.write_errors += 1
        self.behind = True
        self._retry_at = time.monotonic() + RETRY_EVERY
        if len(self.buf) > MAX_BUFFER:
            self.resync = True
        if self.resync:
            self._drop(len(self.buf))
            what = (f"state journal write failed: {self.unsaved} counter updates since the last snapshot are in "
                    f"memory only (the tables), saved by the next snapshot, tried every {RETRY_EVERY:.0f} s when "
                    f"the disk has room for one ({self._snapshot_bytes()} bytes); a crash loses those the crash "
                    "spool had no room for")
        else:
            what = (f"state journal write failed (counters stay in memory: {len(self.buf)} updates wait for the "
                    "disk, in the crash spool while it has room, lost by a power cut until written; past "
                    f"{MAX_BUFFER} a snapshot saves them instead)")
        self.trouble.failed(err, what)

    def _saved(self, gen: int) -> None:
        """A snapshot whose tables were taken at drop generation `gen` is installed."""
        self.snapshots += 1
        if gen == self.dropped_gen:
            self.resync, self.unsaved = False, 0

    def _drop(self, n: int) -> None:
        if n <= 0:
            return
        self.spool.pack()           # into the crash spool first (while it has room): a crash replays them
        del self.buf[:n]            # the wrappers hold this very list
        self.spool.dropped(n)
        self.unjournalled += n
        self.unsaved += n
        self.dropped_gen += 1

    def _snapshot_bytes(self) -> int:
        return (self.counters.memory_bytes() + self.history.mem.memory_bytes()
                + self.calls.mem.memory_bytes())

    def _room(self) -> bool:
        """The disk has room for a snapshot of the tables (or says nothing of its room)."""
        try:
            st = os.statvfs(self.dir)
        except OSError:
            return True
        return st.f_bavail * st.f_frsize >= self._snapshot_bytes()

    async def _recover(self) -> None:
        """A snapshot covering the backlog, waited for; raises when it was not installed."""
        if not self._room():
            raise OSError(errno.ENOSPC, f"no room for a snapshot of the tables ({self._snapshot_bytes()} bytes)")
        n = self.snapshots
        await self.snapshot(cover=True)
        await self.settled()
        if self.snapshots == n:
            err = self.snapshot_error
            raise err if isinstance(err, OSError) else OSError(errno.EIO, f"state snapshot failed: {err}")
