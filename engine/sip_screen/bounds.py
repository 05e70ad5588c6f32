"""What one peer may cost the SIP screen's transports: inbound TCP connections capped in total and per
source address (`max_tcp_connections`, `max_tcp_per_source`), a sweeper that closes connections idle,
holding an unfinished message or leaving our writes unread too long (transport.py TcpConnection.expired),
and the UDP datagrams the kernel dropped for a full receive buffer, counted as `overload_dropped`."""
from __future__ import annotations

import asyncio
import logging
import time

from .transport import WRITE_STALLED, UdpEndpoint

log = logging.getLogger("telfilter.sip")


class TransportBounds:
    """Mixin of SipScreen (its `s`, `stats`, `udp`, `tcp_conns`, `tcp_inbound`, `tcp_per_source`)."""

    def tcp_admit(self, conn) -> bool:
        ip = conn.peer[0]
        n = self.tcp_per_source.get(ip, 0)
        if self.tcp_inbound >= self.s.max_tcp_connections or n >= self.s.max_tcp_per_source:
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
