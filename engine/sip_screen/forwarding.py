"""Where and how the SIP screen sends: forwarding with our Via, responses back along the Vias
(RFC 3261 §16.7, §18.2.2, RFC 3581), our own answers, and the failures answered 503.

Theory of operation: every send goes through `_send()`, which refuses destinations outside
the permitted networks (checked on integer ranges, cached per address) and calls `on_fail`
when the message could not leave: not permitted, a UDP error, or a TCP connection refused or
timed out (asynchronously, from `_tcp_send`). For a request, `on_fail` answers the sender 503
with our Via taken off again, so the answer goes to the hop before us. A request over 1300
bytes bound for UDP tries TCP first (§18.1.1); a hop that refuses TCP gets UDP, and large
requests go to it over UDP directly for UDP_ONLY_MEMORY seconds.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from .codec import SipMessage, SipParseError, make_response, parse_via
from .settings import BRANCH_PREFIX, TRANSPORTS
from .transport import TcpConnection

log = logging.getLogger("telfilter.sip")
UDP_MAX = 1300                  # RFC 3261 §18.1.1: larger requests go over a congestion-controlled transport
UDP_ONLY_MEMORY = 300.0         # seconds a hop that refused TCP is sent large requests over UDP directly
FINALS_SEEN = 65536             # INVITE transactions remembered so a retransmitted final response counts once


class Forwarding:
    """Mixed into SipScreen: everything that leaves the screen."""

    def _warn(self, kind, fmt, *args):
        """A warning at most once a second per kind: a peer sending garbage must not flood the log."""
        now = time.monotonic()
        last, suppressed = self.warned.get(kind, (0.0, 0))
        if now - last < 1.0:
            self.warned[kind] = (last, suppressed + 1)
            return
        if suppressed:
            fmt, args = fmt + " (and %d more like it in the last second)", args + (suppressed,)
        log.warning(fmt, *args)
        self.warned[kind] = (now, 0)

    def _forward(self, msg, dest, branch, back):
        """Send with our Via on top; `back` = (transport, source, connection) the request came by."""
        host, port, out = dest
        data = self._with_via(msg, out, branch)
        if msg.method == "ACK":                         # never answered: nothing to do on failure
            return self._send(data, (host, port), out)
        if out == "UDP" and len(data) > UDP_MAX and self.udp_only.get((host, port), 0) < time.monotonic():
            # §18.1.1: TCP first; UDP if the TCP attempt fails (and for a while after, for that hop)
            def refused(why):
                if len(self.udp_only) >= 4096:
                    self.udp_only.clear()
                self.udp_only[(host, port)] = time.monotonic() + UDP_ONLY_MEMORY
                self._send(self._with_via(msg, "UDP", branch), (host, port), "UDP",
                           on_fail=lambda w: self._forward_failed(msg, back, w))
            return self._send(self._with_via(msg, "TCP", branch), (host, port), "TCP", on_fail=refused)
        self._send(data, (host, port), out, on_fail=lambda why: self._forward_failed(msg, back, why))

    def _forward_failed(self, msg, back, why):
        if msg.our_via:
            msg.pop_first_value("Via")                  # ours: the 503 goes to the hop before us
            msg.our_via = False
        self._fail(msg, *back, why)

    def _with_via(self, msg, transport, branch) -> bytes:
        if msg.our_via:
            msg.pop_first_value("Via")
        msg.insert_before_first("Via", f"SIP/2.0/{transport} {self.host}:{self.port};branch={branch};rport")
        msg.our_via = True
        return msg.to_bytes()

    # ------------------------------------------------------------ responses
    def _response(self, msg: SipMessage):
        vias = msg.values("via")
        if not vias:
            return
        top = parse_via(vias[0])
        if not top.params.get("branch", "").startswith(BRANCH_PREFIX) or (top.host, top.port or 5060) not in self.me:
            self.stats["dropped"] += 1
            return                                      # §16.7 step 3 / §16.11: not ours
        msg.pop_first_value("Via")
        if len(vias) < 2:
            return                                      # it was meant for us
        self._answered(msg.status, msg.get("cseq") or "", msg.get("call-id") or "")
        self._final_of(msg, msg.status)
        nxt = parse_via(vias[1])
        self._send_response(msg.to_bytes(), nxt)

    def _relay(self, r):
        if not r:
            self.stats["dropped"] += 1
            return
        data, (host, port, transport), invite_final = r
        if invite_final:
            self._fast_final(data[8:11].decode("ascii"), invite_final)
        self._send(data, (host, port), transport)

    def _fast_final(self, code: str, invite_final: bytes):
        """A final response to an INVITE relayed by the fast path (or the C pump): b"Call-ID CSeq-number"."""
        key = invite_final.decode("utf-8", "surrogateescape")
        self._final(code, key)
        if code == "200" and self.answered:
            self._answered(200, "INVITE", key.rpartition(" ")[0])

    def _final(self, code: str, key: str):
        """Count a final response to the INVITE transaction `key` ("Call-ID CSeq-number") once."""
        seen = self.finals_seen
        if key in seen:
            return                                      # a retransmission
        seen[key] = None
        if len(seen) > FINALS_SEEN:
            seen.popitem(last=False)
        self.final_codes[code] = self.final_codes.get(code, 0) + 1

    def _final_of(self, msg, status: int):
        """_final() for a response with `status` in msg's INVITE transaction (msg: request or response)."""
        cseq = msg.get("cseq") or ""
        if status >= 200 and cseq.rstrip().upper().endswith("INVITE"):      # as the fast path reads it
            self._final(str(status), f"{(msg.get('call-id') or '').strip(' ')} {cseq.split(None, 1)[0]}")

    def _answered(self, status, cseq: str, call_id: str):
        if status == 200 and cseq.upper().endswith("INVITE"):
            ent = self.answered.get(call_id)
            if ent is not None and ent[1] is None:
                self.answered[call_id] = (ent[0], self.clock())     # answered: the call starts

    def _send_response(self, data, nxt):
        host = nxt.params.get("received") or nxt.host
        rport = nxt.params.get("rport", "")
        port = int(rport) if rport else (nxt.port or 5060)          # parse_via checked it is a port
        self._send(data, (host, port), nxt.transport if nxt.transport in TRANSPORTS else "UDP")

    def _reply(self, req, resp: SipMessage, transport, src, conn):
        """Send a response we generated: §18.2.2 / RFC 3581, i.e. back where the request came from."""
        data = resp.to_bytes()
        if req.method == "INVITE":
            self._final_of(req, resp.status)
        if transport == "TCP" and conn is not None:
            conn.send(data)
            return
        dest = src
        if req.get("via") is not None:
            try:
                v = parse_via(req.values("via")[0])
                if "rport" not in v.params and not v.params.get("received"):
                    dest = (src[0], v.port or 5060) if v.host == src[0] else src
            except SipParseError:
                pass
        self._send(data, dest, "UDP")

    def _fail(self, msg, transport, src, conn, why):
        self.stats["forward_failed"] += 1
        self._warn("forward", "cannot forward %s from %s:%s: %s", msg.method, src[0], src[1], why)
        if msg.method != "ACK":
            self._reply(msg, make_response(msg, 503, None, self._tag(msg),
                                           [["Warning", f'399 telfilter "{why[:80]}"']]), transport, src, conn)

    # ------------------------------------------------------------ output
    def _permitted(self, host) -> bool:
        ok = self.permit_cache.get(host)
        if ok is None:
            try:
                ip = ipaddress.ip_address(host)
                n, v = int(ip), ip.version
                ok = any(v == ver and lo <= n <= hi for ver, lo, hi in self.ranges)
            except ValueError:
                ok = False
            if len(self.permit_cache) >= 4096:          # bounded: one entry per distinct peer address
                self.permit_cache.clear()
            self.permit_cache[host] = ok
        return ok

    @staticmethod
    def _resolve(host):
        if host == "localhost":
            return "127.0.0.1"
        return host            # no DNS on the hot path: names must be configured as addresses

    def _send(self, data: bytes, dest, transport="UDP", on_fail=None):
        host = self._resolve(dest[0])
        if not self._permitted(host):
            self.stats["not_permitted"] += 1
            self._warn("permit", "not sending to %s:%s: outside the permitted networks", dest[0], dest[1])
            if on_fail:
                on_fail("destination outside the permitted networks")
            return
        if transport == "TCP":
            c = self.tcp_conns.get((host, dest[1]))
            if c is not None and not c.transport.is_closing():
                c.send(data)
                return
            asyncio.get_running_loop().create_task(self._tcp_send(host, dest[1], data, on_fail))
            return
        try:
            self.udp.sendto(data, (host, dest[1]))
        except OSError as e:
            if on_fail:
                on_fail(f"UDP send failed: {e}")

    async def _tcp_send(self, host, port, data, on_fail):
        try:
            _, proto = await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                lambda: TcpConnection(self, (host, port)), host, port), 2.0)
            proto.send(data)
        except (OSError, asyncio.TimeoutError) as e:
            self._warn("tcp", "TCP to %s:%d failed: %s", host, port, e)
            if on_fail:
                try:
                    on_fail(f"TCP connection refused or timed out: {e}"[:80])
                except Exception:
                    log.exception("answering a failed TCP forward")
