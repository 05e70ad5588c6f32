"""The SIP screen over IPv6, on [::1] (nothing leaves the machine): sipp and Kamailio on either side, UDP and
TCP, record-routing. Found by a probe: the screen wrote its own address unbracketed (`Via: SIP/2.0/UDP
::1:5060`, `Record-Route: <sip:::1:5060;lr>`), which RFC 3261 §25.1 does not allow (an IPv6 host is an
IPv6reference, `[::1]`) and Kamailio refuses ("bad ipv6 reference"): no call passed an IPv6 Kamailio."""
import shutil
import socket
import subprocess

import pytest

from engine.app import build
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.grammar import parse_via
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings

from .conftest import CONFIG
from .test_kamailio_interop import (ALLOWED, KAMAILIO, RR_CFG, SC, SIPP, STATELESS_CFG, Kamailio, sipp_errors,
                                   uas_done)

pytestmark = pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")


def free_port6(kind=socket.SOCK_DGRAM) -> int:
    """A port free on ::1 for UDP and TCP (the screen and sipp listen on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET6, kind) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM) as t:
                t.bind(("::1", port))
            return port
        except OSError:
            continue
    raise AssertionError("no free port on ::1")


def screen6(tmp, next_hop, record_route=False, transport="udp"):
    """A screen on [::1]:0 forwarding new calls to [::1]:next_hop."""
    cfg = tmp / "config"
    shutil.copytree(CONFIG, cfg)
    return SipHarness(build(cfg, tmp / "data"), SipSettings(
        listen="[::1]:0", next_hop=f"[::1]:{next_hop};transport={transport}", allow_networks=["::1/128"],
        record_route=record_route)).start()


class Kamailio6(Kamailio):
    """Kamailio on [::1]:port, forwarding to [::1]:to (the interop test's configs, written for IPv6)."""

    def _free_port(self) -> int:
        return free_port6()

    def _config(self, text: str) -> str:
        return (text.replace("udp:127.0.0.1:", "udp:[::1]:").replace('forward("127.0.0.1"', 'forward("[::1]"')
                .replace("sip:127.0.0.1:", "sip:[::1]:"))

    def _bound(self) -> bool:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.bind(("::1", self.port))
        except OSError:
            return True                                 # bound: Kamailio listens
        return False


def sipp6(tmp, entry, uas_port, uac_sf, n, uas_sf="uas.xml"):
    """n calls over UDP from a sipp UAC on ::1 sent to [::1]:entry, addressed to the sipp UAS at [::1]:uas_port
    (TCP is tested below with sockets: sipp's -t t1 with -rsa hangs on IPv4 as well)."""
    common = ["-i", "::1", "-ci", "::1", "-m", str(n), "-timeout", "30s", "-timeout_error", "-nostdin", "-trace_err"]
    uas = subprocess.Popen([SIPP, "-sf", str(SC / uas_sf), "-p", str(uas_port), *common,
                            "-error_file", str(tmp / "uas_err.log")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp)
    try:
        uac = subprocess.run([SIPP, f"[::1]:{uas_port}", "-sf", str(SC / uac_sf), "-p", str(free_port6()),
                              "-rsa", f"[::1]:{entry}", "-r", "5", "-s", "0912345678", "-key", "caller", ALLOWED,
                              *common, "-error_file", str(tmp / "uac_err.log")],
                             capture_output=True, text=True, cwd=tmp, timeout=90)
    finally:
        uas_done(uas, 35)
    return uac.returncode, uas.returncode, sipp_errors(tmp, uac)


needs_sipp = pytest.mark.skipif(SIPP is None, reason="sipp not installed")
needs_kamailio = pytest.mark.skipif(KAMAILIO is None or SIPP is None, reason="kamailio or sipp not installed")


@needs_sipp
def test_sipp_calls_through_the_screen_on_ipv6(tmp_path):
    uas_port = free_port6()
    h = screen6(tmp_path, uas_port)
    handed = []                          # what the C pump (when built) left to Python: only the INVITEs
    real = h.screen.on_datagram
    h.screen.on_datagram = lambda d, a: (handed.append(d.split(b" ", 1)[0]), real(d, a))
    try:
        uac, uas, err = sipp6(tmp_path, h.port, uas_port, "uac_call.xml", n=3)
        assert uac == 0 and uas == 0, err
        assert h.screen.stats["screened"] == 3
        if h.screen.udp.pump is not None:       # it sends on the AF_INET6 socket itself (before: every datagram here)
            assert set(handed) == {b"INVITE"} and h.screen.stats["fast_path"] >= 15
    finally:
        h.stop()


@needs_kamailio
@pytest.mark.parametrize("rr", [False, True], ids=["stateless", "record-routing"])
def test_kamailio_behind_the_screen_on_ipv6(tmp_path, rr):
    """sipp UAC -> screen -> Kamailio -> sipp UAS, all on [::1]; record-routing: Kamailio tm+rr follows the
    screen's Record-Route, and the callee's BYE comes back through both (before: every INVITE refused by
    Kamailio, the calls timed out)."""
    uas_port = free_port6()
    k = Kamailio6(tmp_path, uas_port, RR_CFG if rr else STATELESS_CFG)
    try:
        h = screen6(tmp_path, k.port, record_route=rr)
        try:
            uac, uas, err = sipp6(tmp_path, h.port, uas_port, "uac_rr_callee_bye.xml" if rr else "uac_call.xml",
                                  n=3, uas_sf="uas_rr_bye.xml" if rr else "uas.xml")
            assert uac == 0 and uas == 0, err + k.tail()
            assert h.screen.stats["screened"] == 3
        finally:
            h.stop()
    finally:
        k.stop()
    assert "bad ipv6 reference" not in k.tail()


def _request(method, uas_port, call_id, via, to_tag="", route=""):
    return (f"{method} sip:0912345678@[::1]:{uas_port} SIP/2.0\r\nVia: {via}\r\n{route}Max-Forwards: 70\r\n"
            f"From: <sip:{ALLOWED}@[::1]>;tag=a\r\nTo: <sip:0912345678@[::1]>{to_tag}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {({'INVITE': 1, 'INFO': 2}).get(method, 3)} {method}\r\nContact: <sip:{ALLOWED}@[::1]>\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def _answer(req: bytes) -> bytes:
    """200 to `req` as its UAS writes it: its Vias, From, To with a tag, Call-ID, CSeq."""
    keep = [ln for ln in req.decode().split("\r\n") if ln.split(":")[0].lower() in ("via", "from", "call-id", "cseq")]
    to = next(ln for ln in req.decode().split("\r\n") if ln.lower().startswith("to:"))
    to += "" if ";tag=" in to else ";tag=b"
    return ("SIP/2.0 200 OK\r\n" + "\r\n".join(keep + [to]) + "\r\nContent-Length: 0\r\n\r\n").encode()


def test_our_via_and_record_route_bracket_an_ipv6_address_initial_and_in_dialog(tmp_path):
    """UDP, byte level: the INVITE, an in-dialog INFO (our Route) and BYE (both the in-dialog fast path) leave with
    our Via as `[::1]:port`, the Record-Route as `<sip:[::1]:port;...>`, and each 200 comes back to the caller."""
    uas = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    uac = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    for s in (uas, uac):
        s.bind(("::1", 0))
        s.settimeout(5)
    uas_port, uac_port = uas.getsockname()[1], uac.getsockname()[1]
    h = screen6(tmp_path, uas_port, record_route=True)
    try:
        ours = f"SIP/2.0/UDP [::1]:{h.port};branch=z9hG4bKtf"
        uac.sendto(_request("INVITE", uas_port, "v6-1", f"SIP/2.0/UDP [::1]:{uac_port};branch=z9hG4bK-1;rport"),
                   ("::1", h.port))
        data, src = uas.recvfrom(65535)
        inv = parse_datagram(data)
        top = inv.values("via")[0]
        assert top.startswith(ours), top
        assert (parse_via(top).host, parse_via(top).port) == ("::1", h.port)
        assert inv.values("record-route") == [f"<sip:[::1]:{h.port};transport=udp;lr>"]
        uas.sendto(_answer(data), src)
        assert uac.recv(65535).startswith(b"SIP/2.0 200 OK")
        # in the dialog: an INFO by the route set (our Route alone: the fast path removes it), a BYE to the
        # callee's URI alone (the fast path)
        info = _request("INFO", uas_port, "v6-1", f"SIP/2.0/UDP [::1]:{uac_port};branch=z9hG4bK-2;rport",
                        to_tag=";tag=b", route=f"Route: <sip:[::1]:{h.port};transport=udp;lr>\r\n")
        bye = _request("BYE", uas_port, "v6-1", f"SIP/2.0/UDP [::1]:{uac_port};branch=z9hG4bK-3;rport", to_tag=";tag=b")
        for req, fast in ((info, 1), (bye, 1)):
            before = h.screen.stats["fast_path"]
            uac.sendto(req, ("::1", h.port))
            data, src = uas.recvfrom(65535)
            assert data[:5] == req[:5] and parse_datagram(data).values("via")[0].startswith(ours), data
            assert h.screen.stats["fast_path"] == before + fast
            uas.sendto(_answer(data), src)
            assert uac.recv(65535).startswith(b"SIP/2.0 200 OK")
    finally:
        h.stop()
        uas.close()
        uac.close()


def _read_sip(conn) -> bytes:
    """One message without a body from a stream (Content-Length: 0 here)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65535)
        assert chunk, buf
        buf += chunk
    return buf


def test_tcp_both_sides_on_ipv6_our_via_bracketed_and_the_answer_back_on_the_callers_connection(tmp_path):
    lst = socket.create_server(("::1", 0), family=socket.AF_INET6)
    lst.settimeout(5)
    h = screen6(tmp_path, lst.getsockname()[1], transport="tcp")
    uac = socket.create_connection(("::1", h.port), timeout=5)
    try:
        uac_port = uac.getsockname()[1]
        uac.sendall(_request("INVITE", lst.getsockname()[1], "v6-tcp",
                             f"SIP/2.0/TCP [::1]:{uac_port};branch=z9hG4bK-t1;rport"))
        uas, _ = lst.accept()
        uas.settimeout(5)
        data = _read_sip(uas)
        top = parse_datagram(data).values("via")[0]
        assert top.startswith(f"SIP/2.0/TCP [::1]:{h.port};branch=z9hG4bKtf") and ";i=" in top, top
        uas.sendall(_answer(data))
        assert _read_sip(uac).startswith(b"SIP/2.0 200 OK")
        uas.close()
    finally:
        uac.close()
        lst.close()
        h.stop()


def _dual_stack_screen(tmp_path):
    """A screen on [::] (advertised as [::1]) forwarding to a callee on [::1], and a caller on 127.0.0.1:
    (callee socket, caller socket, their ports, the harness)."""
    uas = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    uas.bind(("::1", 0))
    uac = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uac.bind(("127.0.0.1", 0))
    for s in (uas, uac):
        s.settimeout(5)
    uas_port, uac_port = uas.getsockname()[1], uac.getsockname()[1]
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    h = SipHarness(build(cfg, tmp_path / "data"), SipSettings(
        listen="[::]:0", advertise="[::1]", next_hop=f"[::1]:{uas_port}",
        allow_networks=["127.0.0.0/8", "::1/128"])).start()
    return uas, uac, uas_port, uac_port, h


def test_a_dual_stack_listener_answers_an_ipv4_caller_named_by_its_mapped_address(tmp_path):
    """Listening on [::] the UDP socket is dual-stack: an IPv4 caller is ::ffff:127.0.0.1 to it, and its `received`
    says so. The 200 back to it was dropped (`not_permitted`: allow_networks' 127.0.0.0/8 is IPv4, the mapped
    address was looked up as IPv6 only)."""
    uas, uac, uas_port, uac_port, h = _dual_stack_screen(tmp_path)
    try:
        uac.sendto(_request("INVITE", uas_port, "v4-on-v6", f"SIP/2.0/UDP 127.0.0.1:{uac_port};branch=z9hG4bK-4;rport"),
                   ("127.0.0.1", h.port))
        data, src = uas.recvfrom(65535)
        assert "received=::ffff:127.0.0.1" in parse_datagram(data).values("via")[1]
        uas.sendto(_answer(data), src)
        assert uac.recv(65535).startswith(b"SIP/2.0 200 OK")
        assert h.screen.stats["not_permitted"] == 0
    finally:
        h.stop()
        uas.close()
        uac.close()


def test_a_response_to_our_bracketed_via_takes_the_response_fast_path(tmp_path):
    """The fast path knows a response is ours by its top Via's first bytes (via_prefixes): written without the
    brackets our Via has, no IPv6 response ever matched and each took the full parse (0 of 300)."""
    from engine.sip_screen.fastpath import FULL_PARSE, relay_response
    uas = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    uac = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    for s in (uas, uac):
        s.bind(("::1", 0))
        s.settimeout(5)
    uas_port, uac_port = uas.getsockname()[1], uac.getsockname()[1]
    h = screen6(tmp_path, uas_port)
    try:
        uac.sendto(_request("INVITE", uas_port, "v6-fast", f"SIP/2.0/UDP [::1]:{uac_port};branch=z9hG4bK-9;rport"),
                   ("::1", h.port))
        data, src = uas.recvfrom(65535)
        assert relay_response(_answer(data), h.screen.via_prefixes) is not FULL_PARSE
        uas.sendto(_answer(data), src)
        assert uac.recv(65535).startswith(b"SIP/2.0 200 OK")
    finally:
        h.stop()
        uas.close()
        uac.close()


@pytest.mark.parametrize("listen,hop,family", [("[::1]:5060", "127.0.0.1:5070", "IPv6"),
                                               ("127.0.0.1:5060", "[::1]:5070", "IPv4")])
def test_a_udp_next_hop_of_the_other_family_than_the_listener_is_a_start_up_error(tmp_path, listen, hop, family):
    """UDP goes out of the listening socket, which cannot send to the other family: serve started, and every call
    got 503 'UDP send failed: Address family for hostname not supported'. Over TCP (a socket of its own) it works."""
    from engine.cli import parser
    from engine.config import ConfigError
    from engine.serve_config import load_serve_config

    def load(next_hop):
        return load_serve_config(parser().parse_args([
            "serve", "--data-dir", str(tmp_path), "--smpp-listen", "127.0.0.1:0", "--control-socket", "off",
            "--sip-listen", listen, "--sip-allow-networks", "127.0.0.0/8,::1/128", "--sip-next-hop", next_hop]))
    with pytest.raises(ConfigError) as e:
        load(hop)
    assert f"the SIP listener {listen!r} is {family}" in str(e.value) and "over TCP" in str(e.value)
    load(hop + ";transport=tcp")
    if listen == "[::1]:5060":      # `[::]` is dual-stack: it sends to an IPv4 next hop as ::ffff:a.b.c.d
        listen = "[::]:5060"
        load(hop)


def test_a_dual_stack_listener_sends_an_in_dialog_request_to_an_ipv4_contact(tmp_path):
    """Listening on [::] an IPv4 caller's call goes through; the callee's BYE, by the route set to the caller's IPv4
    Contact (the Request-URI, RFC 3261 §16.6 step 6), reaches it: the dual-stack UDP socket sends to an IPv4 address
    as its mapped form (RFC 4291 §2.5.5.2). It was answered 503 ("Address family for hostname not supported": an
    IPv6 socket given an IPv4 address), so no IPv4 caller on a [::] listener heard the callee hang up."""
    uas, uac, uas_port, uac_port, h = _dual_stack_screen(tmp_path)
    try:
        uac.sendto(_request("INVITE", uas_port, "v4-bye", f"SIP/2.0/UDP 127.0.0.1:{uac_port};branch=z9hG4bK-5;rport"),
                   ("127.0.0.1", h.port))
        data, src = uas.recvfrom(65535)
        uas.sendto(_answer(data), src)
        assert uac.recv(65535).startswith(b"SIP/2.0 200 OK")
        bye = (f"BYE sip:{ALLOWED}@127.0.0.1:{uac_port} SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:{uas_port};branch=z9hG4bK-6"
               f"\r\nMax-Forwards: 70\r\nFrom: <sip:0912345678@[::1]>;tag=b\r\nTo: <sip:{ALLOWED}@[::1]>;tag=a\r\n"
               f"Call-ID: v4-bye\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n").encode()
        uas.sendto(bye, ("::1", h.port))
        got = uac.recv(65535)
        assert got.startswith(b"BYE "), got
        assert h.screen.stats["not_permitted"] == 0
    finally:
        h.stop()
        uas.close()
        uac.close()
