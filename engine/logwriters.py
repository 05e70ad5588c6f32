"""Where verdict lines go: the writer threads of a pipe (`PipeOut`) and of a file (`FileOut`), and stdout as
the verdict log (`stdout_target`). The event loop only appends to their buffer (verdictlog.VerdictLog); a stalled
reader or a failing disk costs log lines, counted, never the traffic."""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import stat
import sys
import threading

from .disktrouble import trouble
from .crashspool import Spool, recover

log = logging.getLogger("telfilter")


def stdout_target():
    """stdout as the verdict log: a regular file as it is; a pipe, FIFO or terminal through PipeOut, so a
    consumer that stops reading never stalls the event loop (and every message with it)."""
    try:
        fd = sys.stdout.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            sys.stdout.flush()
            return PipeOut(fd)
    except (AttributeError, OSError, ValueError):     # replaced by something without a descriptor
        pass
    return sys.stdout


class PipeOut:
    """Lines for a pipe, written by a thread of their own: the event loop only appends to a buffer (at
    most MAX bytes); a line that would overflow it is not written and the write raises (VerdictLog counts
    it in `errors` and says so in the service log): a stalled log consumer costs log lines, never the
    traffic. The descriptor is left as it is (blocking): it is shared with stderr and other processes."""

    MAX = 64 << 20
    BEHIND = "the verdict log's reader is not keeping up"       # why a line past MAX is refused

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = bytearray()
        self.lock = threading.RLock()           # the Condition's own lock, entered in C by write()
        self.cv = threading.Condition(self.lock)
        self.closing = False
        self.failed = None
        self.thread = threading.Thread(target=self._run, name="verdict-log", daemon=True)
        self.thread.start()

    def write(self, s: str) -> None:
        b = s.encode("utf-8", "backslashreplace")
        with self.lock:                         # (Condition.__enter__ is a Python call: a line pays two)
            if self.failed is not None or self.closing:
                raise OSError(f"verdict log: {self.failed or 'closed'}")
            if len(self.buf) + len(b) > self.MAX:
                raise OSError(f"{self.BEHIND} ({len(self.buf)} bytes waiting): line dropped")
            self.buf += b
            self._kept(b)

    def _kept(self, b: bytes) -> None:
        """Line bytes `b` are in the buffer (called with the lock held)."""

    def flush(self) -> None:
        with self.cv:
            self.cv.notify()

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.buf and not self.closing:
                    self.cv.wait()
                if not self.buf:
                    return
                chunk = bytes(self.buf)
                del self.buf[:]
            view = memoryview(chunk)
            try:
                view = self._head(view)
                while view:
                    try:
                        view = view[os.write(self.fd, view):]
                    except BlockingIOError:  # someone sharing the pipe set it non-blocking: wait until it drains
                        select.select([], [self.fd], [], 1.0)
                self._written(len(chunk))
            except OSError as e:             # a closed pipe: later writes raise, the loop goes on
                if self._lost(e, chunk, len(chunk) - len(view)):
                    continue
                with self.cv:
                    self.failed = e.strerror or str(e)
                    self.buf.clear()
                return

    def _head(self, view):
        """What to write before a chunk (a file: the end of a line a failed write cut)."""
        return view

    def _written(self, n: int) -> None:
        """A chunk of `n` bytes went out whole."""

    def _lost(self, e: OSError, chunk: bytes, written: int) -> bool:
        """A write of `chunk` failed after `written` bytes: True to go on with the next lines (a pipe: never,
        its reader is gone). A pipe's is the verdict log's trouble for good (stdout cannot be opened again): every
        verdict line from now on is lost, so /healthz drains the node until it is restarted with a reader."""
        trouble("verdict_log").failed(e, "the verdict log's pipe has no reader any more: every verdict line from "
                                         "now on is lost (counted); restart serve with a reader", writer=self)
        return False

    def drain(self, timeout: float = 5.0) -> None:
        """At close: what is buffered, waiting up to `timeout` for the reader."""
        with self.cv:
            self.closing = True
            self.cv.notify()
        self.thread.join(timeout)

    def retire(self) -> None:
        """Reopened away from (SIGUSR2): drained, off the loop."""
        self.drain(30.0)


