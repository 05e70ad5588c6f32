"""The answered-call memory saved while serve runs, so a crash (kill -9, the OOM killer) loses at most its last
`dialog_save_interval` seconds (sip.toml, default 30 s), not everything answered since the last clean stop.

Theory of operation: every `dialog_save_interval` seconds, when the memory changed since the last save (its
`changes` count, dialogs.AnsweredCalls: an idle screen writes nothing), a forked child (state/forksnap.py, as the
state store's snapshots) writes the memory as it was at the fork to DATA_DIR/sip/dialogs.msgpack in the format of
the clean stop's save (dialogstore.dump, the INVITEs judged in the last 32 s with it: judgedstore.py; a temporary
file fsynced and renamed over the old one). The event loop
pauses for the fork only: only copying a full memory (200,000 calls) on the loop took 55-111 ms, copying and
writing it 0.35-0.53 s; the fork copies page tables (4-12 ms for a 160 MB process, a loaded 2-CPU host: the
loop's longest gap 7-26 ms while a save ran; benchmarks/sip_dialog_save.py), and the child's 0.37 s of CPU is
not the loop's (no GIL). Its price: the pages it touches are copied (~130 MB for a full memory) while it runs. One save at a time; the child dies with serve (PR_SET_PDEATHSIG: a
crashed serve's child leaves the last whole file, at most its temporary file, removed at the next start). Only the
screen start_sip gave a file saves (serve --workers: worker 0's, the one screen). A save that fails (a read-only
or full disk, fork refused) is said once, at WARNING again when one works; meanwhile it is tried again every
interval and the screen serves as ever. A clean stop stops a save under way and writes its own
(dialogstore.save_at_stop)."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from ..durable import replace_file
from ..state import forksnap
from .dialogstore import dump, is_empty

log = logging.getLogger("telfilter.sip")


def remove_stale_tmp_files(path) -> None:
    """At a start: the temporary files of saves to `path` that never finished (their writer killed with serve)."""
    path = Path(path)
    for p in path.parent.glob(f".{path.name}.*.tmp"):
        p.unlink(missing_ok=True)


def _tmp_of(path: Path, pid: int) -> Path:
    """The temporary file of the save to `path` by child `pid` (durable.replace_file's name)."""
    return path.parent / f".{path.name}.{pid}.tmp"


def _write(screen, path, ticks: float, wall: float) -> None:
    """In the forked child: the memory as it was at the fork, to `path` (durable.replace_file's temporary file is
    named after the child's pid). At a lower priority: when the host's CPUs are all busy, serving goes first (on
    an idle CPU it costs nothing; on the loaded 2-CPU host measured, the loop's gaps while a child wrote varied
    1-12 ms either way: the host's other load decided)."""
    os.nice(10)
    replace_file(path, dump(screen, ticks, wall))      # (the judged INVITEs' ages: at the child's now, ms later)


class DialogSaver:
    """The periodic save of one screen's answered-call memory to `path`."""

    def __init__(self, screen, path):
        self.screen, self.path = screen, Path(path)
        self.saved = screen.answered.changes          # the memory as the file holds it (restored from it, or none)
        self.failing = False
        self.saves = 0                                  # saves started (a file written, or removed: empty memory)
        self.child = None
        self._task = self._waiting = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def interval(self) -> float:
        return self.screen.s.dialog_save_interval

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()                              # the end of the last save (or the start)
        while True:
            every = self.interval()                     # read each round: `ctl reload sip` may change it
            if every > 0 and loop.time() - last >= every - 0.01:
                if forksnap.running():                  # the state snapshot's writer: not two forks at once
                    await asyncio.sleep(1.0)
                    continue
                await self.save_if_changed()
                last = loop.time()
                continue
            # a second asleep at most: a reload that shortens the interval (or turns it on) is in force within it
            # (the whole interval read before it was slept: 30 s shortened to 1 s still waited 30; found by review50)
            await asyncio.sleep(min(1.0, every - (loop.time() - last)) if every > 0 else 1.0)

    async def save_if_changed(self) -> bool:
        """Save the memory when it changed since the last save that worked; whether it was saved."""
        mem = self.screen.answered
        mark = mem.changes
        if mark == self.saved:
            return False
        self.saves += 1
        try:
            if is_empty(self.screen, time.monotonic()):    # (as the stop's save: an empty memory is no file)
                self.path.unlink(missing_ok=True)
            elif not await self._fork_save():
                return False                            # abandoned by the stop, which writes its own
        except OSError as e:
            self._failed(e)
            return False
        except Exception as e:                          # a bug of ours: said, the screen serves on
            self._failed(e, exc=True)
            return False
        self.saved = mark
        if self.failing:
            self.failing = False
            log.warning("SIP: the calls in progress are saved to %s again", self.path)
        return True

    async def _fork_save(self) -> bool:
        """The memory written by a forked child; False if the stop abandoned it."""
        scr = self.screen
        child = forksnap.start(_write, scr, self.path, scr.call_ticks(), scr.clock().timestamp(),
                               what="SIP calls in progress writer")
        if child is None:
            raise OSError("fork refused (memory overcommit, a process limit)")
        self.child = child
        self._waiting = asyncio.get_running_loop().run_in_executor(None, child.wait)
        try:
            await asyncio.shield(self._waiting)         # a stop's cancel never leaves the child unreaped
        except OSError:
            # reaped: a child killed part-way (the OOM killer, the wait limit) left its temporary file (one more
            # each interval, until the next start; found by review50)
            _tmp_of(self.path, child.pid).unlink(missing_ok=True)
            if child.abandoned:
                return False
            raise
        finally:
            self.child = self._waiting = None
        return not child.abandoned

    def _failed(self, e, exc: bool = False) -> None:
        if self.failing:
            return
        self.failing = True
        log.error("SIP: the calls in progress could not be saved to %s (%s): after a crash their re-INVITEs would "
                  "be judged as new calls; tried again every %g s, said again when it works",
                  self.path, getattr(e, "strerror", None) or e, self.interval(), exc_info=exc)

    async def close(self) -> None:
        """At the stop, before its own save: no save under way any more (one is stopped, its temporary file
        removed), so none can replace the stop's file with an older memory."""
        child, waiting = self.child, self._waiting
        if child is not None:
            child.abandon()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if waiting is not None:
            await asyncio.gather(waiting, return_exceptions=True)
        if child is not None:
            _tmp_of(self.path, child.pid).unlink(missing_ok=True)
