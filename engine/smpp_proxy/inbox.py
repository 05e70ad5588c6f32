"""The proxy's work queue for PDUs from ESMEs, and the flush points of its socket writes.

Theory of operation. Judging a submit_sm costs ~100 µs of CPU; relaying a submit_sm_resp
costs ~2. If every PDU were handled inside the read callback that brought it, one loop
iteration could judge dozens (a read carries a whole window, and the loop reads every ready
socket before it runs anything else), and the SMSC's answers read in that iteration, and the
writes queued by it, would wait for all of that judging: at 5k/s offered that was most of the
added latency (measured with benchmarks.smpp_trace: resp -> ESME write p99 6.5 ms).

So an ESME's read callback only decodes: its PDUs go to the session's queue, and the session
joins the round of sessions with work. `Inbox.run` takes one PDU from each session in turn
(a session that sends more does not hold back the others) until its slice is over, then
flushes every stream with bytes queued (`WriteBatch`) and yields to the loop, which reads the
sockets (the SMSC's answers are relayed and flushed at the end of that read) before the next
slice. While few PDUs wait (< BATCH_FROM) a slice is ONE PDU: an SMSC answer that arrived
while we judged is relayed before the next message is judged, not after a slice of them. At
5k/s a fixed 300-µs slice made the typical answer wait for two or three other judgements
(smpp_trace: up->resp p50 ~700 µs against a responder that answers in ~30); the extra look
at the sockets costs a few µs of CPU per message, and only below BATCH_FROM, so a saturated
proxy (long queues, long slices) pays nothing more. A message therefore waits for at most one
slice of other work beyond its place in the queue, and the writes it causes leave right after it is handled while few are
waiting (FLUSH_EACH_BELOW), else within FLUSH_AGE, else at the end of its slice: a forward
is never held while more is judged, so the SMSC works in parallel with us. A slice grows
with the backlog (BATCH_FROM, BACKLOG_SHARE, up to MAX_SLICE): when the CPU is short, fewer
looks at the sockets mean fewer system calls per message, and the wait they add is small
beside the queue's. For the same reason the SMSC's answers, relayed at the end of the read
that brought them, are held under a backlog (BATCH_FROM waiting) for the writes of the next
judgements, at most HOLD_AGE: one write per ESME for several answers.

Bounds: a session with MAX_QUEUED PDUs waiting is paused (transport.pause_reading) until it
is down to half, so a peer that does not respect its window fills its own TCP buffers, not
our memory; its read callback decodes no more than that either (esme.py: the rest of the
read waits undecoded for the resume, so one read of 256 KB is not 16,384 PDUs decoded in one
loop turn); everything read is handled (judged, logged, answered where the socket still
stands), in order per session. A session that closes has its queue handled first.
"""
from __future__ import annotations

import asyncio
from collections import deque
from time import perf_counter

SLICE = 0.0003          # seconds of PDU handling between two looks at the sockets, from BATCH_FROM
MAX_QUEUED = 64         # PDUs read ahead per session before it is paused
BATCH_FROM = 8          # below this many PDUs waiting a slice is one PDU; from it, a slice grows with the backlog:
BACKLOG_SHARE = 3       # by SLICE for every this many waiting,
MAX_SLICE = 0.002       # up to this
FLUSH_EACH_BELOW = 4    # with fewer waiting, writes are flushed after each PDU,
FLUSH_AGE = 0.001       # else once the oldest queued write is this old (and at the end of a slice);
HOLD_AGE = 0.0003       # this old when SMSC answers were held for the slice (WriteBatch.flush_point)


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

    __slots__ = ("dirty", "since", "_scheduled", "_loop", "inbox", "age", "scope", "before")

    def __init__(self):
        self.dirty: list = []
        self.since = 0.0                    # when the oldest queued write was queued
        self._scheduled = False
        self._loop = None
        self.inbox = None                   # the Inbox that flushes at the end of its slices
        self.age = FLUSH_AGE                # the inbox flushes once the oldest queued write is this old
        self.scope = 0                      # > 0: inside an inbox slice or an SMSC read, which end in a flush point
        self.before: list = []              # work to run before the next write leaves (`later`)

    def later(self, fn) -> None:
        """Run `fn` before the next write leaves, at the latest at this slice's or read's flush point; outside
        one (a timer, the SIP screen), at the flush already asked for (a write made earlier in this iteration),
        else right after this loop iteration (call_soon). The state journal's crash spool packs a message's counts
        so (engine/state/journalspool.py): spooled before its submit_sm goes to the SMSC, and no loop iteration of
        their own (a zero-timeout epoll_wait per message at a moderate rate; under uvloop, which runs I/O
        callbacks before the ready queue, the SMSC's answer read in that iteration could be relayed before the
        pack). (A call_soon behind a flush already asked for ran after it: the submit_sm left unspooled.)"""
        if self.scope or self._scheduled:
            self.before.append(fn)
        else:
            _loop(self).call_soon(fn)

    def _run_before(self) -> None:
        b, self.before = self.before, []
        for fn in b:
            fn()

    def flush_point(self) -> None:
        """Flush, unless a backlog of PDUs is waiting for the inbox, which runs next anyway and
        flushes at the end of its slice or once the oldest queued write is HOLD_AGE old: under
        load the SMSC's answers read now leave with the writes of the next few judgements (one
        write per stream for all), not alone, and wait a fraction of a millisecond for it."""
        if self.before:                     # (held writes or not: before the loop reads a socket again)
            self._run_before()
        ib = self.inbox
        if ib is not None and ib._scheduled and ib.waiting >= BATCH_FROM:
            self.age = HOLD_AGE
            return
        self.flush()

    def add(self, stream) -> None:
        if not self.dirty:
            self.since = perf_counter()
        self.dirty.append(stream)
        if not self._scheduled and not self.scope:      # (in a scope its end is the flush point)
            self._scheduled = True
            _loop(self).call_soon(self._due)

    def _due(self) -> None:
        self._scheduled = False
        self.flush_point()

    def flush(self) -> None:
        if self.before:
            self._run_before()
        self.age = FLUSH_AGE
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
        batch.inbox = self

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
        rnd, handle, batch = self.round, self.handle, self.batch
        # a longer slice when many wait: fewer looks at the sockets per message when the CPU is
        # short, while a short burst keeps the short slice; never more than MAX_SLICE, so SIP on
        # the same loop and the SMSC's answers read between slices are never held up for long
        w = self.waiting
        # few waiting: one PDU, then the loop looks at the sockets (answers relayed between judgements)
        end = 0.0 if w < BATCH_FROM else perf_counter() + min(MAX_SLICE, SLICE * max(1, w // BACKLOG_SHARE))
        batch.scope += 1
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
                t = perf_counter()
                if batch.dirty and (self.waiting < FLUSH_EACH_BELOW or t - batch.since >= batch.age):
                    # little waiting: this message's writes leave now; else once the oldest queued
                    # write is FLUSH_AGE old, so the SMSC works on what is judged while we judge more
                    batch.flush()
                if t >= end:
                    break
        finally:
            batch.scope -= 1
            if rnd and not self._scheduled:
                self._scheduled = True
                _loop(self).call_soon(self.run)
            batch.flush()

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
