"""What one peer may cost the SIP screen's transports: inbound TCP connections capped in total and per
source address (`max_tcp_connections`, `max_tcp_per_source`), outbound ones in total and per destination
host (`max_tcp_out_connections`, `max_tcp_out_per_host`), a sweeper that closes connections idle,
holding an unfinished message or leaving our writes unread too long (transport.py TcpConnection.expired),
and the UDP datagrams the kernel dropped for a full receive buffer, counted as `overload_dropped`.

Outbound connections (theory of operation): the screen opens one per (host, port) a message must go to
over TCP -- a Route or Request-URI with `;transport=tcp`, a response whose next Via is TCP and whose
connection has closed -- and what names those destinations is the peers' traffic. So they hold a place
each, from the moment their connect starts (a connect in flight holds an fd too, and up to TCP_QUEUE
messages) until the connection is lost. At a cap the least recently used outbound connection (of that
host, or of all) is closed if it is idle -- nothing sent on it or received from it for TCP_OUT_IDLE
seconds, by when every transaction that used it has ended (64*T1) and a late response comes back on a
new connection (RFC 3261 §18.2.2) --, else the new connection is refused (`tcp_out_refused`; the sender
of a request gets 503, a large request falls back to UDP, a response is dropped). Both are O(1): the
connections are kept in order of last use (an OrderedDict moved to its end on each use), so the least
recently used is the first; if it is not idle none is.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from .transport import WRITE_STALLED, UdpEndpoint

log = logging.getLogger("telfilter.sip")
TCP_OUT_IDLE = 32.0             # seconds unused before an outbound connection may be closed for a new one (64*T1)
UNLIMITED = 1 << 30             # no descriptor budget set (a screen not started by serve's caps: tests)


class TransportBounds:
    """Mixin of SipScreen (its `s`, `stats`, `udp`, `tcp_conns`, `tcp_inbound`, `tcp_per_source`)."""

    # the descriptor budget's ceilings on the two caps (engine/fdbudget.py FdBudget, set at start)
    fd_cap_in = fd_cap_out = UNLIMITED

    def tcp_admit(self, conn) -> bool:
        ip = conn.peer[0]
        n = self.tcp_per_source.get(ip, 0)
        if self.tcp_inbound >= min(self.s.max_tcp_connections, self.fd_cap_in) or n >= self.s.max_tcp_per_source:
            self.stats["tcp_refused"] += 1
            return False
        self.tcp_per_source[ip] = n + 1
        self.tcp_inbound += 1
        conn.counted = True
        return True

    def tcp_release(self, conn):
        ip = conn.peer[0]
        n = self.tcp_per_source.get(ip, 1) - 1
        if n <= 0:
            self.tcp_per_source.pop(ip, None)
        else:
            self.tcp_per_source[ip] = n
        self.tcp_inbound -= 1
        conn.counted = False

    # ------------------------------------------------------------ outbound connections
    def tcp_out_reserve(self, host: str) -> bool:
        """A place for a connect about to start towards `host` (it holds it until it ends: tcp_out_release;
        its connection, once made, holds one of its own: tcp_out_opened). At a cap the least recently used
        outbound connection (of `host`, else of all) is closed if idle; False: refused (counted)."""
        n = self.tcp_out_hosts.get(host, 0)
        if n >= self.s.max_tcp_out_per_host:
            if not self._tcp_out_evict(self.tcp_out_by_host.get(host)) \
                    or self.tcp_out_hosts.get(host, 0) >= self.s.max_tcp_out_per_host:
                self.stats["tcp_out_refused"] += 1
                return False
        cap = min(self.s.max_tcp_out_connections, self.fd_cap_out)
        if self.tcp_outbound >= cap:
            if not self._tcp_out_evict(self.tcp_out_lru) or self.tcp_outbound >= cap:
                self.stats["tcp_out_refused"] += 1
                return False
        self.tcp_outbound += 1
        self.tcp_out_hosts[host] = self.tcp_out_hosts.get(host, 0) + 1
        return True

    def tcp_out_release(self, host: str) -> None:
        n = self.tcp_out_hosts.get(host, 1) - 1
        if n <= 0:
            self.tcp_out_hosts.pop(host, None)
        else:
            self.tcp_out_hosts[host] = n
        self.tcp_outbound -= 1

    def tcp_out_opened(self, conn) -> None:
        """An outbound connection is made: it holds a place (besides its connect's, until that ends) and is
        the most recently used."""
        host = conn.key[0]
        self.tcp_outbound += 1
        self.tcp_out_hosts[host] = self.tcp_out_hosts.get(host, 0) + 1
        conn.out_counted = True
        conn.last_used = time.monotonic()
        self.tcp_out_lru[conn] = None
        q = self.tcp_out_by_host.get(host)
        if q is None:
            q = self.tcp_out_by_host[host] = OrderedDict()
        q[conn] = None

    def tcp_out_closed(self, conn) -> None:
        """An outbound connection lost, or closed to make room: its place is free (once)."""
        if not conn.out_counted:
            return
        conn.out_counted = False
        host = conn.key[0]
        self.tcp_out_release(host)
        self.tcp_out_lru.pop(conn, None)
        q = self.tcp_out_by_host.get(host)
        if q is not None:
            q.pop(conn, None)
            if not q:
                del self.tcp_out_by_host[host]

    def tcp_out_used(self, conn) -> None:
        """`conn` (outbound) carried a message: the most recently used now. O(1)."""
        conn.last_used = time.monotonic()
        if conn.out_counted:
            self.tcp_out_lru.move_to_end(conn)
            self.tcp_out_by_host[conn.key[0]].move_to_end(conn)

    def _tcp_out_evict(self, lru) -> bool:
        """Close the least recently used connection of `lru` if it is idle (TCP_OUT_IDLE); True if one was."""
        if not lru:
            return False
        conn = next(iter(lru))
        if time.monotonic() - conn.last_used < TCP_OUT_IDLE:
            return False                    # the least recently used is in use: so is every other
        self.stats["tcp_out_evicted"] += 1
        log.info("closing idle TCP connection to %s:%s for a new one (max_tcp_out_connections, "
                 "max_tcp_out_per_host)", conn.key[0], conn.key[1])
        self.tcp_out_closed(conn)           # its place is free now, not when the loop gets to its connection_lost
        if self.tcp_conns.get(conn.key) is conn:
            del self.tcp_conns[conn.key]
        conn.abort()
        return True

    async def _sweep(self):
        while True:
            await asyncio.sleep(min(1.0, self.s.tcp_incomplete_timeout / 2, self.s.tcp_idle_timeout / 2))
            self.sweep_tcp(time.monotonic())
            self.count_udp_drops()

    def count_udp_drops(self):
        """Datagrams the kernel dropped since the last look (receive buffer full: overload)."""
        if isinstance(self.udp, UdpEndpoint):
            drops = self.udp.kernel_drops()
            if drops is not None and drops > self.udp.drops_seen:
                self.stats["overload_dropped"] += drops - self.udp.drops_seen
                self.udp.drops_seen = drops

    def sweep_tcp(self, now: float):
        for c in list(self.tcp_conns.values()):
            why = c.expired(now)
            if why:
                self.stats["tcp_write_stalled" if why is WRITE_STALLED else "tcp_timed_out"] += 1
                log.info("closing TCP connection with %s:%s: %s", c.peer[0], c.peer[1], why)
                c.abort()
