"""Durable writes off the event loop, several in one fsync (group commit).

A 5656 command (a DNC registration, a spam report) is confirmed only once it is on disk. Written
on the event loop, each cost an fsync there (p50 ~0.8 ms, p99 5-7 ms on this host; seconds on a
stalling disk) during which no SMPP or SIP message moved: a burst of commands (an SMSC delivering
its backlog after an outage, a campaign of reports) stalled both protocols for as long.

`GroupCommit` hands them to one writer thread. The thread takes every item waiting, writes them
with one call of `write(items)` (Pipeline.write_commands: one journal write and one fsync for the
DNC changes, one for the reports), and hands each item's result (None, or the OSError that kept
it from disk) back to the loop, where `done(error)` runs in submission order: a command is put in
force, logged and answered there, never before its bytes are durable. The loop goes on judging
meanwhile; the more commands arrive while one fsync runs, the more the next one carries.

Bounds: `submit` refuses (returns False) when MAX_WAITING items wait, so a disk that stops
answering holds at most that many commands in memory (the proxy answers the next ones as not
recorded: ESME_RX_T_APPN, delivered again; written on the loop instead, one could overtake an
earlier command of the same subscriber still queued here); and once `close()` has run (`closed`:
the caller writes on the loop). `idle()` waits for every item submitted to be done (a stop answers
what it took before the links close).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque

log = logging.getLogger("telfilter")

MAX_WAITING = 10_000        # items submitted and not yet done; beyond, submit refuses


class GroupCommit:
    def __init__(self, write, loop: asyncio.AbstractEventLoop, name: str = "telfilter-5656-writer",
                 max_waiting: int = MAX_WAITING, what: str = "5656 command"):
        self.write = write                  # list of items -> list of (None | OSError), one per item
        self.loop = loop
        self.name = name
        self.what = what                    # what an item is, for the log
        self.max_waiting = max_waiting
        self.waiting = 0                    # submitted, `done` not yet run (the loop's count)
        self.batches = 0                    # writes made (one fsync per file each)
        self.items = 0                      # items written
        self._q: deque = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._idle: list = []               # futures `idle()` waits on

    def submit(self, item, done) -> bool:
        """Write `item` durably off the loop, then call `done(error)` on the loop (error: None when it
        is on disk). False, and nothing done, when MAX_WAITING wait already or the writer is closed."""
        if self.waiting >= self.max_waiting or self.closed:
            return False
        self.waiting += 1
        with self._cv:
            self._q.append((item, done))
            self._cv.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return True

    @property
    def closed(self) -> bool:
        return self._closing

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._q and not self._closing:
                    self._cv.wait()
                if not self._q:
                    return
                batch = list(self._q)
                self._q.clear()
            try:
                errs = self.write([item for item, _ in batch])
            except BaseException as e:          # a bug, not the disk: every item not recorded, said loudly
                log.exception("%s: write failed", self.name)
                errs = [e if isinstance(e, OSError) else OSError(f"{type(e).__name__}: {e}")] * len(batch)
            try:
                self.loop.call_soon_threadsafe(self._finish, batch, errs)
            except RuntimeError:                # the loop has closed (a stop that did not wait): written, unanswered
                log.error("%s: %d %s(s) written after the event loop stopped (the next start reads them)",
                          self.name, len(batch), self.what)

    def _finish(self, batch, errs) -> None:
        self.batches += 1
        self.items += len(batch)
        for (_, done), err in zip(batch, errs):
            self.waiting -= 1
            try:
                done(err)
            except Exception:
                log.exception("%s: handling a written %s failed", self.name, self.what)
        if not self.waiting:
            idle, self._idle = self._idle, []
            for f in idle:
                if not f.done():
                    f.set_result(None)

    async def idle(self, timeout: float | None = None) -> bool:
        """Wait until every item submitted is done (True), or `timeout` seconds (False)."""
        if not self.waiting:
            return True
        f = self.loop.create_future()
        self._idle.append(f)
        try:
            await asyncio.wait_for(asyncio.shield(f), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def close(self) -> None:
        """No more items; the thread ends once it has written what it holds (not waited for here: this runs
        on the loop; `idle()` is the wait)."""
        with self._cv:
            self._closing = True
            self._cv.notify()
