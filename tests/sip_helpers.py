"""An in-process SIP screen with a fake UDP socket (no network): what it sends is kept in
`out`, so a test or a fuzz run can feed bytes and see every answer and forward."""
from __future__ import annotations

import zlib

from engine.sip_screen.server import BRANCH_PREFIX, TRANSPORTS, SipScreen, SipSettings

UAC, UAS = ("127.0.0.1", 5080), ("127.0.0.1", 5070)
AD_CALLER = "02439998888"       # Shop ABC's QC sender in ad_pipe's registry: 08:00-17:00, one call per callee a day


def ad_pipe(data_dir, dnc_v=()):
    """A pipeline (no model, nothing persisted) whose registry holds AD_CALLER as an advertiser's number, and the
    numbers `dnc_v` on the DNC list for calls."""
    from engine.app import build
    from engine.lists import ListStore
    ListStore(data_dir).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\n"
                                              + AD_CALLER.encode() + b",Shop ABC,QC,,,\n")
    if dnc_v:
        ListStore(data_dir).import_csv("dnc", b"number,channel\n" + b"".join(n.encode() + b",V\n" for n in dnc_v),
                                       "dnc.csv")
    return build(data_dir=data_dir, with_model=False, persist=False)


class CallLines:
    """A verdict log that keeps the call lines written (write_call's arguments)."""

    def __init__(self):
        self.calls = []

    def write_call(self, *a):
        self.calls.append(a)


def sent(scr) -> list:
    """What the screen sent since the last look, parsed, with where to; then forgotten."""
    from engine.sip_screen.codec import parse_datagram
    out = [(parse_datagram(d), a) for d, a in scr.udp.out]
    scr.udp.out.clear()
    return out


class FakeUdp:
    def __init__(self):
        self.out = []
        self.behind = 0.0               # what behind_since() says (transport.UdpEndpoint: overload)

    def behind_since(self):
        return self.behind

    def sendto(self, data, addr):
        self.out.append((data, addr))


def offline_screen(pipeline, verdict_log=None, **settings) -> SipScreen:
    """A screen whose sends (UDP and TCP alike) land in `scr.udp.out` as (bytes, address);
    `scr.sent_transports` says which transport each one would have used."""
    s = SipSettings(listen="127.0.0.1:5060", next_hop="127.0.0.1:5070", allow_networks=["127.0.0.0/8"], **settings)
    scr = SipScreen(pipeline, s, verdict_log)
    scr.host, scr.port = "127.0.0.1", 5060
    scr.me = {("127.0.0.1", 5060)}
    scr.via_prefixes = tuple(f"SIP/2.0/{t} 127.0.0.1:5060;branch={BRANCH_PREFIX}".encode() for t in TRANSPORTS)
    scr.udp = FakeUdp()
    scr.sent_transports = []
    real_send = scr._send

    def send(data, dest, transport="UDP", on_fail=None):
        if transport == "TCP" and scr._permitted(scr._resolve(dest[0])):
            scr.sent_transports.append("TCP")
            return scr.udp.sendto(data, dest)
        n = len(scr.udp.out)
        real_send(data, dest, transport, on_fail)
        if len(scr.udp.out) > n:
            scr.sent_transports.append("UDP")
    scr._send = send
    return scr


def invite(caller="0901234567", callee="0912345678", call_id="c1@127.0.0.1", via_port=5080, extra=(),
           vias=(), max_forwards="70", cseq="1 INVITE", content_length=None, body=b"") -> bytes:
    """An INVITE as bytes; `extra` header lines and `vias` (more Via values) are added as given."""
    call_id = call_id if isinstance(call_id, bytes) else call_id.encode()
    lines = [b"INVITE sip:%s@127.0.0.1 SIP/2.0" % callee.encode(),
             b"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%08x;rport" % (via_port, zlib.crc32(call_id))]
    lines += [b"Via: " + (v if isinstance(v, bytes) else v.encode()) for v in vias]
    lines += [b"Max-Forwards: " + (max_forwards if isinstance(max_forwards, bytes) else max_forwards.encode()),
              b'From: "Caller" <sip:' + caller.encode() + b"@127.0.0.1>;tag=abc",
              b"To: <sip:" + callee.encode() + b"@127.0.0.1>",
              b"Call-ID: " + call_id,
              b"CSeq: " + (cseq if isinstance(cseq, bytes) else cseq.encode()),
              b"Contact: <sip:" + caller.encode() + b"@127.0.0.1:5080>"]
    lines += [x if isinstance(x, bytes) else x.encode() for x in extra]
    cl = content_length if content_length is not None else str(len(body)).encode()
    lines.append(b"Content-Length: " + (cl if isinstance(cl, bytes) else cl.encode()))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
