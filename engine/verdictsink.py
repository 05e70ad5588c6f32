"""Where the verdict log's lines go (VerdictLog's output half): stdout, a file with its crash spool, or a pipe's
writer thread, and optionally the same lines as an event stream. Nothing here builds a line (verdictlog.py does);
a line that cannot be written is counted, reported in the service log at most every ERROR_LOG_S, never raised."""
from __future__ import annotations

import asyncio
import logging
import time

from .jsontext import ascii_json
from .logwriters import FileOut, PipeOut, stdout_target

log = logging.getLogger("telfilter")


class VerdictSink:
    """The verdict log's output (VerdictLog's base): its lines to stdout or a file, and optionally as an event
    stream for other processes: a ZeroMQ PUB socket (topic `verdict`).

    Lines are flushed at most every FLUSH_S (and FLUSH_S after the last write), not one
    write syscall per verdict on the hot path."""

    FLUSH_S = 0.05
    ERROR_LOG_S = 10.0

    def __init__(self, target="-", events: str | None = None):
        if hasattr(target, "write"):
            self.f = target
        elif target in (None, "-"):
            self.f = stdout_target()
        else:
            self.f = FileOut(target, spool=True)       # and its crash spool (engine/crashspool.py)
        self.pub = None
        self.retired: list = []             # writers of files reopened away from (SIGUSR2): drained at close
        self.closed = False                 # a reopen whose file came after the stop closes it again
        self.reopening = self.reopen_again = False      # a SIGUSR2 reopen under way; another due after it
        self.errors = 0
        self.lost_retired = 0               # lines the writers of files reopened away from lost (and let go)
        self._last_error_log = -1e9
        self._last_flush = 0.0
        self._flush_pending = False
        if events:
            import zmq
            self.pub = zmq.Context.instance().socket(zmq.PUB)
            self.pub.setsockopt(zmq.SNDHWM, 100_000)        # a slow subscriber drops events, never blocks us
            self.pub.setsockopt(zmq.LINGER, 0)
            self.pub.bind(events)
            self._noblock, self._again = zmq.NOBLOCK, zmq.Again

    @property
    def lost_lines(self) -> int:
        """Verdict lines that did not reach the log: refused (a full buffer, a closed pipe, a line that could
        not be built) or lost by a failed write (a full or read-only disk), since start (/metrics)."""
        return self.errors + self.lost_retired + sum(getattr(w, "lost_lines", 0) for w in [self.f, *self.retired])

    # ------------------------------------------------------------ output
    def _emit(self, line: str) -> None:
        try:
            try:
                self.f.write(line + "\n")
            except UnicodeEncodeError:              # a stream opened without errors=...
                line = ascii_json(line)
                self.f.write(line + "\n")
        except Exception as e:
            return self._failed(e)
        if self._flush_pending:
            pass                                 # a flush is due within FLUSH_S
        elif time.monotonic() - self._last_flush >= self.FLUSH_S:
            self.flush()
        else:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)
                self._flush_pending = True
            except RuntimeError:                 # no event loop here (CLI tools): flush now
                self.flush()
        if self.pub is not None:
            try:
                self.pub.send_multipart([b"verdict", line.encode("utf-8", "backslashreplace")], flags=self._noblock)
            except self._again:
                pass
            except Exception as e:
                self._failed(e)

    def _failed(self, e: Exception) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_error_log >= self.ERROR_LOG_S:
            self._last_error_log = now
            log.error("verdict log write failed (%d so far): %s: %s", self.errors, type(e).__name__, e)

    def flush(self) -> None:
        self._flush_pending = False
        self._last_flush = time.monotonic()
        try:
            self.f.flush()
        except Exception as e:
            self._failed(e)

    def close(self) -> None:
        self.closed = True
        for old in self.retired:             # a stop right after a reopen: the old file's lines too
            old.drain()
        if isinstance(self.f, PipeOut):
            self.f.drain()
        self.flush()
        if self.pub is not None:
            self.pub.close()

