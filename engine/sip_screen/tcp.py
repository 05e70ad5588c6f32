"""TCP transport of the SIP screen: connections (`TcpConnection`, accepted or opened towards a next hop) and
the one scheduler of their work (`TcpRounds`, tcprounds.py); bytes in, `SipScreen.on_message` out. The UDP
endpoint and the shared loop's constraint are in transport.py.

Theory of operation: the one scheduler of TCP work, `TcpRounds` (tcprounds.py), handles a connection's bytes at
once or queues it with its reading paused, within a budget per loop round for all connections together. A connection's
messages are handled in their order, and what it can make us hold is what it sent before it was
paused: a read (READ_CHUNK) and an unfinished message; all of them together, max_tcp_read_buffered (a connection
that reads while they hold it is not read until there is room: tcpreads.py). A connection that closes has what
it sent before handled all the same (a BYE followed by a close), unless we closed it for an error.
Writes (RFC 3261 §18.3 gives a stream peer no other way to push back): a connection whose write
buffer is over WRITE_HIGH is not read (asyncio's pause_writing) until it drains, so a peer that
does not read its answers cannot make us queue answers to what it keeps sending; nothing is
queued beyond WRITE_MAX bytes for one peer (the message is not written, counted as
`tcp_write_dropped`; a forward then fails like any other, 503), nor beyond max_tcp_write_buffered for all of
them together (the connection holding most closed, `tcp_write_evicted`: tcpwrites.py), and a peer that leaves our writes
unread for WRITE_STALL seconds (no byte of them read: a slow reader's clock restarts whenever the
sweeper sees bytes of them gone to the peer) is closed (`tcp_write_stalled`); one we closed for an error whose
peer does not read the rest is aborted after `tcp_incomplete_timeout`. Outbound connections to a next hop
alike. TCP connections are capped in total and per source address (inbound) or destination host
(outbound, bounds.py); a sweeper closes
connections idle for `tcp_idle_timeout` (not one an INVITE sent on it, or forwarded from it, waits for
its final on: bounds.py, `awaited`) or holding an unfinished message for
`tcp_incomplete_timeout` (those two clocks stop while we do not read the connection: that is not
the peer's doing).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
import socket
import struct
import time
from time import perf_counter

from ..listen import peer_of
from .codec import SipParseError
from .framing import StreamParser

try:                                             # the kernel's send queue (Linux, BSDs): TcpConnection.unacked
    from fcntl import ioctl
    from termios import TIOCOUTQ
except ImportError:
    ioctl = TIOCOUTQ = None

log = logging.getLogger("telfilter.sip")
WRITE_HIGH = 64 * 1024           # bytes queued to a TCP peer above which it is not read until they drain
WRITE_MAX = 1024 * 1024          # bytes queued to one TCP peer at most: a message that would go over is not written
WRITE_STALL = 32.0               # seconds a TCP peer may leave our writes unread: 64*T1, by then every transaction
                                 # whose messages wait has timed out (RFC 3261 Timers B, F)
WRITE_STALLED = "not reading what we write"             # TcpConnection.expired()'s reason: counted apart
INVITE_WAIT_MAX = 600.0          # seconds an INVITE sent or forwarded over TCP keeps its connection open waiting for
                                 # its final: over Timer C (> 3 min, RFC 3261 §16.8) with room, and any real ring time
LINGER_RESET = struct.pack("ii", 1, 0)                    # SO_LINGER on, 0 s: close(2) resets the connection
AWAITED = 256                    # INVITEs of one inbound connection awaiting their final remembered (oldest forgotten)


class TcpConnection(asyncio.BufferedProtocol):
    """One TCP connection, accepted (inbound) or opened by us towards a next hop (outbound key).
    `id` names it in our Via of the requests it brings (`;i=`), so their responses come back on it."""

    _ids = itertools.count(random.getrandbits(32))     # not reused across restarts: an old Via matches nothing

    def __init__(self, screen, outbound_key=None):
        self.screen, self.parser, self.transport, self.key = screen, StreamParser(), None, outbound_key
        self.id = next(self._ids)
        self.counted = False
        self.queued = False                 # in the scheduler's ready queue (not read meanwhile)
        self.reading = True                 # as we last told the transport
        self.write_paused_at = None         # since when the peer has not read what we write (monotonic)
        self.sent = 0                       # bytes handed to the transport in all
        self.held = 0                       # `unacked` as last seen (tcpwrites.py: the total of them all)
        self.progress_at = 0.0              # when its peer last took bytes of what it holds (tcpwrites.py)
        self.unread = 0                     # its parser's bytes as last seen (tcpreads.py: the total of them all)
        self.held_back = False              # not read until the screen has handled enough (tcpreads.py)
        self.lost = False
        self.drained_seen = 0               # of them, gone to the peer at the sweeper's last look
        self.closing_since = None           # when we closed it (it goes once its write buffer drains)
        self.discard = False                # closed by us for an error: what it sent is not handled
        self.last_rx = self.partial_since = None
        self.out_counted = False            # outbound: holds a place under the outbound caps (bounds.py)
        self.last_used = 0.0                # outbound: when a message last went or came on it (monotonic)
        self.awaited = None                 # inbound: digest("Call-ID CSeq") of INVITEs forwarded -> until when

    def connection_made(self, transport):
        self.transport = transport
        # an IPv4 peer of `[::]` as IPv4 (engine/listen.py): named in the log as configured, and keyed in tcp_conns
        # as _send looks an address up (forwarding._canonical writes a mapped one as IPv4)
        peer = peer_of(transport.get_extra_info("peername"))
        self.peer = (peer[0], peer[1])
        self.last_rx = time.monotonic()
        if self.key is None and not self.screen.tcp_admit(self):
            self.discard = True
            transport.abort()
            return
        if self.key is None:
            # inbound: its first message (or keep-alive) is due within tcp_incomplete_timeout, as the rest of a
            # started one is: connections that sent nothing held their slots for tcp_idle_timeout (300 s), and
            # max_tcp_connections of them from a few addresses refused every other TCP peer meanwhile
            self.partial_since = self.last_rx
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        if self.key is not None:
            self.screen.tcp_out_opened(self)
        self.screen.tcp_conns[self.key or self.peer] = self
        self.screen.tcp_ids[self.id] = self

    def connection_lost(self, exc):
        self.lost = True
        self.screen.tcp_writes.seen(self, 0)
        self.screen.tcp_reads.lost(self)
        if self.screen.tcp_conns.get(self.key or self.peer) is self:
            del self.screen.tcp_conns[self.key or self.peer]
        self.screen.tcp_ids.pop(self.id, None)
        if self.counted:
            self.screen.tcp_release(self)
        if self.out_counted:
            self.screen.tcp_out_closed(self)

    # asyncio reads into the screen's one buffer (tcpreads.py), READ_CHUNK at most, less at the bound
    def get_buffer(self, sizehint):
        return self.screen.tcp_reads.buffer()

    def buffer_updated(self, nbytes):
        self.data_received(self.screen.tcp_reads.scratch[:nbytes])

    def data_received(self, data):
        self.last_rx = time.monotonic()
        if self.out_counted:
            self.screen.tcp_out_used(self)
        self.parser.feed(data)
        self.screen.tcp_reads.read(self)
        self.screen.tcp_rounds.offer(self)

    def work(self, n: int, end: float) -> bool:
        """Handle up to `n` messages, stopping once perf_counter() passes `end`; True if more may be waiting."""
        try:
            return self._work(n, end)
        except Exception:                   # a bug must not leave the connection queued and unread for ever
            self.screen.stats["internal_errors"] += 1
            log.exception("internal error on TCP from %s", self.peer)
            self.abort()
            return False
        finally:
            reads = self.screen.tcp_reads
            reads.seen(self)                # what it handled is room for those held back
            if reads.held_back:
                reads.release()

    def _work(self, n: int, end: float) -> bool:
        screen = self.screen
        for _ in range(n):
            if self.discard:
                return False
            try:
                msg = self.parser.next()
            except SipParseError as e:
                screen.on_parse_error(e, "TCP", self.peer, self)
                if getattr(e, "resynced", False):       # one message refused, skipped: the stream goes on
                    continue
                self.close()                           # the stream cannot be resynchronised
                return False
            finally:
                if self.parser.pings:                   # RFC 5626 §3.5.1: a CRLFCRLF ping gets a CRLF pong (one
                    screen.stats["keepalives"] += self.parser.pings     # for the pings read together)
                    self.parser.pings = 0
                    self.send(b"\r\n")
            if msg is None:
                self.partial_since = (self.partial_since or time.monotonic()) if self.parser.pending() else None
                return False
            # a message finished: the clock of "unfinished" restarts at the next partial one only
            # (a busy peer's reads rarely end on a message boundary)
            self.partial_since = None
            m = msg.method
            if m == "INVITE" or m == "MESSAGE" and screen.s.judge_messages:     # counted as over UDP (shares.py)
                screen.shares.over_share(self.peer[0], time.monotonic(), offered=False)    # (never dropped)
            screen.on_message(msg, "TCP", self.peer, self)
            if perf_counter() >= end:
                break
        return True

    def update_reading(self):
        """Read while neither the scheduler holds messages of ours, nor the peer leaves our writes unread, nor the
        connections hold max_tcp_read_buffered unhandled (tcpreads.py)."""
        want = not self.queued and self.write_paused_at is None and not self.held_back
        if want != self.reading and self.transport is not None and not self.transport.is_closing():
            self.reading = want
            if want:
                self.transport.resume_reading()
                # the peer could not finish its message while we did not read: its clocks start again
                self.last_rx = time.monotonic()
                if self.partial_since is not None:
                    self.partial_since = self.last_rx
            else:
                self.transport.pause_reading()

    # asyncio calls these at the write buffer's water marks (WRITE_HIGH, a quarter of it)
    def pause_writing(self):
        self.write_paused_at = time.monotonic()
        self.drained_seen = self.sent - self.screen.tcp_writes.look(self)
        self.update_reading()

    def resume_writing(self):
        self.screen.tcp_writes.look(self)
        self.write_paused_at = None
        self.update_reading()

    def _drained(self) -> int:
        """Bytes of what we wrote that the peer's kernel has acknowledged: written, less what is not (`unacked`;
        without the kernel's part a send buffer of megabytes hides a slow reader's progress)."""
        return self.sent - self.unacked()

    def unacked(self) -> int:
        """Bytes of what we wrote that the peer has not acknowledged: asyncio's buffer and our kernel's send queue
        (TIOCOUTQ: the kernel grows a socket's send buffer to megabytes, tcp_wmem; tcpwrites.py counts it too)."""
        t = self.transport
        if t is None:
            return 0
        waiting = t.get_write_buffer_size()
        sock = t.get_extra_info("socket")
        if sock is not None and ioctl is not None:
            try:
                waiting += struct.unpack("i", ioctl(sock.fileno(), TIOCOUTQ, b"\0\0\0\0"))[0]
            except (OSError, ValueError, AttributeError):
                pass
        return waiting

    def close(self):
        self.discard = True
        if self.closing_since is None:
            self.closing_since = time.monotonic()
        self.transport.close()              # (after its write buffer drains: bounded by `expired`)

    def abort(self):
        """Closed at once, with what waits for the peer let go: asyncio's buffer and, by a reset (SO_LINGER 0), the
        kernel's send queue (a close leaves it queued to a peer that does not read, orphaned, for minutes). With
        nothing in the kernel's queue (an idle connection, one refused) it ends as before: the peer reads the end."""
        self.discard = True
        sock = self.transport.get_extra_info("socket")
        if sock is not None and self.unacked() > self.transport.get_write_buffer_size():
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            except (OSError, AttributeError):
                pass
        self.transport.abort()

    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def expired(self, now: float) -> str | None:
        s = self.screen.s
        if self.closing_since is not None and now - self.closing_since > s.tcp_incomplete_timeout:
            return "closed by us, its peer not reading the rest"       # close() waits for the buffer to drain
        if self.write_paused_at is not None:
            drained = self._drained()
            if drained > self.drained_seen:
                self.write_paused_at = now  # it reads, if slowly: the clock starts again
            self.drained_seen = drained
            if now - self.write_paused_at > WRITE_STALL:
                return WRITE_STALLED
        if not self.reading and not self.held_back:
            return None                     # we are not reading: neither clock is the peer's doing (held back for
                                            # the total: its unfinished message may be what holds the others)
        if self.partial_since is not None and now - self.partial_since > s.tcp_incomplete_timeout:
            # (nothing pending: the clock an inbound connection starts with at its accept, no message sent yet)
            return "unfinished message" if self.parser.pending() else "no message since it was accepted"
        if now - self.last_rx > s.tcp_idle_timeout and not self._ringing(now):
            return "idle"
        return None

    def _ringing(self, now: float) -> bool:
        """An INVITE sent on it (outbound: bounds.py tcp_out_invite) or that came on it and was forwarded (inbound:
        `awaited`) waits for its final, INVITE_WAIT_MAX at most. It rings with nothing on the connection and its final
        comes back on it (RFC 3261 §17.2.1, §18.2.2): not idle (the sweeper closed it after tcp_idle_timeout, the
        200 of a call ringing longer lost)."""
        if self.key is not None:
            return bool(self.screen.tcp_out_ringing.get(self.key))
        a = self.awaited
        while a:
            tx, until = next(iter(a.items()))
            if until > now:
                return True
            del a[tx]
        return False

    def invite_forwarded(self, tx: int, until: float) -> None:
        """Inbound: the INVITE of transaction digest `tx` came on it and was forwarded; its final is awaited until
        `until` (monotonic). At most AWAITED are remembered, the oldest forgotten (a busy trunk is not idle anyway)."""
        a = self.awaited
        if a is None:
            a = self.awaited = {}
        elif len(a) >= AWAITED and tx not in a:
            del a[next(iter(a))]
        a[tx] = until

    def invite_answered(self, tx: int) -> None:
        """Inbound: a final of transaction digest `tx` went out on it."""
        if self.awaited:
            self.awaited.pop(tx, None)

    def send(self, data: bytes) -> bool:
        """Write `data`; False if it was not: the connection is closed, the peer has WRITE_MAX bytes
        unread already (counted: a peer that does not read loses what it does not read), or the
        connections hold max_tcp_write_buffered and this one holds most (closed: tcpwrites.py)."""
        t = self.transport
        if t is None or t.is_closing():
            return False
        if t.get_write_buffer_size() + len(data) > WRITE_MAX:
            self.screen.stats["tcp_write_dropped"] += 1
            return False
        writes = self.screen.tcp_writes
        if not writes.room(self, len(data)):
            return False
        t.write(data)
        self.sent += len(data)
        writes.look(self, len(data))
        return True
