"""What one peer may cost the SIP screen's transports: inbound TCP connections from outside accept_networks
closed at accept (`tcp_source_refused`, sources.py), the others capped in total and per
source (`max_tcp_connections`, `max_tcp_per_source`; a source is an IPv4 address or an IPv6 /64, engine/sourcekey.py), outbound ones in total and per destination
host (`max_tcp_out_connections`, `max_tcp_out_per_host`), a sweeper that closes connections idle,
holding an unfinished message or leaving our writes unread too long (tcp.py TcpConnection.expired),
and the UDP datagrams the kernel dropped for a full receive buffer, counted as `overload_dropped`.

Outbound connections (theory of operation): the screen opens one per (host, port) a message must go to
over TCP -- a Route or Request-URI with `;transport=tcp`, a response whose next Via is TCP and whose
connection has closed -- and what names those destinations is the peers' traffic. So they hold a place
each, from the moment their connect starts (a connect in flight holds an fd too, and up to TCP_QUEUE
messages) until the connection is lost. Hosts are keyed as one text per address (forwarding.py
`_canonical`: `[0::1]` and `[::1]` are one host). At a cap the least recently used outbound connections
(of that host, or of all) are closed if they are idle and closing them brings the count under the cap --
idle: nothing sent on it or received from it for TCP_OUT_IDLE seconds, by when every non-INVITE
transaction that used it has ended (64*T1) and a late response comes back on a new connection (RFC 3261
§18.2.2), and no INVITE sent on it is waiting for its final response --, else the new connection is
refused (`tcp_out_refused`; the sender of a request gets 503, a large request falls back to UDP, a
response is dropped) and nothing is closed. An INVITE may ring for minutes with nothing on its
connection after the 180 (§17.2.1: the server transaction stays in Proceeding until the callee answers;
Timer C, §16.8, is over 3 minutes): its 200 comes back on that connection (§18.2.2), so from the INVITE
to its final (any final, by any path, from where it went: responses._final) the connection is in no
eviction order at all. Each INVITE so waiting is remembered by a fixed-size digest of its transaction and
its destination (`tcp_out_invites`, at most INVITES_WAITING, for INVITE_WAIT_MAX seconds: a hop that never
answers holds the connection no longer; the forks of one INVITE an upstream proxy sends through us to
several destinations wait each for its own final, a final from one destination ends that one's wait only)
and counted per destination (`tcp_out_ringing`). All of it is O(1) per message: the connections are kept in order of
last use (an OrderedDict moved to its end on each use), so the least recently used is the first, and
if the k-th is not idle, nothing before it is either -- closing k connections for one (a cap lowered by
a reload) looks at the k-th alone and costs k.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from itertools import islice

from ..listen import addr_text
from ..sourcekey import source_key
from .judgedstore import expire_judged
from .recent import digest
from .sources import SourceFilter
from .tcp import INVITE_WAIT_MAX, WRITE_STALLED  # noqa: F401  (the wait's bound, also tcp.py's)
from .transport import UdpEndpoint

log = logging.getLogger("telfilter.sip")
TCP_OUT_IDLE = 32.0             # seconds unused before an outbound connection may be closed for a new one (64*T1)
FORKS_WAITING = 32             # destinations one INVITE transaction waits at (its forks), the oldest forgotten
INVITES_WAITING = 65_536        # INVITEs over TCP waiting for their final remembered at most (the oldest forgotten)
UNLIMITED = 1 << 30             # no descriptor budget set (a screen not started by serve's caps: tests)


class TransportBounds:
    """Mixin of SipScreen (its `s`, `stats`, `udp`, `tcp_conns`, `tcp_inbound`, `tcp_per_source`)."""

    # the descriptor budget's ceilings on the two caps (engine/fdbudget.py FdBudget, set at start)
    fd_cap_in = fd_cap_out = UNLIMITED
    fd_claimed = False                  # its caps are in the process's fd budget (released at stop)

    def tcp_admit(self, conn) -> bool:
        ip = conn.peer[0]
        if not self.accepts(ip):                        # not a peer (accept_networks): closed at accept, unread
            self._source_refused(ip, counter="tcp_source_refused")
            return False
        src = source_key(ip)                            # an IPv6 peer by its /64 (engine/sourcekey.py)
        n = self.tcp_per_source.get(src, 0)
        if self.tcp_inbound >= min(self.s.max_tcp_connections, self.fd_cap_in) or n >= self.s.max_tcp_per_source:
            self.stats["tcp_refused"] += 1
            return False
        self.tcp_per_source[src] = n + 1
        self.tcp_inbound += 1
        conn.counted = True
        return True

    def tcp_release(self, conn):
        src = source_key(conn.peer[0])
        n = self.tcp_per_source.get(src, 1) - 1
        if n <= 0:
            self.tcp_per_source.pop(src, None)
        else:
            self.tcp_per_source[src] = n
        self.tcp_inbound -= 1
        conn.counted = False

    # ------------------------------------------------------------ outbound connections
    def tcp_out_reserve(self, host: str) -> bool:
        """A place for a connect about to start towards `host` (it holds it until it ends: tcp_out_release;
        its connection, once made, holds one of its own: tcp_out_opened). At a cap the least recently used
        outbound connections (of `host`, then of all) are closed if they are idle and that brings the counts
        under the caps; else none is, and False: refused (counted)."""
        over_host = self.tcp_out_hosts.get(host, 0) - self.s.max_tcp_out_per_host + 1
        over = self.tcp_outbound - min(self.s.max_tcp_out_connections, self.fd_cap_out) + 1
        if over_host > 0 or over > 0:
            over_host = max(over_host, 0)               # to close of `host`'s (they count in all too)
            over = max(over - over_host, 0)             # to close of all besides
            now = time.monotonic()
            if over_host and not self._idle_first(self.tcp_out_by_host.get(host), over_host, now) \
                    or over and not self._idle_first(self.tcp_out_lru, over + over_host, now):
                # (the first over + over_host of all idle: `host`'s closed first are idle too, so `over` idle
                # ones are left in front of the rest)
                self.stats["tcp_out_refused"] += 1
                return False
            for _ in range(over_host):
                self._tcp_out_evict(next(iter(self.tcp_out_by_host[host])))
            for _ in range(over):
                self._tcp_out_evict(next(iter(self.tcp_out_lru)))
        self.tcp_outbound += 1
        self.tcp_out_hosts[host] = self.tcp_out_hosts.get(host, 0) + 1
        return True

    @staticmethod
    def _idle_first(lru, k: int, now: float) -> bool:
        """Whether the `k` least recently used connections of `lru` are idle: the k-th is (they are in order of
        last use)."""
        if not lru or len(lru) < k:
            return False
        conn = next(iter(lru)) if k == 1 else next(islice(lru, k - 1, None))
        return now - conn.last_used >= TCP_OUT_IDLE

    def tcp_out_release(self, host: str) -> None:
        n = self.tcp_out_hosts.get(host, 1) - 1
        if n <= 0:
            self.tcp_out_hosts.pop(host, None)
        else:
            self.tcp_out_hosts[host] = n
        self.tcp_outbound -= 1

    def tcp_out_opened(self, conn) -> None:
        """An outbound connection is made: it holds a place (besides its connect's, until that ends) and is
        the most recently used -- in the eviction order unless an INVITE sent to it waits for its final."""
        host = conn.key[0]
        self.tcp_outbound += 1
        self.tcp_out_hosts[host] = self.tcp_out_hosts.get(host, 0) + 1
        conn.out_counted = True
        if self.tcp_out_ringing.get(conn.key):
            conn.last_used = time.monotonic()
        else:
            self._tcp_out_list(conn)

    def _tcp_out_list(self, conn) -> None:
        """`conn` joins the eviction order as the most recently used."""
        conn.last_used = time.monotonic()
        self.tcp_out_lru[conn] = None
        self.tcp_out_lru.move_to_end(conn)
        q = self.tcp_out_by_host.get(conn.key[0])
        if q is None:
            q = self.tcp_out_by_host[conn.key[0]] = OrderedDict()
        q[conn] = None
        q.move_to_end(conn)

    def _tcp_out_unlist(self, conn) -> None:
        """`conn` leaves the eviction order (closed, or carrying an INVITE that waits for its final)."""
        self.tcp_out_lru.pop(conn, None)
        q = self.tcp_out_by_host.get(conn.key[0])
        if q is not None:
            q.pop(conn, None)
            if not q:
                del self.tcp_out_by_host[conn.key[0]]

    def tcp_out_closed(self, conn) -> None:
        """An outbound connection lost, or closed to make room: its place is free (once)."""
        if not conn.out_counted:
            return
        conn.out_counted = False
        self.tcp_out_release(conn.key[0])
        self._tcp_out_unlist(conn)

    def tcp_out_used(self, conn) -> None:
        """`conn` (outbound) carried a message: the most recently used now. O(1)."""
        conn.last_used = time.monotonic()
        if conn.out_counted:
            try:
                self.tcp_out_lru.move_to_end(conn)
            except KeyError:
                return                      # an INVITE on it waits for its final: in no eviction order
            self.tcp_out_by_host[conn.key[0]].move_to_end(conn)

    def tcp_out_invite(self, tx: str, key) -> None:
        """The INVITE of transaction `tx` ("Call-ID CSeq-number", as responses._final names it) goes over TCP to
        `key` (host as _canonical gives it, port): until its final, or INVITE_WAIT_MAX, the connection to `key`
        is not closed for a new one. A retransmission (same transaction, same destination) is counted once."""
        txs, d = self.tcp_out_invites, digest(tx)
        if (d, key) in txs:
            return
        if len(txs) >= INVITES_WAITING:
            self._tcp_out_done(*next(iter(txs)))
        dests = self.tcp_out_by_tx.get(d)
        if dests is not None and len(dests) >= FORKS_WAITING:     # bounded: a final's scan is O(FORKS_WAITING)
            self._tcp_out_done(d, dests[0])
        txs[(d, key)] = time.monotonic() + INVITE_WAIT_MAX
        dests = self.tcp_out_by_tx.get(d)
        if dests is None:
            self.tcp_out_by_tx[d] = [key]
        else:
            dests.append(key)
        n = self.tcp_out_ringing.get(key, 0)
        self.tcp_out_ringing[key] = n + 1
        if not n:
            conn = self.tcp_conns.get(key)
            if conn is not None and conn.out_counted and conn.key == key:
                self._tcp_out_unlist(conn)

    def tcp_out_final(self, tx: str, src=None) -> None:
        """Transaction `tx` has a final response, relayed from `src` (host, port), or ours (`src` None): the
        wait for it at that destination ends (of the destination whose host `src` is when no port matches: a
        response may come back on another transport; ours: every destination's). Forks waiting elsewhere wait
        on."""
        d = digest(tx)
        dests = self.tcp_out_by_tx.get(d)
        if not dests:
            return
        if src is None:
            for key in list(dests):
                self._tcp_out_done(d, key)
            return
        host, port = self._canonical(src[0]), src[1]
        for key in dests:
            if key == (host, port):
                return self._tcp_out_done(d, key)
        for key in dests:
            if key[0] == host:
                return self._tcp_out_done(d, key)

    def _tcp_out_done(self, d: int, key) -> None:
        """The wait of transaction digest `d` at destination `key` ends: when no other INVITE to that
        destination waits, its connection is in the eviction order again, as the most recently used."""
        if self.tcp_out_invites.pop((d, key), None) is None:
            return
        dests = self.tcp_out_by_tx[d]
        dests.remove(key)                   # (a handful at most: the forks of one INVITE)
        if not dests:
            del self.tcp_out_by_tx[d]
        n = self.tcp_out_ringing[key] - 1
        if n:
            self.tcp_out_ringing[key] = n
            return
        del self.tcp_out_ringing[key]
        conn = self.tcp_conns.get(key)
        if conn is not None and conn.out_counted and conn.key == key:
            self._tcp_out_list(conn)

    def tcp_out_expire(self, now: float) -> None:
        """Forget the INVITEs that waited INVITE_WAIT_MAX for their final (oldest first: the cost is the number)."""
        txs = self.tcp_out_invites
        while txs:
            (d, key), until = next(iter(txs.items()))
            if until > now:
                return
            self._tcp_out_done(d, key)

    def _tcp_out_evict(self, conn) -> None:
        """Close `conn`, an idle outbound connection, for a new one."""
        self.stats["tcp_out_evicted"] += 1
        log.info("closing idle TCP connection to %s for a new one (max_tcp_out_connections, "
                 "max_tcp_out_per_host)", addr_text(*conn.key))
        self.tcp_out_closed(conn)           # its place is free now, not when the loop gets to its connection_lost
        if self.tcp_conns.get(conn.key) is conn:
            del self.tcp_conns[conn.key]
        conn.abort()

    async def _sweep(self):
        while True:
            await asyncio.sleep(min(1.0, self.s.tcp_incomplete_timeout / 2, self.s.tcp_idle_timeout / 2))
            self.sweep_tcp(time.monotonic())
            self.tcp_out_expire(time.monotonic())
            self.count_udp_drops()
            expire_judged(self, time.monotonic())       # (judgedstore.py: rejected INVITEs past Timer B)
            self.message_parts_expire(time.monotonic())     # (msgparts.py: parts waited their timeout)

    def count_udp_drops(self):
        """Datagrams the kernel dropped since the last look (receive buffer full: overload)."""
        if isinstance(self.udp, UdpEndpoint):
            drops = self.udp.kernel_drops()
            if drops is not None and drops > self.udp.drops_seen:
                n = drops - self.udp.drops_seen
                self.stats["overload_dropped"] += n
                self.udp.drops_seen = drops
                # said in the service log at most once a second, with every drop since it last said so: those
                # requests got no answer and no verdict line
                n = self.drops_said.due(time.monotonic(), n)
                if n:
                    log.warning("the kernel dropped %d SIP datagrams (receive buffer full: more offered than the "
                                "screen can judge); their senders got no answer and retransmit", n)

    def sweep_tcp(self, now: float):
        self.tcp_writes.refresh()           # what drained since it was last seen (tcpwrites.py)
        for c in list(self.tcp_conns.values()):
            why = c.expired(now)
            if why:
                self.stats["tcp_write_stalled" if why is WRITE_STALLED else "tcp_timed_out"] += 1
                log.info("closing TCP connection with %s: %s", addr_text(*c.peer[:2]), why)
                c.abort()

    # ------------------------------------------------------------ where SIP is taken from (accept_networks)
    def source_filter(self) -> SourceFilter:
        """sip.toml's accept_networks in force (sources.py), built again when the list is another (a reload)."""
        f = self.sources
        if f.networks is not self.s.accept_networks:
            f = self.sources = SourceFilter(self.s.accept_networks)
        return f

    def accepts(self, host: str) -> bool:
        """Whether SIP is taken from the address `host` at all (accept_networks)."""
        return self.source_filter().accepts(host)

    def _source_refused(self, host: str, n: int = 1, counter: str = "source_refused") -> None:
        """`n` datagrams (or a TCP connection: `counter`) from `host`, outside accept_networks, dropped unread."""
        self.stats[counter] += n
        self.refused_said(host)

    def refused_said(self, host: str) -> None:
        """The service log's line about SIP refused from outside accept_networks, at most once a second (the C pump
        calls it itself, at most once a second, having counted)."""
        st = self.stats
        self._warn("source_refused", "refused SIP from %s: outside accept_networks (so far: source_refused %d, "
                   "tcp_source_refused %d)", host, st["source_refused"], st["tcp_source_refused"])
