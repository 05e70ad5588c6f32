"""A snapshot written by a forked child from a copy-on-write image of the tables (as Redis's BGSAVE
does): the event loop pauses for the fork (it copies page tables: ~5 ms for 300 MB of memory here),
not for a copy of every table (~55 ms for 135 MB of tables), and no table is copied in memory (the
kernel copies a page only when the parent changes it while the child still runs).

The child inherits every signal blocked (the forking thread blocks them around the fork, so none
can run a handler in the child and reach the parent's wakeup fd), dies with its parent (SIGKILL on
its death: PR_SET_PDEATHSIG), closes every inherited file
descriptor but its pipe (a listening socket or the state lock must not outlive the parent in it),
turns the garbage collector off (a collection would touch, and so copy, the whole heap), runs the
writer and leaves with `os._exit`: no logging, no locks, no finalizers. Its error, if any, comes
back through the pipe.
"""
from __future__ import annotations

import gc
import os
import select
import signal
import threading
import time
import warnings

from ..parentdeath import die_with_parent

WAIT_LIMIT = 600.0          # seconds a writer may take before it is killed (its snapshot then fails)
_RUNNING: set = set()       # pids of this process's writers not reaped yet (running(): one fork at a time)


def running() -> bool:
    """Whether a forked writer of this process (the state snapshot's, the SIP calls in progress') still runs: the
    periodic ones wait for it rather than fork beside it (two children copying the pages the parent writes, two
    pauses for a fork back to back)."""
    return bool(_RUNNING)


class Writer:
    """The parent's handle on a forked writer."""

    def __init__(self, pid: int, rfd: int, what: str = "state snapshot writer"):
        self.pid, self.rfd, self.what = pid, rfd, what
        self.abandoned = False
        self._reap = threading.Lock()   # a pid is signalled only while it is still our unreaped child
        self._reaped = False

    def abandon(self) -> None:
        """Stop the child (from the loop) while `wait` runs in a worker thread: it sees the child
        gone and reaps it; its snapshot is not wanted (a newer one is being written)."""
        self.abandoned = True
        with self._reap:
            if not self._reaped:
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, limit: float = WAIT_LIMIT) -> None:
        """Block until the child exits (run it in a worker thread); OSError with the child's message
        when it failed or took longer than `limit` seconds (it is killed then)."""
        msg, deadline = b"", time.monotonic() + limit
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                    os.kill(self.pid, signal.SIGKILL)
                    msg = f"took over {limit:.0f} s and was killed".encode()
                    break
                chunk = os.read(self.rfd, 4096)
                if not chunk:           # end of file: the child has exited (or closed its pipe)
                    break
                msg += chunk
        finally:
            os.close(self.rfd)
            with self._reap:
                _, status = os.waitpid(self.pid, 0)
                self._reaped = True
                _RUNNING.discard(self.pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or msg:
            why = msg.decode("utf-8", "replace") or f"exit status {code}"
            raise OSError(f"{self.what} (pid {self.pid}) failed: {why}")

    def kill(self) -> None:
        """Stop the child and reap it (its snapshot is not wanted any more; nothing waits for it)."""
        os.kill(self.pid, signal.SIGKILL)      # not reaped yet: still our child, never another process
        os.close(self.rfd)
        with self._reap:
            os.waitpid(self.pid, 0)
            self._reaped = True
            _RUNNING.discard(self.pid)


def start(write, *args, what: str = "state snapshot writer") -> Writer | None:
    """Fork a child that runs `write(*args)` and exits; None where fork is unavailable or refused
    (strict overcommit, a process limit): the caller then copies the tables instead. `what`: the
    writer's name in its failure."""
    if not hasattr(os, "fork"):
        return None
    rfd, wfd = os.pipe()
    parent = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        with warnings.catch_warnings():         # 3.12+ warns about fork in a process with threads:
            warnings.simplefilter("ignore", DeprecationWarning)   # the child only runs `write`
            pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(rfd)
        os.close(wfd)
        return None
    if pid == 0:                                # the child: never returns
        code = 1
        try:
            gc.disable()
            # SIGKILL (which no mask blocks) when the parent dies: a kill -9 of serve would leave the writer
            # running on its own, past any stop or restart of the service
            if not die_with_parent(signal.SIGKILL, parent):
                os._exit(1)
            os.closerange(3, wfd)
            os.closerange(wfd + 1, 1 << 20)
            write(*args)
            code = 0
        except BaseException as e:
            try:
                os.write(wfd, f"{type(e).__name__}: {e}".encode("utf-8", "replace")[:4000])
            except BaseException:
                pass
        finally:
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(wfd)
    _RUNNING.add(pid)
    return Writer(pid, rfd, what)
