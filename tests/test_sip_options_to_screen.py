"""An OPTIONS addressed to the screen itself -- its Request-URI names one of the screen's addresses and port with no
user part (RFC 3261 §11: how a request is addressed to a proxy; Kamailio's and OpenSIPS's keep-alive answer read it
so), no Route beyond the screen's own -- is answered 200 by the screen (§11.2: Accept, no Allow from a proxy),
whatever its Max-Forwards (§16.3 step 3 lets a proxy answer one with Max-Forwards 0 as its final recipient), over
UDP (the C pump, the Python reader, the full parse) and TCP, and counted as `options_answered`, no verdict line.
Before, it went to the next hop: a softswitch's health check of the screen checked the next hop (a screen whose
next hop was down was taken out of service; one whose own path was broken was not). Any other OPTIONS is relayed
as before, and one with Max-Forwards 0 addressed elsewhere is answered 483 (RFC 4475 zeromf)."""
import socket

import pytest

from engine.app import build
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.routing import _local_address
from engine.sip_screen.server import SipScreen, SipSettings

from .sip_transport_helpers import udp_sock
from .test_sip_refused_transaction import screen  # noqa: F401,F811  (fixture: the C pump, Python reader, full parse)


def options(uri, via, b, mf="70", route=None):
    return (f"OPTIONS {uri} SIP/2.0\r\nVia: {via};branch=z9hG4bK{b};rport\r\nMax-Forwards: {mf}\r\n"
            + (f"Route: {route}\r\n" if route else "")
            + f"From: <sip:ping@127.0.0.1>;tag=p{b}\r\nTo: <{uri}>\r\nCall-ID: opt-{b}\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def _ask(h, cli, uri, b, **kw):
    cli.sendto(options(uri, f"SIP/2.0/UDP 127.0.0.1:{cli.getsockname()[1]}", b, **kw), ("127.0.0.1", h.port))
    return parse_datagram(cli.recv(65535))


def _next_hop_gets(h, cli, uas, b):
    """What the next hop receives first after the requests sent before: a marker OPTIONS with a user part sent
    last (the screen reads one socket in order, so anything forwarded before it would arrive first)."""
    cli.sendto(options("sip:marker@127.0.0.1", f"SIP/2.0/UDP 127.0.0.1:{cli.getsockname()[1]}", b),
               ("127.0.0.1", h.port))
    return parse_datagram(uas.recv(65535))


@pytest.mark.parametrize("mf", ["70", "0"])
def test_an_options_to_the_screen_is_answered_by_it(screen, mf):
    h, cli, uas = screen
    r = _ask(h, cli, f"sip:127.0.0.1:{h.port}", "o1", mf=mf)
    assert (r.status, r.reason, r.get("cseq"), r.get("call-id")) == (200, "OK", "1 OPTIONS", "opt-o1")
    assert r.get("accept") == "*/*" and r.get("allow") is None      # §11.2: no Allow from a proxy
    assert ";tag=" in r.get("to")
    assert h.screen.stats["options_answered"] == 1
    assert _next_hop_gets(h, cli, uas, "m1").get("call-id") == "opt-m1"     # the OPTIONS was not sent on
    # our own Route in front of it (the screen as a preloaded outbound proxy) is still the screen
    r = _ask(h, cli, f"sip:127.0.0.1:{h.port}", "o2", route=f"<sip:127.0.0.1:{h.port};lr>")
    assert r.status == 200 and h.screen.stats["options_answered"] == 2


def test_other_options_go_on_as_before(screen):
    h, cli, uas = screen
    cli.sendto(options(f"sip:0912345678@127.0.0.1:{h.port}", f"SIP/2.0/UDP 127.0.0.1:{cli.getsockname()[1]}", "u1"),
               ("127.0.0.1", h.port))
    assert parse_datagram(uas.recv(65535)).get("call-id") == "opt-u1"   # a user's: the next hop's to answer
    cli.sendto(options(f"sip:127.0.0.1:{h.port}", f"SIP/2.0/UDP 127.0.0.1:{cli.getsockname()[1]}", "u2",
                       route=f"<sip:127.0.0.1:{uas.getsockname()[1]};lr>"), ("127.0.0.1", h.port))
    assert parse_datagram(uas.recv(65535)).get("call-id") == "opt-u2"   # routed on beyond the screen
    other = udp_sock()
    cli.sendto(options(f"sip:127.0.0.1:{other.getsockname()[1]}", f"SIP/2.0/UDP 127.0.0.1:{cli.getsockname()[1]}",
                       "u3"), ("127.0.0.1", h.port))
    assert parse_datagram(uas.recv(65535)).get("call-id") == "opt-u3"   # another host:port: relayed
    r = _ask(h, cli, f"sip:0912345678@127.0.0.1:{h.port}", "u4", mf="0")
    assert r.status == 483                                              # zeromf: not ours to answer 200
    assert h.screen.stats["options_answered"] == 0
    other.close()


def test_an_options_to_the_screen_over_tcp(loopback_screen):
    h = loopback_screen
    t = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    try:
        port = t.getsockname()[1]
        t.sendall(options(f"sip:127.0.0.1:{h.port};transport=tcp", f"SIP/2.0/TCP 127.0.0.1:{port}", "t1"))
        data = b""
        while b"\r\n\r\n" not in data:
            data += t.recv(65535)
        r = parse_datagram(data)
        assert (r.status, r.get("call-id")) == (200, "opt-t1")
        assert h.screen.stats["options_answered"] == 1 and h.screen.stats["forward_failed"] == 0
    finally:
        t.close()


def test_an_address_of_this_host_names_the_screen_listening_on_every_address(tmp_path):
    """Listening on 0.0.0.0 (the shipped sip.toml), the screen's Via names the advertised address; a softswitch
    pings the address it sends its calls to, which is one of this host's. (No socket bound here: `_where` is set as
    start() sets it.)"""
    assert _local_address("127.0.0.2", "0.0.0.0") and _local_address("127.0.0.1", "::")
    assert not _local_address("192.0.2.1", "0.0.0.0") and not _local_address("example.com", "0.0.0.0")
    assert not _local_address("::1", "0.0.0.0")                         # an IPv4 listener takes no IPv6
    scr = SipScreen(build(data_dir=tmp_path / "data", with_model=False, persist=False),
                    SipSettings(listen="0.0.0.0:5060", allow_networks=["127.0.0.0/8"]))
    scr.me, scr._where = {("10.9.9.9", 5060)}, ("0.0.0.0", 5060)
    assert scr._names_us("10.9.9.9", 5060) and scr._names_us("127.0.0.3", 5060)
    assert not scr._names_us("127.0.0.3", 5070) and not scr._names_us("192.0.2.1", 5060)
    scr._where = ("127.0.0.1", 5060)                                    # bound to one address: that one only
    assert not scr._names_us("127.0.0.3", 5060)


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "224.0.0.1", "255.255.255.255", "[::ffff:0.0.0.0]"])
def test_an_address_a_socket_binds_to_but_no_interface_holds_is_not_the_screens(host):
    """The wildcard, a multicast group, the limited broadcast: a socket binds to each (as to any address at all on a
    host with ip_nonlocal_bind set, as keepalived's are), yet none is an address of this host, and an OPTIONS to one
    is not the screen's to answer: it goes on (a softswitch pinging a gateway through the screen got the screen's
    200, the gateway never asked)."""
    assert not _local_address(host, "::")