def _open_log(path) -> int:
    """The log's descriptor, opened O_NONBLOCK and then made blocking: a FIFO with no reader fails at once (ENXIO)
    instead of blocking the open until one comes. It blocked serve's start before anything listened, without a
    word, and a SIGUSR2 reopen's worker thread, which the stop then waited for for ever."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise OSError(e.errno, "a FIFO with no reader (start its reader first)", str(path)) from None
        raise
    os.set_blocking(fd, True)
    return fd


def _regular_or_absent(path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True                     # O_CREAT makes a regular file
    except OSError:
        return False


def _last_byte(path, st) -> bytes:
    """The last byte of the file `st` describes, read through `path` (the log is open write-only); b"" when
    `path` is another file now, or cannot be read (then left as it is)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.pread(fd, 1, st.st_size - 1) if os.fstat(fd).st_ino == st.st_ino else b""
    except OSError:
        return b""
    finally:
        os.close(fd)


class FileOut(PipeOut):
    """The verdict log file (`--log FILE`), written by a thread of its own as a pipe is: a write to a
    regular file can block too (dirty-page throttling, a journal commit behind another process's
    fsync, a slow or network disk), and on the event loop it would stall every message and call. The
    loop appends to a buffer (at most MAX bytes: past it lines are dropped and counted, never the
    traffic); the file is opened O_APPEND, so logrotate's rename and our reopen (SIGUSR2) are safe. What a full or
    failing disk refuses is held (in the buffer, ahead of the lines that came since) and tried again every RETRY_S
    until the disk takes it, so a disk full for a while costs no line; a stop meanwhile gives the held lines up
    (counted) and leaves them in the crash spool, for the next writer of the log to append."""

    RETRY_S = 0.5
    RETIRE_S = 10.0
    BEHIND = "the verdict log's disk is not taking its lines (full, failing or stalled)"

    def __init__(self, path, spool: bool = False):
        self.path = path
        self.lost_bytes = 0
        self.lost_lines = 0             # lines a failed write cost (read by /metrics)
        self._torn = False              # the file ends in part of a line (a cut-back that failed too)
        self._unnamed = False           # the file was deleted and could not be made again at its path
        self.retiring = False           # reopened away from: closing, but what the disk refuses is tried again
        # `spool`: the verdict log's lines also in a crash spool (engine/crashspool.py), and a dead writer's appended
        # first. The spool is made before the file is opened (allocating its ring is the slow part, ~3-10 ms): a
        # reopen's new file (SIGUSR2, opened off the loop) appears only just before it is swapped in.
        self.spool = self.recovered = None
        no_spool = None
        spool = spool and _regular_or_absent(path)     # (`--log /dev/stderr`: no spool made in /dev)
        if spool:
            try:
                self.spool = Spool(path)
            except OSError as e:
                no_spool = e
        try:
            fd = _open_log(path)
        except OSError:
            if self.spool is not None:
                self.spool.close()
            raise
        if spool:
            # a dead writer's spool is appended even when this writer has none: on a nearly full disk the dead one
            # (8 MiB, a stop's held lines) took the room its own needed, and stayed, start after start
            self._recover(path, fd)
            if self.spool is None:
                try:
                    self.spool = Spool(path)
                    no_spool = None
                except OSError as e:
                    no_spool = e
        if no_spool is not None:        # said once this file is the log: a reopen that fails says only that
            log.warning("verdict log %s: no crash spool beside it (%s): lines not yet written when the process "
                        "dies are lost", path, no_spool)
        super().__init__(fd)

    def _recover(self, path, fd: int) -> None:
        """A dead writer's unwritten lines (its spool, left by a crash or a stop on a full disk), appended."""
        try:
            self.recovered = recover(path, lambda data, note: self._append_now(fd, data, note),
                                     notes=True)            # ours is held: skipped
            if self.recovered:
                log.warning("verdict log %s: %d lines a writer that stopped without writing them (a crash, a stop on a "
                            "full disk, kill -9) left in its spool, appended", path, self.recovered)
        except OSError as e:
            log.warning("verdict log %s: a dead writer's spool could not be appended (%s); it is left for the "
                        "next start", path, e)

    def _append_now(self, fd: int, data: bytes, note) -> None:
        """Recovered lines, before this writer's (under the file's lock, as every chunk), noted in the dead
        spool first (`note`: a crash during the append does not repeat it)."""
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            st = os.fstat(fd)
            if st.st_size and _last_byte(self.path, st) not in (b"\n", b""):
                # a write a kill cut short ends in part of a line (the spool gives that line whole, from its
                # start): ended here, so it is a bad line of its own, not glued to the first recovered one
                os.write(fd, b"\n")
                st = os.fstat(fd)
            note(st.st_size, st.st_ino)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _kept(self, b: bytes) -> None:
        if self.spool is not None:
            self.spool.append(b)

    def _run(self) -> None:
        try:
            super()._run()
        finally:
            if self.spool is not None:
                self.spool.close()           # deleted when every line was written; else the next start's
            os.close(self.fd)                # by the writer, once it is done: never under a write still going on

    def _head(self, view):
        # The file may have other writers: every worker of `serve --workers N` is given the same --log FILE,
        # and a SIGUSR2 without a rename leaves the old writer draining into the file the new one appends to.
        # A chunk is written under the file's lock (flock: per chunk, at most every FLUSH_S, not per line), so
        # no other chunk lands after a short write's torn line before `_lost` cuts it off (it cut the other
        # writer's lines instead). Released by `_written` or `_lost`, whichever ends the chunk.
        self._lock(fcntl.LOCK_EX)
        if self._no_name():
            self._deleted_log()
        # a line a failed write cut, and that could not be cut off: ended here, so it is a line of its own
        # (a reader skips one bad line) and the next line is whole, not glued to its first part
        if self._torn:
            os.write(self.fd, b"\n")
            self._torn = False
        if self.spool is not None:      # where the write lands, for a recovery after a crash before `_written`
            try:
                st = os.fstat(self.fd)
            except OSError:             # (not noted: such a crash repeats this write's lines, as it always did)
                pass
            else:
                self.spool.writing(st.st_size, st.st_ino, len(view))
        return view

    def _no_name(self) -> bool:
        try:
            return os.fstat(self.fd).st_nlink == 0
        except OSError:
            return False

    def _deleted_log(self) -> None:
        """The file has no name any more (`rm` of the log or of its directory: its lines would go where nobody reads
        them, its space never freed): the log's path opened again (and locked), said. When it cannot be (the
        directory is gone too) the write fails: its lines are held and tried again, as a full disk's (`_lost`), so
        a directory made again gets them; they went into the deleted file, lost without being counted."""
        try:
            fd = _open_log(self.path)
        except OSError as e:            # said (/healthz 503); raised: held, tried again every RETRY_S
            self._unnamed = True
            trouble("verdict_log").failed(e, f"verdict log {self.path} was deleted and cannot be made again: its "
                                             "lines are held until it can (its directory made again)", writer=self)
            raise
        if os.fstat(fd).st_nlink == 0:      # the path leads to the deleted file itself (/dev/stderr, /proc/…)
            os.close(fd)
            self._unnamed = True
            trouble("verdict_log").failed(OSError(errno.ENOENT, "the path names the deleted file"),
                                          f"verdict log {self.path} was deleted and cannot be made again: its "
                                          "lines go to the deleted file", writer=self)
            return
        self._lock(fcntl.LOCK_UN)
        os.close(self.fd)
        held = self._unnamed
        self.fd, self._torn, self._unnamed = fd, False, False
        self._lock(fcntl.LOCK_EX)
        log.warning("verdict log %s was deleted while serve wrote it: made again at its path (the lines written "
                    "to the deleted file are gone with it%s)", self.path,
                    "; those held while it could not be made are written now" if held else "")

    def _lock(self, op: int) -> None:
        try:
            fcntl.flock(self.fd, op)
        except OSError:                 # a file system without locks (ENOLCK, some NFS): written unlocked
            pass

    def _written(self, n: int) -> None:
        self._lock(fcntl.LOCK_UN)
        if self.spool is not None:
            self.spool.wrote(n)
        if not self._unnamed:           # (written to a deleted file is not a write that worked)
            trouble("verdict_log").ok(writer=self)

    def _lost(self, e: OSError, chunk: bytes, written: int) -> bool:
        """A full or failing disk refused this write after `written` bytes: the whole lines that reached the file
        stay, the rest is held and tried again after RETRY_S (a stop meanwhile gives it up). A write cut short (a
        nearly full disk takes part of it) is cut back to its last whole line, so no torn line is left for a reader
        to take with the next one (a JSON line glued to part of another, as a full tmpfs left it)."""
        keep = chunk.rfind(b"\n", 0, written) + 1          # whole lines that reached the file
        if keep < written:
            try:
                # where this writer's last write ended (O_APPEND: a failed write leaves the offset as it was);
                # cut only when the file still ends there: lines a writer that does not lock appended after it
                # (an older version's, in an upgrade) are never cut
                end = os.lseek(self.fd, 0, os.SEEK_CUR)
                if os.fstat(self.fd).st_size == end:
                    os.ftruncate(self.fd, end - (written - keep))
            except OSError:                                  # (a read-only file system): ended at the next write
                self._torn = True
        self._lock(fcntl.LOCK_UN)
        if self.spool is not None:
            self.spool.wrote(keep)
            self.spool.writing(0, 0, 0)     # no write under way: the rest is in the ring, unwritten
        rest = chunk[keep:]
        with self.cv:
            give_up = self.closing and not self.retiring
            if not give_up:
                self.buf[:0] = rest         # ahead of the lines that came meanwhile
                held = self.buf.count(b"\n")
            else:                           # and the lines that came meanwhile, which the caller drops unwritten
                rest += bytes(self.buf)
        if give_up:                         # a stop: not held up by the disk; the spool keeps them (not marked)
            self.lost_bytes += len(rest)
            self.lost_lines += rest.count(b"\n")
            log.error("verdict log %s: %d lines (%d bytes) the disk refused not written (%s); %s", self.path,
                      rest.count(b"\n"), len(rest), e.strerror or e,
                      "lost" if self.spool is None or not os.path.exists(self.spool.path)
                      else "its crash spool keeps them (up to its 8 MiB ring) for the next writer of the log (the next "
                           "start or reopen)")
            return False
        # a writer reopened away from (closing; and from the swap on, `writer=self`) tries again without a word:
        # /healthz says how the log in use does; a log whose directory is gone was said (and counted) by _deleted_log
        if not self.closing and not self._unnamed:
            trouble("verdict_log").failed(e, f"verdict log {self.path}: {held} lines held until the disk takes "
                                             f"them (tried again every {self.RETRY_S:g} s)", writer=self)
        with self.cv:
            self.cv.wait_for(lambda: self.closing and not self.retiring, self.RETRY_S)
        return True

    def retire(self) -> None:
        """Reopened away from (SIGUSR2): what it holds is written to its file, tried again for RETIRE_S while the
        disk refuses it (a rotation on a full disk), not given up at the next failure; then, or at the stop
        (`drain`), given up: its crash spool keeps it for the next writer of the log (the next start or reopen)."""
        with self.cv:
            self.retiring = True
        PipeOut.drain(self, self.RETIRE_S)
        self.drain(30.0)

    def drain(self, timeout: float = 5.0) -> None:
        with self.cv:
            self.retiring = False       # a stop: what the disk still refuses is given up (kept in the spool)
        super().drain(timeout)
