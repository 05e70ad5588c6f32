"""Where and how the SIP screen sends: a request forwarded with our Via (RFC 3261 §16.6), the failures answered
503, and `_send`, the one way out of every message, requests and responses alike (what goes back toward the
caller, and which final answers a call, is responses.py's).

Theory of operation: every send goes through `_send()`, which refuses destinations outside
the permitted networks (checked on integer ranges, cached per address) and calls `on_fail`
when the message could not leave: not permitted, a UDP error, or a TCP connection refused or
timed out (asynchronously, from `_tcp_send`). For a request, `on_fail` answers the sender 503
with our Via taken off again, so the answer goes to the hop before us. A request over 1300
bytes bound for UDP tries TCP first (§18.1.1); a hop that refuses TCP gets UDP, and large
requests go to it over UDP directly for UDP_ONLY_MEMORY seconds. Towards a TCP destination
with no connection yet, one connect is under way at a time; what is sent meanwhile waits behind
it (at most TCP_QUEUE messages, WRITE_MAX bytes) and is written, or failed, when the connect ends.
Outbound connections and connects are capped in total and per host (bounds.py), a host being one text
per address (`_canonical`: `[0::1]` is `::1`, `::ffff:10.0.0.1` is `10.0.0.1`; TCP only: a dual-stack UDP
socket needs the mapped form): at a cap, with no idle connection to close for it, a request is answered
503 (a large one tries UDP, its other option), a response is dropped; both counted as `tcp_out_refused`.
An INVITE sent over TCP keeps its connection from being closed for another until its final (`_final`,
bounds.py tcp_out_invite): a call rings for minutes with nothing on the connection. What goes on a
stream always carries Content-Length (§18.3: a UDP message may lack it; a stream cannot be framed
without it). Where an INVITE left for -- address, port and the transport it took, TCP when §18.1.1 chose
it -- is remembered in `invites` under the key its CANCEL and non-2xx ACK share with it (its branch and
Call-ID); those, and its retransmissions, are sent there as they are (`fixed`: no transport chosen
again), so a reload of the next hop or a large INVITE's move to TCP does not split a transaction
between two hops or two transports. One of them waiting behind a TCP connect that fails follows its
INVITE to UDP when the INVITE fell back, in the ICMP watch as the INVITE is (unreachable.py). An INVITE answered
our 503 (_forward_failed) leaves `invites` for `rejected`: its CANCEL is answered 200 here, its ACK absorbed.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from functools import partial

from ..listen import addr_text
from ..servicelog import LogThrottle
from ..verdict import Action
from .codec import make_response
from .recent import dialog_digest, digest
from .responses import _to_tag_of, same_host  # noqa: F401  (re-exported: the old home, tests import them from here)
from .responses import tx_of
from .screening import Decision
from .settings import LOCAL_NAMES
from .tcp import INVITE_WAIT_MAX, WRITE_MAX, TcpConnection
from .unreachable import STALE_SEND_ERRORS

log = logging.getLogger("telfilter.sip")
_local_name = LOCAL_NAMES.get      # (bound once: Python 3.11 reads an imported name's method by the generic getattr)
UDP_MAX = 1300                  # RFC 3261 §18.1.1: larger requests go over a congestion-controlled transport
UDP_ONLY_MEMORY = 300.0         # seconds a hop that refused TCP is sent large requests over UDP directly
TCP_QUEUE = 256                 # messages waiting for one outbound connect (it ends within TCP_CONNECT seconds)
TCP_CONNECT = 2.0               # seconds an outbound TCP connect may take
OUT_CAPPED = "too many outbound TCP connections"        # on_fail's reason at the outbound caps (bounds.py)
# an INVITE transaction whose forward failed: our 503 is its final, given again to its retransmission (by identity)
UNSENT = Decision(Action.DROP, 503, (), (), 0.0)
NOT_SENT = "its forward failed"                         # UNSENT's Warning text


def _in_ranges(keys, ranges) -> bool:
    """Whether an address's (version, int) keys are in `ranges` (_permitted's miss: a generator there made cells)."""
    return any(v == ver and lo <= n <= hi for v, n in keys for ver, lo, hi in ranges)


class Waiting(list):
    """What waits for one outbound connect: (bytes, on_fail) pairs, at most TCP_QUEUE of them and WRITE_MAX
    bytes in all (as an open connection's write buffer: nothing beyond it is queued for one peer)."""
    __slots__ = ("size",)


class Forwarding:
    """Mixed into SipScreen: requests on their way out, and the one send path of everything that leaves."""

    def _warn(self, kind, fmt, *args, level=logging.WARNING):
        """A warning (or a line at `level`) at most once a second per kind: a peer sending garbage must not flood
        the log."""
        if level < logging.WARNING and not log.isEnabledFor(level):
            return
        t = self.warned.get(kind)
        if t is None:
            t = self.warned[kind] = LogThrottle(1.0)
        n = t.due(time.monotonic())
        if not n:
            return
        if n > 1:
            fmt, args = fmt + " (and %d more like it in the last second)", args + (n - 1,)
        log.log(level, fmt, *args)

    def _forward(self, msg, dest, branch, back, key=None, fixed=False, d=None):
        """Send with our Via on top; `back` = (transport, source, connection) the request came by.
        `key`: the ack_key of the INVITE transaction an INVITE, CANCEL or ACK belongs to (an INVITE is
        remembered under it); `fixed`: `dest` is where that INVITE went, transport included; `d`: an INVITE's
        Decision (kept with it, at the time it was judged: judgedstore.py)."""
        host, port, out = dest
        conn = back[2] if back[0] == "TCP" else None
        remember = False                                # an INVITE: where it went is kept under `key`
        if msg.method == "INVITE" and len(host) <= 64:  # (hosts are addresses: <= 64 bounds the entries)
            remember = key is not None
            if self.answered:                           # only the answer from there answers the call
                k = msg.call_key                        # (judged: _screen hashed its Call-ID already)
                if k is None:
                    k = dialog_digest(self.dialog_key, msg.first_values().get("call-id") or "")
                ent = self.answered.get(k)
                if ent is not None and ent[1] is None:     # (not answered: it stays in the tier forgotten first)
                    self.answered.put_low(k, (ent[0], None, ent[2], _local_name(host, host),
                                              *ent[4:5]))
        now = time.monotonic()                          # (one read: the memories below note the same time)
        if msg.method == "INVITE":
            self._invite_sent(msg, fixed, now)          # in flight until its final (draining.py)
        data = self._with_via(msg, out, branch, conn)
        if not fixed and out == "UDP" and len(data) > UDP_MAX and self.udp_only.get((host, port), 0) < now \
                and msg.method != "ACK":
            return self._forward_tcp_first(msg, host, port, branch, back, conn, key if remember else None, fixed, d)
        if remember:
            if fixed or d is None:
                self._went(key, branch, dest, fixed, d)
            else:                                       # (_went's case of a call judged, without its frame)
                self.invites.put(key, (branch, dest, d if d.action else 0), now)
        if conn is not None and msg.method == "INVITE" and conn.key is None:
            # its final goes back on the caller's connection, which is not idle meanwhile (tcp.py _ringing)
            conn.invite_forwarded(digest(tx_of(msg)), time.monotonic() + INVITE_WAIT_MAX)
        tx = self._invite_on_tcp(msg, host, port) if out == "TCP" and msg.method == "INVITE" else None
        # (an ACK: never answered; over UDP, _on_fail's partial made here, without its frame)
        on_fail = None if msg.method == "ACK" else partial(self._forward_failed, msg, back) if tx is None \
            else self._on_fail(msg, back, tx, host, port)
        if fixed and out == "TCP" and key is not None:
            on_fail = self._on_fail_behind(msg, host, port, branch, back, key, on_fail)
        elif out == "UDP" and on_fail is not None:      # (not an ACK)
            self._watch_unreachable(branch, data, msg, back, now)   # an ICMP error about it: 503 (unreachable.py)
        self._send(data, (host, port), out, on_fail=on_fail)

    # (the closures a send may need are made by these, not in _forward: a closure's variables are cells made at
    # every call of the function that holds them, and nearly every forward needs one or none)
    def _went(self, key, branch, dest, fixed, d):
        """An INVITE sent: where it went kept under `key` (`invites`), with its Decision `d` and the time (its copy,
        `fixed`, leaves its entry as it was: the time is when it was judged; judgedstore.py). A Decision to let the
        call through untagged is kept as 0: an entry of atomic values only, which the collector stops tracking (a
        Decision holds an Action: tracked, and every collection walked 65,536 entries more)."""
        if fixed and (ent := self.invites.d.get(key)) is not None and ent[1][1] == dest:
            self.invites.put(key, ent[1], ent[0])
        elif d is None:
            self.invites.put(key, (branch, dest))
        else:
            self.invites.put(key, (branch, dest, d if d.action else 0), time.monotonic())

    def _forward_tcp_first(self, msg, host, port, branch, back, conn, key, fixed=False, d=None):
        """§18.1.1: a request over UDP_MAX bytes bound for UDP goes over TCP first; UDP if the TCP attempt fails
        (and for a while after, for that hop). `key`: where an INVITE went is kept under it (None: not kept);
        `fixed`, `d`: as _forward's."""
        tx = self._invite_on_tcp(msg, host, port) if msg.method == "INVITE" else None

        def refused(why):
            if tx is not None:                      # it goes over UDP: no wait on a TCP connection
                self.tcp_out_final(tx, (host, port))
            if why is not OUT_CAPPED:               # the hop refused TCP (not our own cap, of the moment)
                if len(self.udp_only) >= 4096:
                    self.udp_only.clear()
                self.udp_only[(host, port)] = time.monotonic() + UDP_ONLY_MEMORY
            if key is not None:
                self._went(key, branch, (host, port, "UDP"), False, d)
            data = self._with_via(msg, "UDP", branch, conn)
            self._watch_unreachable(branch, data, msg, back)    # an ICMP error about it: 503 (it was left unanswered)
            self._send(data, (host, port), "UDP", on_fail=lambda w: self._forward_failed(msg, back, w))
        if key is not None:
            self._went(key, branch, (host, port, "TCP"), fixed, d)
        return self._send(self._with_via(msg, "TCP", branch, conn), (host, port), "TCP", on_fail=refused)

    def _on_fail(self, msg, back, tx, host, port):
        """A forwarded request's on_fail: answered 503 (_forward_failed); `tx`: an INVITE over TCP, whose wait on
        its connection ends (this destination's; other forks' go on)."""
        if tx is None:                                  # (a partial: no cells made for this call's variables)
            return partial(self._forward_failed, msg, back)
        return partial(self._tcp_forward_failed, msg, back, tx, host, port)

    def _tcp_forward_failed(self, msg, back, tx, host, port, why):
        self.tcp_out_final(tx, (host, port))
        self._forward_failed(msg, back, why)

    def _on_fail_behind(self, msg, host, port, branch, back, key, failed):
        """on_fail for a request sent where its INVITE went over TCP, waiting behind that INVITE's connect: if that
        failed and the INVITE went over UDP, so does this -- in the ICMP watch unless an ACK (`failed` None), as its
        INVITE is (a CANCEL to a hop with nothing listening was left to its sender's Timer F, 32 s)."""
        def on_fail(why):
            went = self.invites.get(key)
            if went is not None and went[1][2] == "UDP":
                data = self._with_via(msg, "UDP", branch, back[2] if back[0] == "TCP" else None)
                if failed is not None:
                    self._watch_unreachable(branch, data, msg, back)    # an ICMP error about it: 503 (unreachable.py)
                return self._send(data, (host, port), "UDP", on_fail=failed)
            if failed:
                failed(why)
        return on_fail

    def _invite_on_tcp(self, msg, host, port) -> str:
        """`msg`, an INVITE, is about to go over TCP to (host, port): its connection is kept until its final
        (bounds.py tcp_out_invite). Before the send: a send that fails ends that wait at once (the caller's
        on_fail, with the transaction returned here)."""
        tx = tx_of(msg)
        self.tcp_out_invite(tx, (self._canonical(host), port))
        return tx

    def _forward_failed(self, msg, back, why):
        if msg.charge is not None:                      # a call counted toward caps that never left
            charge, msg.charge = msg.charge, None
            self._give_back(charge)
        if msg.replay_of is not None:
            # a call tried again on its verdict (after a 401/407, a 3xx, a 5xx) that never left: our 503 asks for a
            # retry as a next hop's does (responses._invite_final), and the next try gets the verdict again -- it was
            # judged anew and refused by the call's own count, a call that never rang using up the advertiser's day
            self.retries.put(*msg.replay_of)
            msg.replay_of = None
        if msg.our_via:
            msg.pop_first_value("Via")                  # ours: the 503 goes to the hop before us
            msg.our_via = False
        if msg.method == "INVITE":                      # its final is our 503: not in flight any more (draining.py)
            self._invite_done(tx_of(msg))
            self._unsent_logged(msg, 503, why)          # judged and let through, never left: its line's follow-up
            if msg.tx is not None:
                # and its transaction's (RFC 3261 §17.2.1): a retransmission (the 503 lost) gets it again, neither
                # forwarded (a call its call_unsent line says never left went out) nor judged again (a second line)
                self.transactions.put(msg.tx, UNSENT, time.monotonic())
            self._unsent_final(msg)
        elif msg.method == "CANCEL" and self._answered_here(msg):
            # its INVITE's forward failed too (an ICMP error about each, both sent behind one failed TCP connect):
            # that INVITE has our 503, so its CANCEL is answered here (§9.2), not 503 as if it were still ringing
            return self._reply(msg, make_response(msg, 200, None, self._tag(msg)), *back)
        self._fail(msg, *back, why)

    def _with_via(self, msg, transport, branch, conn=None) -> bytes:
        """msg with our Via on top; `conn`: the TCP connection it came in on, named in our Via
        (`;i=`) so its responses come back on it (§18.2.2)."""
        if msg.our_via:
            msg.pop_first_value("Via")
        h = self.host                                   # (host_ref's and, over UDP, _wire's answers without frames)
        via = f"SIP/2.0/{transport} {f'[{h}]' if ':' in h else h}:{self.port};branch={branch};rport"
        if conn is not None:
            via += f";i={conn.id:x}"
        msg.insert_before_first("Via", via)
        msg.our_via = True
        return msg.to_bytes() if transport == "UDP" else self._wire(msg, transport)

    @staticmethod
    def _wire(msg, transport) -> bytes:
        """msg as bytes for `transport`: on a stream, Content-Length is always there and exact
        (RFC 3261 §18.3, §20.14), even when the message came over UDP without one."""
        if transport != "UDP":
            msg.set("Content-Length", str(len(msg.body)))
        return msg.to_bytes()

    def _fail(self, msg, transport, src, conn, why):
        self.stats["forward_failed"] += 1
        self._warn("forward", "cannot forward %s from %s: %s", msg.method, addr_text(*src[:2]), why)
        if msg.method != "ACK":
            self._reply(msg, make_response(msg, 503, None, self._tag(msg),
                                           [["Warning", f'399 telfilter "{why[:80]}"']]), transport, src, conn)

    # ------------------------------------------------------------ output
    def _permitted(self, host) -> bool:
        ok = self.permit_cache.get(host)
        if ok is None:
            try:
                ip = ipaddress.ip_address(host)
                keys = [(ip.version, int(ip))]
                if ip.version == 6 and ip.ipv4_mapped is not None:
                    # a dual-stack ([::]) socket's IPv4 peer (a caller's `received`): the IPv4 address it is, in
                    # allow_networks' IPv4 networks (RFC 4291 §2.5.5.2; its responses were dropped, not_permitted)
                    keys.append((4, int(ip.ipv4_mapped)))
                ok = _in_ranges(keys, self.ranges)
            except ValueError:
                ok = False
            if len(self.permit_cache) >= 4096:          # bounded: one entry per distinct peer address
                self.permit_cache.clear()
            self.permit_cache[host] = ok
        return ok

    @staticmethod
    def _resolve(host):
        return _local_name(host, host)      # no DNS on the hot path: names must be configured as addresses

    def _canonical(self, host: str) -> str:
        """`host` as one text per address, the key of TCP connections and of the outbound caps (bounds.py): an
        IPv6 address compressed (`0:0::1`, `0000::1` -> `::1`), an IPv4-mapped one as the IPv4 address it is
        (a TCP connect to it takes its own socket, of either family), `localhost` as 127.0.0.1; a name as it
        is (outside every permitted network). Cached, bounded like permit_cache."""
        h = self.canonical.get(host)
        if h is None:
            try:
                ip = ipaddress.ip_address(host)
                h = str(getattr(ip, "ipv4_mapped", None) or ip)
            except ValueError:
                h = self._resolve(host)
            if len(self.canonical) >= 4096:
                self.canonical.clear()
            self.canonical[host] = h
        return h

    def _send(self, data: bytes, dest, transport="UDP", on_fail=None):
        # over TCP one text per address (the connection and cap keys); over UDP the text as given (a dual-stack
        # socket sends to an IPv4-mapped address, not to the IPv4 one)
        host = dest[0]
        host = self._canonical(host) if transport == "TCP" else _local_name(host, host)
        if not (self.permit_cache.get(host) or self._permitted(host)):    # (a peer known permitted: no frame)
            self.stats["not_permitted"] += 1
            self._warn("permit", "not sending to %s: outside the permitted networks", addr_text(*dest[:2]))
            if on_fail:
                on_fail("destination outside the permitted networks")
            return
        if transport == "TCP":
            key = (host, dest[1])
            waiting = self.tcp_connecting.get(key)
            c = self.tcp_conns.get(key)
            if waiting is None and c is not None and c.is_open():
                # (while a connect is pending, even once its connection is made, what waits goes first)
                if c.out_counted:
                    self.tcp_out_used(c)
                if not c.send(data) and on_fail:
                    on_fail("the TCP peer is not reading what we write")
                return
            budget = self.tcp_writes
            if budget.waiting + len(data) > self.s.max_tcp_write_buffered:
                # what waits for connects, all destinations together, is bounded as what is written is (each
                # destination's WRITE_MAX alone let 1,000 connects in flight hold 1 GB): tcpwrites.py
                self.stats["tcp_waiting_refused"] += 1
                self._warn("tcp_waiting", "not queueing for a TCP connect to %s: the messages waiting for "
                           "connects hold max_tcp_write_buffered (%d bytes)", addr_text(host, dest[1]),
                           self.s.max_tcp_write_buffered)
                if on_fail:
                    on_fail("too many bytes waiting for TCP connections")
                return
            if waiting is None:                         # one connect per destination; the rest wait
                # a new outbound connection: within the caps (bounds.py), counted from its connect on
                if not self.tcp_out_reserve(host):
                    self._warn("tcp_out", "not opening a TCP connection to %s: %s (max_tcp_out_connections, "
                               "max_tcp_out_per_host)", addr_text(host, dest[1]), OUT_CAPPED)
                    if on_fail:                         # a request: 503, or UDP for a large one (§18.1.1)
                        on_fail(OUT_CAPPED)
                    return                              # a response: dropped (counted: tcp_out_refused)
                waiting = self.tcp_connecting[key] = Waiting(((data, on_fail),))
                waiting.size = len(data)
                budget.waiting += len(data)
                task = asyncio.get_running_loop().create_task(self._tcp_connect(host, dest[1]))
                self.tcp_connects.add(task)
                task.add_done_callback(self.tcp_connects.discard)
                task.add_done_callback(lambda _t, s=self, h=host: s.tcp_out_release(h))     # the connect's place
                # (self, host, key bound as defaults: as _send's cells they were made at every send)
                # a connect cancelled before its first step (a stop) never reaches its own `finally`: what waited
                # for it goes here, its bytes out of the budget
                task.add_done_callback(lambda t, s=self, k=key: t.cancelled() and s._waiting_done(k))
            elif len(waiting) < TCP_QUEUE and waiting.size + len(data) <= WRITE_MAX:
                waiting.append((data, on_fail))
                waiting.size += len(data)
                budget.waiting += len(data)
            elif on_fail:
                on_fail("too many messages waiting for the TCP connection")
            return
        try:
            self._udp_send(data, (host, dest[1]))
        except OSError as e:
            if on_fail:
                on_fail(f"UDP send failed: {e}")

    def _waiting_done(self, key) -> Waiting | tuple:
        """What waited for the connect to `key`, taken (its bytes out of the budget's `waiting`)."""
        w = self.tcp_connecting.pop(key, None)
        if w is None:
            return ()
        self.tcp_writes.waiting -= w.size
        return w

    def _udp_send(self, data: bytes, addr) -> None:
        """sendto(2) on the screen's UDP socket, made again once when it fails with what may be an earlier
        datagram's ICMP error (unreachable.py: IP_RECVERR reports one to the next call on the socket)."""
        try:
            self.udp.sendto(data, addr)
        except OSError as e:
            if e.errno not in STALE_SEND_ERRORS:
                raise
            self.udp.sendto(data, addr)

    async def _tcp_connect(self, host, port):
        """Open the connection to (host, port) and send what waited for it; the connection is in
        tcp_conns (TcpConnection.connection_made), so it is reused and swept like any other."""
        try:
            _, proto = await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                lambda: TcpConnection(self, (host, port)), host, port), TCP_CONNECT)
        except (OSError, asyncio.TimeoutError) as e:
            self._warn("tcp", "TCP to %s failed: %s", addr_text(host, port), e)
            for _, on_fail in self._waiting_done((host, port)):
                if on_fail:
                    try:
                        on_fail(f"TCP connection refused or timed out: {e}"[:80])
                    except Exception:
                        log.exception("answering a failed TCP forward")
            return
        except BaseException:
            self._waiting_done((host, port))                # cancelled (stop): nothing waits forever
            raise
        for data, on_fail in self._waiting_done((host, port)):
            if not proto.send(data) and on_fail:
                on_fail("the TCP connection closed or is not reading what we write")
