"""UDP and TCP transports of the SIP screen: bytes in, `SipScreen.on_datagram` /
`on_message` out, with the bounds an inline element needs.

Theory of operation: the SIP screen shares its event loop with the SMPP proxy, so no burst of
SIP traffic may hold the loop. The UDP socket is our own non-blocking socket watched by a
reader callback that reads one datagram with recvfrom(2) and handles it; if more are waiting
the poller calls it again on the next loop round, after whatever else is ready, so SMPP
sockets are served between any two datagrams. When the C extension is built, the reader
callback is the pump instead (_sippump.h): one C call per round reads up to PUMP_BATCH
datagrams (stopping at the first EAGAIN, which costs a syscall and no Python exception) and
relays responses and in-dialog requests itself, handing INVITEs and anything less than plain
to `SipScreen.on_datagram` -- the same decisions, without the Python frames; a bounded batch
still lets SMPP in between. The kernel's receive buffer is the only queue (sized for `queue_datagrams` datagrams, within the kernel's cap); what it drops is
read from /proc/net/udp and counted as `overload_dropped`. Answers and forwards are sent with
one sendto(2) on the same socket. Compared with asyncio's DatagramProtocol this spares a
Python callback, a queue append and a scheduled callback per datagram (issue #9).
A TCP connection handles at most `batch_messages` messages or `batch_seconds` of work per
loop round (reading is paused meanwhile). Inbound TCP connections are capped in total and per source address; a
sweeper closes connections idle for `tcp_idle_timeout` or holding an unfinished message for
`tcp_incomplete_timeout`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from .codec import SipParseError, parse_datagram
from .framing import StreamParser
from .settings import BRANCH_PREFIX, TAG_PREFIX

try:
    from ._sipfast import Pump
except ImportError:                              # no C extension: one datagram per round in Python
    Pump = None

log = logging.getLogger("telfilter.sip")
PUMP_BATCH = 8                   # datagrams per pump call: a flood of costly INVITEs still yields to SMPP


def make_pump(screen, fd: int, sendto=None):
    """The C pump for `screen` on socket `fd` (-1: sends go to `sendto(data, addr)`, nothing is read)."""
    def slow(data, addr):
        try:
            screen.on_datagram(data, addr)
        except Exception:                               # a bug must not stop the rounds
            screen.stats["internal_errors"] += 1
            log.exception("internal error on a datagram from %s", addr)

    def send_failed(data, src, why):
        screen._fail(parse_datagram(data), "UDP", src, None, why)

    def on_error(exc):                                  # counted by the pump already
        log.error("internal error in the SIP pump", exc_info=exc)

    via_head = f"Via: SIP/2.0/UDP {screen.host}:{screen.port};branch={BRANCH_PREFIX}".encode()
    return Pump(fd, PUMP_BATCH, screen.via_prefixes, via_head, TAG_PREFIX, screen.ranges, screen.stats, slow,
                screen._fast_final, screen._call_ended, send_failed, on_error, sendto, screen.invites.d)


class UdpEndpoint:
    """The UDP socket of the screen, read by a reader callback one datagram per round (no per-datagram
    protocol dispatch, no queue of our own: the kernel's receive buffer is the queue)."""

    def __init__(self, screen, sock: socket.socket):
        self.screen, self.sock = screen, sock
        # sendto(data, addr): one sendto(2) on the socket itself; a full send buffer raises
        # BlockingIOError like any OSError (the datagram is lost, as it would be on the network;
        # the caller answers 503 if it can)
        self.sendto = sock.sendto
        self.loop = None
        self.drops_seen = 0                                     # kernel drop counter at the last look
        self.pump = None                                        # the C pump when it reads the socket

    @classmethod
    def bind(cls, screen, host: str, port: int, reuse_port: bool = False) -> "UdpEndpoint":
        family, _, _, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM,
                                                   flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, screen.s.queue_datagrams * 2048)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(addr)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return cls(screen, sock)

    def start(self, loop):
        self.loop = loop
        self.refresh()

    def refresh(self):
        """(Re)install the reader: the C pump when it is built and the fast path is on, built from
        what the screen has now (its address, permitted networks); else the Python reader."""
        if Pump is not None and self.screen.fast_path:
            self.pump = make_pump(self.screen, self.sock.fileno())
            self.loop.add_reader(self.sock.fileno(), self.pump.run)
        else:
            self.pump = None
            self.loop.add_reader(self.sock.fileno(), self.readable)

    def close(self):
        if self.loop is not None:
            self.loop.remove_reader(self.sock.fileno())
        self.pump = None                                # it refers back to the screen (no GC support)
        self.sock.close()

    def get_extra_info(self, name):
        return self.sock.getsockname() if name == "sockname" else None

    def readable(self):
        # One datagram per call: at the usual load the socket holds one datagram when the poller
        # wakes us, and a second recvfrom would only fail with EAGAIN (a syscall and a Python
        # exception per datagram). Under a burst the poller calls us again at once, after the
        # other callbacks and sockets (SMPP) that are ready: one message per loop round.
        try:
            data, addr = self.sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:                            # an ICMP error reported on the socket
            log.info("UDP error: %s", e)
            return
        try:
            self.screen.on_datagram(data, addr)
        except Exception:                               # a bug must not stop the rounds
            self.screen.stats["internal_errors"] += 1
            log.exception("internal error on a datagram from %s", addr)

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped on this socket because its receive buffer was full
        (Linux: the `drops` column of /proc/net/udp[6] for this socket's inode), or None."""
        try:
            inode = str(os.fstat(self.sock.fileno()).st_ino)
            for name in ("/proc/self/net/udp", "/proc/self/net/udp6"):
                with open(name) as f:
                    for line in f:
                        cols = line.split()
                        if len(cols) > 12 and cols[9] == inode:
                            return int(cols[12])
        except (OSError, ValueError):
            return None
        return None


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
        end = time.perf_counter() + self.screen.s.batch_seconds
        for _ in range(self.screen.s.batch_messages):
            if time.perf_counter() > end:
                break
            try:
                msg = self.parser.next()
            except SipParseError as e:
                self.screen.on_parse_error(e, "TCP", self.peer, self)
                self.transport.close()                 # the stream cannot be resynchronised
                return
            if msg is None:
                self.partial_since = (self.partial_since or time.monotonic()) if self.parser.pending() else None
                return
            # a message finished: the clock of "unfinished" restarts at the next partial one only
            # (a busy peer's reads rarely end on a message boundary)
            self.partial_since = None
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
