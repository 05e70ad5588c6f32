"""The UDP transport of the SIP screen (TCP: tcp.py): bytes in, `SipScreen.on_datagram` out, with the
bounds an inline element needs.

Theory of operation: the SIP screen shares its event loop with the SMPP proxy, so no burst of
SIP traffic may hold the loop. The UDP socket is our own non-blocking socket watched by a
reader callback that reads up to PUMP_BATCH datagrams with recvfrom(2) and handles them; if more
are waiting the poller calls it again on the next loop round, after whatever else is ready, so
SMPP sockets are served between any two batches. When the C extension is built, the reader
callback is the pump instead (_sippump.h): one C call per round reads up to PUMP_BATCH
datagrams (stopping at the first EAGAIN, which costs a syscall and no Python exception) and
relays responses and in-dialog requests itself, handing INVITEs and anything less than plain
to `SipScreen.on_datagram` -- the same decisions, without the Python frames; a bounded batch
still lets SMPP in between. A datagram from outside accept_networks is dropped before it is
parsed, by the pump before any Python object is made for it (sources.py). The kernel's receive
buffer is the only queue (sized for `queue_datagrams` datagrams, within the kernel's cap); what it drops is
read from /proc/net/udp and counted as `overload_dropped`. Answers and forwards are sent with
one sendto(2) on the same socket. Compared with asyncio's DatagramProtocol this spares a
Python callback, a queue append and a scheduled callback per datagram (issue #9).
TCP (connections, the rounds that share the loop between them, write bounds, caps and timeouts): tcp.py.
"""
from __future__ import annotations

import logging
import os
import select
import socket
import time

from ..listen import host_ref
from .codec import parse_datagram
from .settings import BRANCH_PREFIX, TAG_PREFIX
from .unreachable import ERRQUEUE_BUSY_S, read_errors, recv_errors

try:
    from ._sipfast import Pump
except ImportError:                              # no C extension: the Python reader (UdpEndpoint.readable)
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

    via_head = f"Via: SIP/2.0/UDP {host_ref(screen.host)}:{screen.port};branch={BRANCH_PREFIX}".encode()
    return Pump(fd, PUMP_BATCH, screen.via_prefixes, via_head, TAG_PREFIX, screen.ranges, screen.stats, slow,
                screen._fast_final, screen._call_ended, send_failed, on_error, sendto, screen.invites.d,
                screen.source_filter().table, screen.refused_said, screen.next_hop(), screen.rejected.d)


