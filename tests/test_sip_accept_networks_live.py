"""accept_networks end to end, through a running SIP screen (read by the C pump and by the Python reader): over UDP a
stranger's INVITE is dropped unanswered and a response from a next hop not listed is dropped; over TCP a stranger's
connection is closed at accept, a reload closes a stranger's connections, and responses come back on the peer's
connection. The decision and the setting: test_sip_accept_networks.py. Everything on 127.0.0.1 / 127.0.0.2."""
import socket
import time
from dataclasses import replace

import pytest

from engine.app import build
from engine.sip_screen.codec import make_response, parse_datagram
from engine.sip_screen.framing import StreamParser
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.live_settings import apply_sip_settings
from engine.sip_screen.server import SipSettings
from engine.sip_screen.transport import Pump

from .sip_helpers import invite
from .test_sip_accept_networks import ONLY_PEER, PEER, STRANGER, _recv, _udp


@pytest.fixture(params=["pump", "python"])
def running(request, tmp_path):
    """A screen on 127.0.0.1 whose next hop is a UAS on 127.0.0.1; accept_networks as the test sets them (the
    `reload` function puts them in force as `ctl reload sip` does); read by the C pump or the Python reader."""
    if request.param == "pump" and Pump is None:
        pytest.skip("C extension not built")
    uas = _udp(PEER)
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    h = SipHarness(build(data_dir=tmp_path / "d"), s).start()

    async def reload(nets):
        ans = apply_sip_settings(h.screen, replace(h.screen.s, accept_networks=nets), {})
        if request.param == "python":
            h.screen.fast_path = False
            h.screen.udp.refresh()
        return ans
    h.reload = lambda nets: h.call(reload(nets))
    h.reload(["0.0.0.0/0", "::/0"])
    assert (h.screen.udp.pump is not None) == (request.param == "pump")
    try:
        yield h, uas
    finally:
        h.stop()
        uas.close()


def test_over_udp_a_stranger_is_refused_when_only_the_peer_is_accepted(running):
    h, uas = running
    for nets, want in ((["0.0.0.0/0", "::/0"], True), (ONLY_PEER, False), (["127.0.0.0/8"], True)):
        h.reload(nets)
        cli = _udp(STRANGER)
        try:
            cid = f"u-{len(nets[0])}-{nets[0]}"
            cli.sendto(invite(call_id=cid, via_port=cli.getsockname()[1]).replace(
                b"SIP/2.0/UDP 127.0.0.1", b"SIP/2.0/UDP 127.0.0.2"), ("127.0.0.1", h.port))
            got = _recv(uas, 2.0 if want else 0.5)
            if want:
                assert got is not None and parse_datagram(got).get("call-id") == cid
                uas.sendto(make_response(parse_datagram(got), 486, None, to_tag="u").to_bytes(), ("127.0.0.1", h.port))
                assert parse_datagram(_recv(cli)).status == 486          # the response relayed back to it
            else:
                assert got is None and _recv(cli, 0.3) is None
        finally:
            cli.close()
    assert h.screen.stats["source_refused"] == 1 and h.screen.stats["screened"] == 2


def test_over_udp_a_response_from_a_next_hop_not_listed_is_dropped(running):
    """Responses come from next hops: they must be listed too."""
    h, uas = running
    uas2 = _udp(STRANGER)
    cli = _udp(PEER)
    try:
        h.reload(ONLY_PEER)
        inv = invite(call_id="resp1", via_port=cli.getsockname()[1])
        cli.sendto(inv, ("127.0.0.1", h.port))
        fwd = parse_datagram(_recv(uas))
        for st in (180, 200):                     # from 127.0.0.2: dropped, the pump's plain relay included
            uas2.sendto(make_response(fwd, st, None, to_tag="x").to_bytes(), ("127.0.0.1", h.port))
        assert _recv(cli, 0.5) is None
        uas.sendto(make_response(fwd, 180, None, to_tag="x").to_bytes(), ("127.0.0.1", h.port))
        assert parse_datagram(_recv(cli)).status == 180                    # from the listed next hop: relayed
        assert h.screen.stats["source_refused"] == 2
    finally:
        uas2.close()
        cli.close()


def test_over_tcp_a_stranger_is_closed_at_accept(running):
    h, uas = running
    for nets, src, want in ((["0.0.0.0/0", "::/0"], STRANGER, True), (ONLY_PEER, STRANGER, False),
                            (ONLY_PEER, PEER, True)):
        h.reload(nets)
        t = socket.create_connection(("127.0.0.1", h.port), timeout=3, source_address=(src, 0))
        try:
            cid = f"t-{nets[0]}-{src}"
            inv = invite(call_id=cid, via_port=t.getsockname()[1]).replace(b"SIP/2.0/UDP 127.0.0.1",
                                                                            f"SIP/2.0/TCP {src}".encode())
            try:
                t.sendall(inv)
            except ConnectionError:
                pass
            got = _recv(uas, 2.0 if want else 0.5)
            if want:
                assert got is not None and parse_datagram(got).get("call-id") == cid
            else:
                assert got is None and not _recv(t, 1.0)               # closed (reset) unread
        finally:
            t.close()
    st = h.screen.stats
    assert st["tcp_source_refused"] == 1 and st["screened"] == 2 and st["tcp_refused"] == 0


def test_a_reload_closes_the_tcp_connections_of_a_stranger(running):
    h, uas = running
    t = socket.create_connection(("127.0.0.1", h.port), timeout=3, source_address=(STRANGER, 0))
    try:
        inv = invite(call_id="tr1", via_port=t.getsockname()[1]).replace(b"SIP/2.0/UDP 127.0.0.1",
                                                                        b"SIP/2.0/TCP 127.0.0.2")
        t.sendall(inv)
        assert parse_datagram(_recv(uas)).get("call-id") == "tr1"
        h.reload(ONLY_PEER)
        t.settimeout(2)
        deadline = time.monotonic() + 2
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                closed = t.recv(65535) == b""
            except (socket.timeout, ConnectionError):
                closed = True
        assert closed and not h.screen.tcp_conns
    finally:
        t.close()


def test_tcp_responses_come_back_on_the_peers_connection(running):
    """A peer's connection is served as before (a sanity check of the TCP path under a narrowed list)."""
    h, uas = running
    h.reload(ONLY_PEER)
    t = socket.create_connection(("127.0.0.1", h.port), timeout=3, source_address=(PEER, 0))
    try:
        inv = invite(call_id="tp1", via_port=t.getsockname()[1]).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
        t.sendall(inv)
        fwd = parse_datagram(_recv(uas))
        uas.sendto(make_response(fwd, 486, None, to_tag="u").to_bytes(), ("127.0.0.1", h.port))
        p = StreamParser()
        p.feed(_recv(t))
        assert p.next().status == 486
    finally:
        t.close()
