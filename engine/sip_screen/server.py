"""Inline SIP call screening: a stateless proxy (RFC 3261 §16.11) over UDP and TCP.

Theory of operation: every request is parsed and checked (§16.3); initial INVITEs are
judged by the same pipeline as SMS (`Call`: caller from P-Asserted-Identity else From,
callee from the Request-URI user else To). A drop becomes a 603 Decline or 608 Rejected
(RFC 8688) with a Reason header naming the symbols and a Call-Info pointing to the remedy
page; a tag adds a header (default `X-Spam-Score: <score>; symbols=<...>`) and optionally
prefixes the display name; everything else is forwarded: Max-Forwards decremented (0 ->
483), our Via added with a branch computed from the request as §16.11 describes (so a
retransmission gets the same branch and a loop is detectable: 482), the top Route removed
when it is us, next hop = top Route, else the configured next hop, else the Request-URI.
Responses go back by the next Via, to `received`/`rport` (§18.2.2, RFC 3581). ACKs to our
own rejections are absorbed (we put our tag in To). Nothing is ever sent outside the
configured networks.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
import ipaddress
import logging
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..verdict import Action, Call
from .codec import (SipMessage, SipParseError, StreamParser, canon, check_request, make_response, parse_datagram,
                    parse_name_addr, parse_uri, parse_via)

log = logging.getLogger("telfilter.sip")
MAGIC = "z9hG4bK"
BRANCH_PREFIX = MAGIC + "tf"
TAG_PREFIX = "tf"


@dataclass
class SipSettings:
    listen: str = "0.0.0.0:5060"
    advertise: str = ""                     # host[:port] for our Via / Record-Route (default: listen address)
    next_hop: str = ""
    allow_networks: list = field(default_factory=lambda: ["127.0.0.0/8", "::1/128", "10.0.0.0/8",
                                                          "172.16.0.0/12", "192.168.0.0/16"])
    record_route: bool = False
    tag_header: str = "X-Spam-Score"
    display_prefix: str = ""
    remedy_url: str = "https://telfilter.example/remedy"
    default_drop_code: int = 603


def load_sip_settings(config_dir: Path) -> SipSettings:
    s = SipSettings()
    p = Path(config_dir) / "sip.toml"
    if p.exists():
        raw = tomllib.loads(p.read_text(encoding="utf-8")).get("sip", {})
        for k, v in raw.items():
            if not hasattr(s, k):
                raise ValueError(f"{p}: unknown key [sip] {k}")
            setattr(s, k, v)
    return s


def _hostport(s: str, default_port=5060):
    host, sep, port = s.rpartition(":")
    if not sep:
        return s, default_port
    return host.strip("[]"), int(port)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, screen):
        self.screen = screen

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.screen.on_datagram(data, addr)


class _Tcp(asyncio.Protocol):
    def __init__(self, screen, outbound_key=None):
        self.screen, self.parser, self.transport, self.key = screen, StreamParser(), None, outbound_key

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.screen.tcp_conns[self.key or self.peer] = self

    def connection_lost(self, exc):
        self.screen.tcp_conns.pop(self.key or self.peer, None)

    def data_received(self, data):
        self.parser.feed(data)
        while True:
            try:
                msg = self.parser.next()
            except SipParseError as e:
                self.screen.on_parse_error(e, "TCP", self.peer, self)
                self.transport.close()
                return
            if msg is None:
                return
            self.screen.on_message(msg, "TCP", self.peer, self)

    def send(self, data: bytes):
        if self.transport and not self.transport.is_closing():
            self.transport.write(data)


class SipScreen:
    def __init__(self, pipeline, settings: SipSettings, verdict_log=None, clock=None):
        self.pipeline, self.s = pipeline, settings
        self.vlog = verdict_log
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.nets = [ipaddress.ip_network(n, strict=False) for n in settings.allow_networks]
        self.udp = None
        self.tcp_server = None
        self.tcp_conns: dict = {}
        self.answered: "OrderedDict[str, tuple]" = OrderedDict()   # Call-ID -> (caller, answer time)
        self.stats = {"requests": 0, "responses": 0, "screened": 0, "rejected": 0, "tagged": 0, "errors": 0,
                      "dropped": 0, "not_permitted": 0}

    async def start(self):
        loop = asyncio.get_running_loop()
        host, want = _hostport(self.s.listen)
        for attempt in range(20):
            self.udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(host, want))
            port = self.udp.get_extra_info("sockname")[1]
            try:
                self.tcp_server = await loop.create_server(lambda: _Tcp(self), host, port)
                break
            except OSError:
                self.udp.close()
                if want != 0 or attempt == 19:
                    raise              # a fixed port that is taken for TCP is an error to report
                # port 0: the kernel's free UDP port may be busy for TCP; take another
        adv = self.s.advertise or (("127.0.0.1" if host in ("0.0.0.0", "::", "") else host) + f":{port}")
        self.host, self.port = _hostport(adv, port)
        self.me = {(self.host.lower(), self.port)}
        if host not in ("0.0.0.0", "::", ""):
            self.me.add((host.lower(), port))
        log.warning("SIP screen listening on %s:%d (UDP+TCP), next hop %s", host, port, self.s.next_hop or "Request-URI")
        return self

    async def stop(self):
        if self.udp:
            self.udp.close()
        for c in list(self.tcp_conns.values()):
            c.transport.close()
        if self.tcp_server:
            self.tcp_server.close()
            await self.tcp_server.wait_closed()

    # ------------------------------------------------------------ input
    def on_datagram(self, data, addr):
        try:
            msg = parse_datagram(data)
        except SipParseError as e:
            self.on_parse_error(e, "UDP", addr, None)
            return
        self.on_message(msg, "UDP", addr, None)

    def on_parse_error(self, e: SipParseError, transport, src, conn):
        self.stats["errors"] += 1
        m = e.msg
        if e.status is None or m is None or not m.is_request or m.method == "ACK" or not m.get("via"):
            log.info("dropped unparseable message from %s: %s", src, e.reason)
            return
        try:
            resp = make_response(m, e.status, None, to_tag=self._tag(m))
            resp.reason = {400: "Bad Request", 505: "Version Not Supported"}.get(e.status, resp.reason)
            resp.headers.insert(len(resp.headers) - 1, ["Warning", f'399 telfilter "{e.reason[:80]}"'])
            self._reply(m, resp, transport, src, conn)
        except SipParseError:
            log.info("dropped malformed request from %s: %s", src, e.reason)

    def on_message(self, msg: SipMessage, transport, src, conn):
        try:
            if msg.is_request:
                self.stats["requests"] += 1
                self._request(msg, transport, src, conn)
            else:
                self.stats["responses"] += 1
                self._response(msg, src)
        except SipParseError as e:
            e.msg = e.msg or msg
            self.on_parse_error(e, transport, src, conn)
        except Exception:
            log.exception("internal error on SIP message from %s", src)

    # ------------------------------------------------------------ requests
    def _request(self, msg: SipMessage, transport, src, conn):
        if msg.method != "ACK":
            err = check_request(msg)
            if err:
                code, reason, extra = err
                return self._reply(msg, make_response(msg, code, reason, self._tag(msg), extra), transport, src, conn)
        to_tag = parse_name_addr(msg.get("to")).params.get("tag", "") if msg.get("to") else ""
        if msg.method == "BYE":
            ent = self.answered.pop(msg.get("call-id") or "", None)
            if ent is not None and ent[1] is not None:
                now = self.clock()
                self.pipeline.call_ended(ent[0], now, (now - ent[1]).total_seconds())
        if msg.method == "ACK" and to_tag.startswith(TAG_PREFIX):
            return                                          # ACK for a final response we generated
        # RFC 3261 §18.2.1 / RFC 3581: note where the request really came from
        self._stamp_received(msg, src)
        mf = msg.get("max-forwards")
        if mf is None:
            msg.headers.append(["Max-Forwards", "70"])      # §16.6 step 3
        elif int(mf) == 0:
            if msg.method == "ACK":
                return
            return self._reply(msg, make_response(msg, 483, None, self._tag(msg)), transport, src, conn)
        else:
            msg.set("Max-Forwards", str(int(mf) - 1))
        branch = self._branch(msg)
        # §16.3 step 4: a Via of ours whose branch is what we would compute for the request as
        # it was when we forwarded it (the Via below ours on top) means the request looped
        vias = msg.values("via")
        for i, v in enumerate(vias):
            via = parse_via(v)
            if (via.host, via.port or 5060) in self.me and via.params.get("branch", "").startswith(BRANCH_PREFIX) \
                    and via.params["branch"] == self._branch(msg, vias[i + 1] if i + 1 < len(vias) else ""):
                return self._reply(msg, make_response(msg, 482, None, self._tag(msg)), transport, src, conn)
        # Route processing (§16.4 and §16.6 step 6)
        routes = msg.values("route")
        if routes:
            u = parse_uri(parse_name_addr(routes[0]).uri)
            if (u.host, u.port or 5060) in self.me:
                msg.pop_first_value("Route")
                routes = routes[1:]
        if routes:
            u = parse_uri(parse_name_addr(routes[0]).uri)
            dest = (u.host, u.port or 5060)
        elif self.s.next_hop:
            dest = _hostport(self.s.next_hop)
        else:
            u = parse_uri(msg.uri)
            dest = (u.host, u.port or 5060)
        if msg.method == "INVITE" and not to_tag:
            v = self._screen(msg, src)
            if v is not None and v.action is Action.DROP:
                return self._reject(msg, v, transport, src, conn)
            if v is not None and v.action is Action.TAG:
                self._tag_request(msg, v)
        if self.s.record_route and msg.method == "INVITE" and not to_tag:
            msg.insert_before_first("Record-Route", f"<sip:{self.host}:{self.port};transport={transport.lower()};lr>")
        msg.insert_before_first("Via", f"SIP/2.0/{transport} {self.host}:{self.port};branch={branch};rport")
        self._send(msg.to_bytes(), dest, transport)

    def _stamp_received(self, msg, src):
        for h in msg.headers:
            if canon(h[0]) == "via":
                first, *rest = _split_top(h[1])
                via = parse_via(first)
                add = ""
                if via.host != src[0].lower() and "received" not in via.params:
                    add += f";received={src[0]}"
                if "rport" in via.params and not via.params["rport"]:
                    first = first.replace(";rport", f";rport={src[1]}", 1)
                h[1] = ", ".join([first + add] + rest)
                return

    def _branch(self, msg, top: str | None = None) -> str:
        # §16.11: a function of the request's identifying fields, so retransmissions (and
        # the CANCEL / non-2xx ACK of an INVITE) get the same branch; CSeq method excluded
        if top is None:
            top = msg.values("via")[0] if msg.values("via") else ""
        top_branch = parse_via(top).params.get("branch", top) if top else ""
        to = msg.get("to") or ""
        frm = msg.get("from") or ""
        ft = parse_name_addr(frm).params.get("tag", "") if frm else ""
        tt = parse_name_addr(to).params.get("tag", "") if to else ""
        cseq = (msg.get("cseq") or "").split()[0] if msg.get("cseq") else ""
        uri = msg.uri
        key = "|".join((top_branch, uri, msg.get("call-id") or "", cseq, ft, tt, ",".join(msg.values("proxy-require"))))
        return BRANCH_PREFIX + hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=10).hexdigest()

    def _tag(self, msg) -> str:
        key = (msg.get("call-id") or "") + "|" + ((msg.get("from") or ""))
        return TAG_PREFIX + hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()

    # ------------------------------------------------------------ screening
    def _screen(self, msg, src):
        def user_of(v):
            try:
                na = parse_name_addr(v)
                u = parse_uri(na.uri)
                return u.user
            except SipParseError:
                return ""
        pai = msg.values("p-asserted-identity")
        caller = user_of(pai[0]) if pai else ""
        if not caller:
            caller = user_of(msg.get("from") or "")
        try:
            callee = parse_uri(msg.uri).user
        except SipParseError:
            callee = ""
        if not callee:
            callee = user_of(msg.get("to") or "")
        call = Call(caller=caller, callee=callee, time=self.clock(), ingress=f"{src[0]}:{src[1]}")
        self.answered[msg.get("call-id") or ""] = (caller, None)
        while len(self.answered) > 200_000:
            self.answered.popitem(last=False)
        t0 = time.perf_counter()
        v = self.pipeline.judge(call)
        us = (time.perf_counter() - t0) * 1e6
        self.stats["screened"] += 1
        if self.vlog is not None:
            self.vlog.write({"ts": call.time.isoformat(), "kind": "call", "call_id": msg.get("call-id"),
                             "caller": caller, "callee": callee, "ingress": call.ingress, "action": str(v.action),
                             "score": round(v.score, 4), "hits": [h.to_json() for h in v.hits], "judge_us": round(us, 1)})
        return v

    def _reject(self, msg, v, transport, src, conn):
        self.stats["rejected"] += 1
        code = v.deciding_hit.sip_code if v.deciding_hit and v.deciding_hit.sip_code else self.s.default_drop_code
        syms = [h.symbol for h in v.hits if h.action is Action.DROP] or v.symbols
        extra = [["Reason", f'SIP ;cause={code} ;text="{" ".join(syms)}"'],
                 ["Call-Info", f"<{self.s.remedy_url}>;purpose=info"]]
        self._reply(msg, make_response(msg, code, None, self._tag(msg), extra), transport, src, conn)

    def _tag_request(self, msg, v):
        self.stats["tagged"] += 1
        if self.s.tag_header:
            msg.headers.append([self.s.tag_header, f"{v.score:g}; symbols={','.join(v.symbols)}"])
        if self.s.display_prefix:
            for h in msg.headers:
                if canon(h[0]) == "from":
                    na = parse_name_addr(h[1])
                    disp = na.display.strip('"')
                    tail = h[1][h[1].index("<"):] if "<" in h[1] else f"<{na.uri}>" + "".join(
                        f";{k}={v}" if v else f";{k}" for k, v in na.params.items())
                    h[1] = f'"{self.s.display_prefix}{disp}" {tail}'
                    break

    # ------------------------------------------------------------ responses
    def _response(self, msg: SipMessage, src):
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
        if msg.status == 200 and (msg.get("cseq") or "").upper().endswith("INVITE"):
            ent = self.answered.get(msg.get("call-id") or "")
            if ent is not None and ent[1] is None:
                self.answered[msg.get("call-id")] = (ent[0], self.clock())     # answered: the call starts
        nxt = parse_via(vias[1])
        host = nxt.params.get("received") or nxt.host
        port = int(nxt.params["rport"]) if nxt.params.get("rport", "").isdigit() else (nxt.port or 5060)
        self._send(msg.to_bytes(), (host, port), nxt.transport)

    def _reply(self, req, resp: SipMessage, transport, src, conn):
        """Send a response we generated: §18.2.2 / RFC 3581, i.e. back where the request came from."""
        data = resp.to_bytes()
        if transport == "TCP" and conn is not None:
            conn.send(data)
            return
        vias = req.values("via")
        dest = src
        if vias:
            try:
                v = parse_via(vias[0])
                if "rport" not in v.params and not v.params.get("received"):
                    dest = (src[0], v.port or 5060) if v.host == src[0] else src
            except SipParseError:
                pass
        self._send(data, dest, "UDP")

    # ------------------------------------------------------------ output
    def _permitted(self, host) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in n for n in self.nets if n.version == ip.version)

    def _resolve(self, host):
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
        if host == "localhost":
            return "127.0.0.1"
        return None            # no DNS on the hot path: names must be configured as addresses

    def _send(self, data: bytes, dest, transport="UDP"):
        host = self._resolve(dest[0])
        if host is None or not self._permitted(host):
            self.stats["not_permitted"] += 1
            log.warning("not sending to %s:%s: outside the permitted networks", dest[0], dest[1])
            return
        if transport.upper() == "TCP":
            c = self.tcp_conns.get((host, dest[1]))
            if c is not None:
                c.send(data)
                return
            asyncio.get_running_loop().create_task(self._tcp_send(host, dest[1], data))
            return
        self.udp.sendto(data, (host, dest[1]))

    async def _tcp_send(self, host, port, data):
        try:
            _, proto = await asyncio.get_running_loop().create_connection(
                lambda: _Tcp(self, (host, port)), host, port)
            proto.send(data)
        except OSError as e:
            log.warning("TCP to %s:%d failed: %s", host, port, e)


def _split_top(value):
    from .codec import split_list
    return split_list(value)


async def start_sip(pipeline, args, vlog):
    s = load_sip_settings(pipeline.settings.config_dir)
    if getattr(args, "sip_listen", None):
        s.listen = args.sip_listen
    if getattr(args, "sip_next_hop", None):
        s.next_hop = args.sip_next_hop
    if getattr(args, "sip_allow_networks", None):
        s.allow_networks = [n.strip() for n in args.sip_allow_networks.split(",") if n.strip()]
    screen = SipScreen(pipeline, s, vlog)
    await screen.start()
    return screen