class UdpEndpoint:
    """The UDP socket of the screen, read by a reader callback a batch per round (no per-datagram
    protocol dispatch, no queue of our own: the kernel's receive buffer is the queue)."""

    def __init__(self, screen, sock: socket.socket):
        self.screen, self.sock = screen, sock
        # sendto(data, addr): one sendto(2) on the socket itself; a full send buffer raises
        # BlockingIOError like any OSError (the datagram is lost, as it would be on the network;
        # the caller answers 503 if it can). An IPv6 socket is given an IPv4 address in its mapped form
        self.sendto = self._sendto_mapped if sock.family == socket.AF_INET6 else sock.sendto
        self.loop = None
        self.drops_seen = 0                                     # kernel drop counter at the last look
        self.pump = None                                        # the C pump when it reads the socket
        self.full_since = 0.0                                   # the Python reader's Pump.full_since
        self.errq_at = 0.0                                      # when it last read the error queue (unreachable.py)
        self.watch = None                                       # the epoll instance the loop watches for it (watch_fd)

    def _sendto_mapped(self, data: bytes, addr) -> int:
        """sendto(2) from an IPv6 socket: `[::]` is dual-stack (it receives IPv4 peers as ::ffff:a.b.c.d) but Python
        resolves an IPv4 address for it as IPv6 only ("Address family for hostname not supported"), so an IPv4
        destination -- a Request-URI, a Contact, the next hop -- is written as its IPv4-mapped address (RFC 4291
        §2.5.5.2). Only addresses get here (`_permitted` refuses names); from `[::1]` the send still fails (503).
        The C pump sends what it relays the same way (_sipaddr.h: pump_dest)."""
        if ":" not in addr[0]:
            addr = ("::ffff:" + addr[0], addr[1])
        return self.sock.sendto(data, addr)

    @classmethod
    def bind(cls, screen, host: str, port: int, reuse_port: bool = False) -> "UdpEndpoint":
        family, _, _, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM,
                                                   flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, screen.s.queue_datagrams * 2048)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and host.strip("[]") == "::":     # dual-stack whatever bindv6only says,
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # as the TCP side (engine/listen.py)
            sock.bind(addr)
            sock.setblocking(False)
            recv_errors(sock)           # ICMP errors about what we send are seen (unreachable.py)
        except OSError:
            sock.close()
            raise
        return cls(screen, sock)

    def start(self, loop):
        self.loop = loop
        self.refresh()

    def refresh(self):
        """(Re)install the reader: the C pump when it is built and the fast path is on, built from
        what the screen has now (its address, permitted and accepted networks); else the Python reader."""
        if Pump is not None and self.screen.fast_path:
            self.pump = make_pump(self.screen, self.sock.fileno())
            self.pump.on_errqueue = self.drain_errors
            self.loop.add_reader(self.watch_fd(), self.pump.run)
        else:
            self.pump = None
            self.loop.add_reader(self.watch_fd(), self.readable)

    def watch_fd(self) -> int:
        """What the event loop watches: an epoll instance holding the socket, not the socket itself. An ICMP error
        queued on the socket (IP_RECVERR, unreachable.py) makes it POLLERR, and uvloop's poller (libuv's uv_poll)
        takes POLLERR as fatal: it runs the reader once and stops watching the socket for good -- the first call to a
        dead next hop got its 503 and the screen read no UDP again until a restart. The epoll instance is only ever
        readable (when the socket is readable or has an error queued: the reader then reads the error queue), so
        every loop watches it alike; the reader still reads the socket itself."""
        if not hasattr(select, "epoll"):                # not Linux: no IP_RECVERR either, the socket itself
            return self.sock.fileno()
        if self.watch is None:
            self.watch = select.epoll(1)
            self.watch.register(self.sock.fileno(), select.EPOLLIN)
        return self.watch.fileno()

    def close(self):
        if self.loop is not None:
            self.loop.remove_reader(self.watch.fileno() if self.watch is not None else self.sock.fileno())
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        self.pump = None                                # it refers back to the screen (no GC support)
        self.sock.close()

    def get_extra_info(self, name):
        return self.sock.getsockname() if name == "sockname" else None

    def readable(self):
        # As the C pump's run(): up to PUMP_BATCH datagrams per loop round, stopping at the first
        # EAGAIN (at the usual load: one datagram, then one failed recvfrom); under a burst the
        # poller calls us again after the other callbacks and sockets (SMPP) that are ready.
        # `full_since` as the pump's: since when every round has read a whole batch, set from what
        # this round read before any of it is handled, as the pump's recvmmsg (set while handling, a
        # round of exactly PUMP_BATCH left it standing through an idle, for the next round's INVITEs)
        got, failed = [], False
        for _ in range(PUMP_BATCH):
            try:
                got.append(self.sock.recvfrom(65535))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:                             # an ICMP error reported on the socket: its details queued
                failed = True
                break
        now = time.monotonic()
        # as the pump: a read that found no datagram, and busy every ERRQUEUE_BUSY_S (an ICMP error's errno is taken
        # by the next send: no read fails for it while every read finds datagrams)
        if failed or not got or now - self.errq_at >= ERRQUEUE_BUSY_S:
            self.errq_at = now
            self.drain_errors()
        if len(got) < PUMP_BATCH:
            self.full_since = 0.0
        elif not self.full_since:
            self.full_since = now
        for data, addr in got:
            try:
                self.screen.on_datagram(data, addr)
            except Exception:                           # a bug must not stop the rounds
                self.screen.stats["internal_errors"] += 1
                log.exception("internal error on a datagram from %s", addr)

    def drain_errors(self) -> None:
        """The socket's error queue read (unreachable.py): each ICMP error to the screen's on_icmp_error."""
        try:
            read_errors(self.sock, self.screen.on_icmp_error)
        except Exception:                               # a bug must not stop the rounds
            self.screen.stats["internal_errors"] += 1
            log.exception("internal error on an ICMP error")

    def behind_since(self) -> float:
        """time.monotonic() since when the socket has not been found empty (every round read a whole batch), or 0."""
        pump = self.pump
        return pump.full_since if pump is not None else self.full_since

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
