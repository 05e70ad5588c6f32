"""UDP and TCP transports of the SIP screen: bytes in, `SipScreen.on_datagram` /
`on_message` out, with the bounds an inline element needs.

Theory of operation: the SIP screen shares its event loop with the SMPP proxy, so no burst of
SIP traffic may hold the loop. Datagrams are queued as they arrive (a bounded deque: beyond
`queue_datagrams` the newest are dropped and counted, as the kernel would drop them) and handled
by a callback that takes at most `batch_messages` of them or `batch_seconds` of CPU, then
reschedules itself behind whatever else is ready, so SMPP sockets are served between rounds.
A TCP connection handles at most `batch_messages` messages per read the same way (reading is
paused meanwhile). Inbound TCP connections are capped in total and per source address; a
sweeper closes connections idle for `tcp_idle_timeout` or holding an unfinished message for
`tcp_incomplete_timeout`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from .codec import SipParseError, StreamParser

log = logging.getLogger("telfilter.sip")


class UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, screen):
        self.screen = screen
        s = screen.s
        self.queue: deque = deque()
        self.limit, self.batch, self.budget = s.queue_datagrams, s.batch_messages, s.batch_seconds
        self.scheduled = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.loop = asyncio.get_running_loop()

    def datagram_received(self, data, addr):
        q = self.queue
        if len(q) >= self.limit:
            self.screen.stats["overload_dropped"] += 1
            return
        q.append((data, addr))
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.drain)

    def drain(self):
        q, on = self.queue, self.screen.on_datagram
        end = time.perf_counter() + self.budget
        for _ in range(self.batch):
            if not q:
                break
            data, addr = q.popleft()
            try:
                on(data, addr)
            except Exception:                        # a bug must not stop the rounds (scheduled stays set)
                self.screen.stats["internal_errors"] += 1
                log.exception("internal error on a datagram from %s", addr)
            if time.perf_counter() > end:
                break
        if q:
            self.loop.call_soon(self.drain)          # behind every callback already ready (SMPP)
        else:
            self.scheduled = False

    def error_received(self, exc):
        log.info("UDP error: %s", exc)


class TcpConnection(asyncio.Protocol):
    """One TCP connection, accepted (inbound) or opened by us towards a next hop (outbound key)."""

    def __init__(self, screen, outbound_key=None):
        self.screen, self.parser, self.transport, self.key = screen, StreamParser(), None, outbound_key
        self.counted = False
        self.paused = False
        self.last_rx = self.partial_since = None

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.last_rx = time.monotonic()
        if self.key is None and not self.screen.tcp_admit(self):
            transport.abort()
            return
        self.screen.tcp_conns[self.key or self.peer] = self

    def connection_lost(self, exc):
        if self.screen.tcp_conns.get(self.key or self.peer) is self:
            del self.screen.tcp_conns[self.key or self.peer]
        if self.counted:
            self.screen.tcp_release(self)

    def data_received(self, data):
        self.last_rx = time.monotonic()
        self.parser.feed(data)
        if not self.paused:
            self._work()

    def _work(self):
        if self.paused:
            self.paused = False
            if self.transport.is_closing():
                return
            self.transport.resume_reading()
        for _ in range(self.screen.s.batch_messages):
            try:
                msg = self.parser.next()
            except SipParseError as e:
                self.screen.on_parse_error(e, "TCP", self.peer, self)
                self.transport.close()                 # the stream cannot be resynchronised
                return
            if msg is None:
                self.partial_since = (self.partial_since or time.monotonic()) if self.parser.pending() else None
                return
            self.screen.on_message(msg, "TCP", self.peer, self)
            if self.transport.is_closing():
                return
        self.paused = True                             # more may be buffered: let the loop breathe
        self.transport.pause_reading()
        asyncio.get_running_loop().call_soon(self._work)

    def expired(self, now: float) -> str | None:
        s = self.screen.s
        if self.partial_since is not None and now - self.partial_since > s.tcp_incomplete_timeout:
            return "unfinished message"
        if now - self.last_rx > s.tcp_idle_timeout:
            return "idle"
        return None

    def send(self, data: bytes):
        if self.transport and not self.transport.is_closing():
            self.transport.write(data)
