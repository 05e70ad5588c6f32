"""The one scheduler of the SIP screen's TCP work (`TcpRounds`): which connection's messages are handled when, within
a budget per loop round. No socket of its own: connections are tcp.py's `TcpConnection`.

Theory of operation: TCP work is bounded per loop round for all connections together, not per connection (with N
connections a per-connection bound is N times it): `TcpRounds` is the one scheduler. A connection
whose bytes arrive while no other waits and the round has budget left is handled at once (at the
usual load: no queue, no extra loop round); otherwise it joins the ready queue with its reading
paused, and the scheduler's callback, run once per loop round, serves the queue in turn, one
message per connection per turn, at most `batch_messages` per connection and `batch_seconds` of
work in all per round, then gives the loop back. So a flood on hundreds of connections costs the
SMPP proxy and the UDP callers one `batch_seconds` per round, not one per connection. Its INVITEs and MESSAGEs count
toward their source's share as UDP ones do (shares.py, one count): the connections of a source over its share are
served after the others', with what they leave of a round and an eighth of it at least (requests that are not
counted -- OPTIONS, in-dialog ones, responses -- can fill the rounds, and the count of a source over its share, not
read, holds still), and while the screen is behind on UDP with an eighth of a round at most, the loop going back to
the UDP socket (the rest wait unread: TCP pushes back; never nothing, or their count,
held still, fell below a UDP caller's, whose INVITEs were then dropped as over their share): one source's
connections, however many, cannot starve another's or the UDP callers (benchmarks/sip_flood_kinds.py).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from time import perf_counter

BEHIND_PART = 8                  # the sources over their share get this part of a round at least, at most while the
                                 # screen is behind on UDP (batch_seconds / 8: ~a UDP round's 8 datagrams,
                                 # transport.PUMP_BATCH)


class TcpRounds:
    """The one scheduler of SIP work on TCP connections (theory of operation above): a ready queue
    served in turn, one message per connection per turn, within a budget per loop round."""

    def __init__(self, screen):
        self.screen = screen
        self.ready: deque = deque()         # connections with messages waiting (reading paused), in turn
        self.used = 0.0                     # seconds of TCP work since the round's callback last ran
        self.scheduled = False
        self.loop = None

    def offer(self, conn) -> None:
        """`conn` has new bytes: handled now if nobody waits and the round has budget left, else queued."""
        if conn.queued:
            return                          # served in its turn, in order
        budget = self.screen.s.batch_seconds
        if self.ready or self.used >= budget or self.screen.shares.over(conn.peer[0], now := time.monotonic()) \
                and self.screen._behind(now):       # (its source over its share while behind: run() decides)
            return self._queue(conn)
        t0 = perf_counter()
        more = conn.work(self.screen.s.batch_messages, t0 + budget - self.used)
        self.used += perf_counter() - t0
        if more:
            self._queue(conn)
        elif self.used >= budget / 2 and not self.scheduled:
            self._schedule()                # a new round's budget once the loop has gone round (no call per message)

    def _queue(self, conn) -> None:
        conn.queued = True
        conn.update_reading()
        self.ready.append(conn)
        if not self.scheduled:
            self._schedule()

    def _schedule(self) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            try:
                loop = self.loop = asyncio.get_running_loop()
            except RuntimeError:            # no loop runs (a connection driven by hand): no round to yield to
                self.used = 0.0
                return
        self.scheduled = True
        loop.call_soon(self.run)

    def run(self) -> None:
        """A loop round's TCP work: the queue in turn, at most `batch_messages` per connection and
        `batch_seconds` in all (the connections that arrive later this round get what is left). Connections whose
        source is over its share of the INVITEs and MESSAGEs (shares.py, TCP's and UDP's in one count) are served
        after the others, with what they leave and 1/BEHIND_PART of the round at least, at most that while the screen
        is behind on UDP (`tcp_source_deferred`: rounds so cut short)."""
        self.scheduled = False
        screen = self.screen
        t0 = perf_counter()
        budget = screen.s.batch_seconds
        end, part = t0 + budget, budget / BEHIND_PART
        ready, later = self.ready, deque()
        try:
            now = time.monotonic()
            over = screen.shares.over
            # (a part of the round kept for those over their share: requests that are not counted -- OPTIONS,
            # in-dialog ones, responses -- kept the rounds full, and a source over its share, its count held still,
            # was served nothing until the window ended: a trunk carrying most calls, MIN_COUNT of them a second)
            self._serve(ready, end, lambda c: over(c.peer[0], now), later, end - part)
            if later and perf_counter() < end:
                if screen._behind(now):         # the UDP callers first: a short round, the loop back to them
                    screen.stats["tcp_source_deferred"] += 1
                    self._serve(later, min(end, perf_counter() + part))
                else:
                    self._serve(later, end)
        finally:
            ready.extendleft(reversed(later))   # (first in the next round's turn: set aside at once, in their order)
            self.used = perf_counter() - t0
            if ready and not self.scheduled:
                self._schedule()

    def _serve(self, queue: deque, end: float, over=None, later=None, kept: float = 0.0) -> None:
        """Up to `batch_messages` turns over `queue`, one message of each connection a turn, the ones done leaving
        it, until `end`; a connection `over` names goes to `later` unserved, and once one has, until `kept`."""
        for _ in range(self.screen.s.batch_messages):
            for _ in range(len(queue)):
                c = queue.popleft()
                if over is not None and over(c):
                    later.append(c)
                    continue
                if c.work(1, end):
                    queue.append(c)
                else:
                    c.queued = False
                    c.update_reading()
                if perf_counter() >= (kept if later else end):
                    return
            if not queue:
                return
