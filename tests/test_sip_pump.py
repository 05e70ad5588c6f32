"""The C pump on real sockets (transport.py, _sippump.h): a call through the screen on loopback,
the messages it relays itself and those it hands to Python, the same datagrams as the Python path on IPv4,
IPv6 and dual-stack sockets, and `ctl reload sip` narrowing the permitted networks under a running pump."""
import socket
from dataclasses import replace

import pytest

from engine.app import build
from engine.sip_screen.codec import make_response, parse_datagram
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.live_settings import apply_sip_settings
from engine.sip_screen.server import SipSettings
from engine.sip_screen.transport import Pump

from .sip_helpers import invite

pytestmark = pytest.mark.skipif(Pump is None, reason="C extension not built")


def udp(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(2)
    return s


def answer(request: bytes, status: int) -> bytes:
    """The UAS's response to a request it received (Vias, From, To with a tag, Call-ID, CSeq)."""
    return make_response(parse_datagram(request), status, None, to_tag="uas1").to_bytes()


def in_dialog(method: str, cseq: int, uas_port: int, host="127.0.0.1") -> bytes:
    """A request of the call's dialog, a new transaction: its own branch (RFC 3261 §8.1.1.7; the ACK
    of a 2xx too, §13.2.2.4 -- only the ACK of a non-2xx repeats the INVITE's)."""
    h = f"[{host}]" if ":" in host else host
    return invite(via_port=0).replace(b";branch=z9hG4bK-", f";branch=z9hG4bK-{method}{cseq}-".encode()) \
        .replace(b"INVITE sip:0912345678@127.0.0.1 SIP/2.0",
                                      f"{method} sip:0912345678@{h}:{uas_port} SIP/2.0".encode()) \
        .replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=uas1") \
        .replace(b"CSeq: 1 INVITE", f"CSeq: {cseq} {method}".encode())


def call(h, cli, uas, host="127.0.0.1"):
    """INVITE, 180, 200, ACK, BYE, 200 through the screen; returns what each side received."""
    cli_port = cli.getsockname()[1]
    fix = lambda b: b.replace(b"127.0.0.1:0;", f"{host}:{cli_port};".encode()) if ":" not in host else \
        b.replace(b"SIP/2.0/UDP 127.0.0.1:0;", f"SIP/2.0/UDP [{host}]:{cli_port};".encode())  # noqa: E731
    screen = (host, h.port)
    cli.sendto(fix(invite(via_port=0)), screen)
    inv = uas.recv(65535)
    for status in (180, 200):
        uas.sendto(answer(inv, status), screen)
    got = [cli.recv(65535), cli.recv(65535)]
    uas_port = uas.getsockname()[1]
    cli.sendto(fix(in_dialog("ACK", 1, uas_port, host)), screen)
    ack = uas.recv(65535)
    cli.sendto(fix(in_dialog("BYE", 2, uas_port, host)), screen)
    bye = uas.recv(65535)
    uas.sendto(answer(bye, 200), screen)
    got.append(cli.recv(65535))
    return inv, got, ack, bye


def start(tmp_path, host="127.0.0.1", listen=None, port=0, peers=None):
    """A screen on `listen` (default: `host`), port `port`, whose next hop is the callee, and a caller: (harness,
    caller, callee), the peers made on `host` unless given."""
    cli, uas = peers or (udp(host), udp(host))
    h = f"[{host}]" if ":" in host else host
    s = SipSettings(listen=f"{listen or h}:{port}", next_hop=f"{h}:{uas.getsockname()[1]}",
                    allow_networks=["127.0.0.0/8", "::1/128"])
    return SipHarness(build(data_dir=tmp_path / "data"), s).start(), cli, uas


def test_a_call_through_the_pump(tmp_path):
    h, cli, uas = start(tmp_path)
    try:
        assert h.screen.udp.pump is not None                    # `serve` reads with the pump
        handed = []
        real = h.screen.on_datagram
        h.screen.on_datagram = lambda d, a: (handed.append(d[:8]), real(d, a))
        inv, got, ack, bye = call(h, cli, uas)
        assert [parse_datagram(g).status for g in got] == [180, 200, 200]
        for m in got:                                           # our Via gone, the UAC's on top
            assert parse_datagram(m).values("via")[0].startswith("SIP/2.0/UDP 127.0.0.1:%d;" % cli.getsockname()[1])
        for req in (inv, ack, bye):
            assert parse_datagram(req).values("via")[0].startswith("SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKtf" % h.port)
        assert parse_datagram(bye).get("max-forwards") == "69"
        assert handed == [b"INVITE s"]                         # only the INVITE needed Python
        st = h.screen.stats
        assert (st["requests"], st["responses"], st["fast_path"], st["internal_errors"]) == (3, 3, 5, 0)
        assert h.screen.final_codes == {"200": 1}
    finally:
        h.stop()


def ipv6_loopback():
    try:
        udp("::1").close()
    except OSError:
        pytest.skip("no IPv6 loopback")


@pytest.mark.parametrize("listen,host", [("[::]", "127.0.0.1"), ("[::1]", "::1"), ("127.0.0.1", "127.0.0.1")],
                         ids=["dual-stack, IPv4 peers", "IPv6", "IPv4"])
def test_the_pump_sends_what_the_python_path_sends(tmp_path, monkeypatch, listen, host):
    """The same call through the screen on one port, read by the pump, then by the Python reader (the Python fast
    path, transport.UdpEndpoint.sendto): every datagram each peer receives is byte for byte the same, and the pump
    sent the five relayed ones itself -- on `[::]` to an IPv4 peer as ::ffff:a.b.c.d (its `received`) and to an IPv4
    Request-URI as its mapped address, on `[::1]` to IPv6 addresses. An AF_INET6 socket's sends all went to Python
    before (`handed` was every datagram). On `[::1]` a BYE to an IPv4 Request-URI fails alike: the same sendto(2),
    the same errno, 503 with the same Warning."""
    if ":" in listen:
        ipv6_loopback()
    runs = []
    port, peers = 0, (udp(host), udp(host))          # the same peers, the same screen port: the same bytes
    cli_port = peers[0].getsockname()[1]
    for pump in (True, False):
        if not pump:
            monkeypatch.setattr("engine.sip_screen.transport.Pump", None)
        h, cli, uas = start(tmp_path / str(pump), host, listen, port, peers)
        port = h.port
        try:
            assert (h.screen.udp.pump is not None) == pump
            handed = []
            real = h.screen.on_datagram
            h.screen.on_datagram = lambda d, a: (handed.append(d[:8]), real(d, a))
            inv, got, ack, bye = call(h, cli, uas, host)
            failed = None
            if host == "::1":                                   # the [::1] socket cannot reach 127.0.0.1
                cli.sendto(in_dialog("BYE", 3, 9, "127.0.0.1").replace(
                    b"SIP/2.0/UDP 127.0.0.1:0;", f"SIP/2.0/UDP [::1]:{cli_port};".encode()), ("::1", port))
                failed = cli.recv(65535)
                assert failed.startswith(b"SIP/2.0 503 ") and b"Network is unreachable" in failed
            st = h.screen.stats
            runs.append(([inv, *got, ack, bye, failed], handed, st["fast_path"], st["internal_errors"]))
        finally:
            h.stop()
    for sock in peers:
        sock.close()
    (by_pump, handed, fast, errors), by_python = runs
    assert by_pump == by_python[0]
    assert [parse_datagram(g).status for g in by_pump[1:4]] == [180, 200, 200]
    if listen == "[::]":                                # the caller, as the dual-stack socket names it
        assert f"rport={cli_port};received=::ffff:127.0.0.1\r\n".encode() in by_pump[5]
    assert handed == [b"INVITE s"]                     # the failed BYE's 503 too came by the pump (send_failed)
    assert (fast, errors) == (by_python[2], 0) == (5 + (host == "::1"), 0)


@pytest.mark.parametrize("listen,host", [("127.0.0.1", "127.0.0.1"), ("[::]", "127.0.0.1"), ("[::1]", "::1")],
                         ids=["IPv4", "dual-stack, IPv4 peers", "IPv6"])
def test_reload_narrowing_the_networks_reaches_the_pump(tmp_path, listen, host):
    """The 180 goes to the caller's `received` (127.0.0.1, ::ffff:127.0.0.1 on `[::]`, ::1), no longer permitted:
    neither the IPv4 ranges nor (for an IPv4-mapped address, as forwarding._permitted) the IPv6 ones let the pump
    send it; Python counts it."""
    if ":" in listen:
        ipv6_loopback()
    h, cli, uas = start(tmp_path, host, listen)
    try:
        cli.sendto(invite(via_port=cli.getsockname()[1]), (host, h.port))
        inv = uas.recv(65535)
        new = replace(h.screen.s, allow_networks=["10.0.0.0/8", "2001:db8::/32"])

        async def reload():
            return apply_sip_settings(h.screen, new, {})
        h.call(reload())
        uas.sendto(answer(inv, 180), (host, h.port))
        cli.settimeout(0.5)
        with pytest.raises(socket.timeout):                     # the caller is no longer permitted
            cli.recv(65535)
        assert h.screen.stats["not_permitted"] == 1
    finally:
        h.stop()
