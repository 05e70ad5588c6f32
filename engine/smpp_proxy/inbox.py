"""The proxy's work queue for PDUs from ESMEs, and the flush points of its socket writes.

Theory of operation. Judging a submit_sm costs ~100 µs of CPU; relaying a submit_sm_resp
costs ~2. If every PDU were handled inside the read callback that brought it, one loop
iteration could judge dozens (a read carries a whole window, and the loop reads every ready
socket before it runs anything else), and the SMSC's answers read in that iteration, and the
writes queued by it, would wait for all of that judging: at 5k/s offered that was most of the
added latency (measured with benchmarks.smpp_trace: resp -> ESME write p99 6.5 ms).

So an ESME's read callback only decodes: its PDUs go to the session's queue, and the session
joins the round of sessions with work. `Inbox.run` takes one PDU from each session in turn
(a session that sends more does not hold back the others) until SLICE seconds have gone,
then flushes every stream with bytes queued (`WriteBatch`) and yields to the loop, which
reads the sockets (the SMSC's answers are relayed and flushed at the end of that read) before
the next slice. A message therefore waits for at most one slice of other work beyond its
place in the queue, and the writes it causes leave at the end of its own slice, or right
after it is handled while few are waiting (FLUSH_EACH_BELOW). A slice grows with the backlog
(BATCH_FROM, BACKLOG_SHARE): when the CPU is short, bigger batches mean fewer system calls per message,
and the wait they add is small beside the queue's.

Bounds: a session with MAX_QUEUED PDUs waiting is paused (transport.pause_reading) until it
is down to half, so a peer that does not respect its window fills its own TCP buffers, not
our memory; everything read is handled (judged, logged, answered where the socket still
stands), in order per session. A session that closes has its queue handled first.
"""
from __future__ import annotations

import asyncio
from collections import deque
from time import perf_counter

SLICE = 0.0003          # seconds of PDU handling between two looks at the sockets
MAX_QUEUED = 64         # PDUs read ahead per session before it is paused
BATCH_FROM = 8          # with this many PDUs waiting or more, a slice grows with the backlog:
BACKLOG_SHARE = 3       # by SLICE for every this many waiting,
MAX_SLICE = 0.003       # up to this
FLUSH_EACH_BELOW = 4    # with fewer waiting, writes are flushed after each PDU, not per slice


def _loop(obj):
    # the loop, looked up once: asyncio.get_running_loop() costs a getpid() syscall per call
    loop = obj._loop
    if loop is None or loop.is_closed():
        loop = obj._loop = asyncio.get_running_loop()
    return loop


class WriteBatch:
    """Streams with bytes queued; `flush()` writes each stream's queue in one transport.write.
    The proxy flushes at the end of every slice and every SMSC read; a write made anywhere
    else (a timer, a password check's callback) is flushed at the end of its loop iteration."""

    __slots__ = ("dirty", "_scheduled", "_loop")

    def __init__(self):
        self.dirty: list = []
        self._scheduled = False
        self._loop = None

    def add(self, stream) -> None:
        self.dirty.append(stream)
        if not self._scheduled:
            self._scheduled = True
            _loop(self).call_soon(self._due)

    def _due(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        d = self.dirty
        if d:
            self.dirty = []
            for s in d:
                s._flush()


class Inbox:
    """PDUs read from ESMEs, handled in turn by `handle(session, pdu)` (see the module docstring)."""

    def __init__(self, handle, batch: WriteBatch):
        self.handle = handle
        self.batch = batch
        self.round: deque = deque()         # sessions with PDUs waiting, in turn
        self._scheduled = False
        self._loop = None
        self.waiting = 0                    # PDUs queued, all sessions

    def put(self, sess, pdu) -> None:
        q = sess.inq
        q.append(pdu)
        self.waiting += 1
        if len(q) == 1:
            self.round.append(sess)
            if not self._scheduled:
                self._scheduled = True
                _loop(self).call_soon(self.run)
        elif len(q) >= MAX_QUEUED and not sess.reading_paused:
            sess.pause()

    def run(self) -> None:
        self._scheduled = False
        rnd, handle = self.round, self.handle
        # a longer slice when many wait: the batch grows with the backlog (fewer syscalls per
        # message when the CPU is short: measured 0.78 -> 0.54 writes and 0.41 -> 0.29 reads per
        # message at saturation), while a short burst keeps the short slice; never more than
        # MAX_SLICE, so SIP on the same loop and the SMSC's answers are never held up for long
        w = self.waiting
        end = perf_counter() + (SLICE if w < BATCH_FROM else min(MAX_SLICE, SLICE * (w // BACKLOG_SHARE)))
        try:
            while rnd:
                sess = rnd.popleft()
                q = sess.inq
                pdu = q.popleft()
                self.waiting -= 1
                if q:
                    rnd.append(sess)
                if sess.reading_paused and len(q) <= MAX_QUEUED // 2:
                    sess.resume()
                handle(sess, pdu)
                if self.waiting < FLUSH_EACH_BELOW:
                    self.batch.flush()          # little waiting: this message's writes leave now
                if perf_counter() >= end:
                    break
        finally:
            if rnd and not self._scheduled:
                self._scheduled = True
                _loop(self).call_soon(self.run)
            self.batch.flush()

    def drain_session(self, sess) -> None:
        """Handle everything `sess` has waiting, now (it is closing: answers go out before the close)."""
        q = sess.inq
        if not q:
            return
        try:
            self.round.remove(sess)
        except ValueError:
            pass
        while q:
            self.waiting -= 1
            self.handle(sess, q.popleft())
