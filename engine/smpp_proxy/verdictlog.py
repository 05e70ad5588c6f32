"""The verdict log: one JSON line per judged message or call."""
from __future__ import annotations

import asyncio
import json
import sys
import time


class VerdictLog:
    """One JSON line per verdict (stdout or a file), and optionally the same records as an
    event stream for other processes: a ZeroMQ PUB socket (topic `verdict`).

    Lines are flushed at most every FLUSH_S (and FLUSH_S after the last write), not one
    write syscall per verdict on the hot path."""

    FLUSH_S = 0.05

    def __init__(self, target="-", events: str | None = None):
        if hasattr(target, "write"):
            self.f = target
        else:
            self.f = sys.stdout if target in (None, "-") else open(target, "a", encoding="utf-8")
        self.pub = None
        self._last_flush = 0.0
        self._flush_pending = False
        if events:
            import zmq
            self.pub = zmq.Context.instance().socket(zmq.PUB)
            self.pub.setsockopt(zmq.SNDHWM, 100_000)        # a slow subscriber drops events, never blocks us
            self.pub.setsockopt(zmq.LINGER, 0)
            self.pub.bind(events)
            self._noblock, self._again = zmq.NOBLOCK, zmq.Again

    def write(self, rec: dict) -> None:
        line = json.dumps(rec, ensure_ascii=False)
        self.f.write(line + "\n")
        now = time.monotonic()
        if now - self._last_flush >= self.FLUSH_S:
            self.flush()
        elif not self._flush_pending:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)
                self._flush_pending = True
            except RuntimeError:                 # no event loop here (CLI tools): flush now
                self.flush()
        if self.pub is not None:
            try:
                self.pub.send_multipart([b"verdict", line.encode()], flags=self._noblock)
            except self._again:
                pass

    def flush(self) -> None:
        self._flush_pending = False
        self._last_flush = time.monotonic()
        self.f.flush()

    def close(self) -> None:
        self.flush()
        if self.pub is not None:
            self.pub.close()
