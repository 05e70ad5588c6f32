"""Transport faults of the SIP screen (second probe): a response over TCP goes back on the request's
connection while it is open, else to `received` and the sent-by port (RFC 3261 §18.2.2; rport only when asked,
RFC 3581), as the full path answers and never over a made-up connection; a `received` or `rport` the sender wrote
itself, in any of its spellings, is overwritten and never steers the response."""
import re
import socket
import time

import pytest

from engine.sip_screen import fastpath
from engine.sip_screen.codec import make_response, parse_datagram
from engine.sip_screen.framing import StreamParser
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.sip_screen.tcp import TcpConnection

from .sip_helpers import UAC, UAS, invite, offline_screen
from .sip_transport_helpers import FakeTransport, WAYS, feeder, pipe, sent, udp_sock  # noqa: F401,F811  (pipe: fixture)


# ---------------------------------------------------------------- 4. responses over TCP (RFC 3261 §18.2.2)

def test_a_tcp_response_goes_on_the_requests_connection_then_to_the_sent_by_port(pipe):
    """A UAC over TCP that did not ask for rport gets none stamped (RFC 3581: on request only); our Via
    names its connection; the 180 comes back on that connection; once it has closed, the 486 goes
    over a new connection to `received` and the sent-by port -- not to the dead connection's port,
    where the probe's response was lost."""
    uas = udp_sock()
    listener = socket.socket()                                  # the UAC's sent-by port
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    listener.settimeout(3)
    sent_by = listener.getsockname()[1]
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        c = socket.create_connection(("127.0.0.1", h.port), timeout=3)
        inv = invite(call_id="tcp-close-1", via_port=sent_by).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP") \
            .replace(b";rport\r\n", b"\r\n")
        c.sendall(inv)
        fwd = parse_datagram(uas.recv(65535))
        ours, uac = fwd.values("via")[:2]
        assert "rport" not in uac and re.search(r";i=[0-9a-f]+", ours), fwd.values("via")
        uas.sendto(make_response(fwd, 180, None, to_tag="u1").to_bytes(), ("127.0.0.1", h.port))
        p = StreamParser()
        while (r := p.next()) is None:
            p.feed(c.recv(65535))
        assert r.status == 180 and r.values("via") == [uac]     # on the request's own connection
        c.close()
        time.sleep(0.2)
        uas.sendto(make_response(fwd, 486, None, to_tag="u1").to_bytes(), ("127.0.0.1", h.port))
        a, _ = listener.accept()                                # a new connection to the sent-by port
        a.settimeout(3)
        p = StreamParser()
        while (r := p.next()) is None:
            p.feed(a.recv(65535))
        assert r.status == 486 and r.get("call-id") == "tcp-close-1"
        a.close()
    listener.close()
    uas.close()


def test_a_tcp_via_that_asked_for_rport_still_gets_it(pipe):
    """RFC 3581 over TCP: a bare rport is stamped with the source port, and the response still
    comes back on the connection."""
    uas = udp_sock()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        c = socket.create_connection(("127.0.0.1", h.port), timeout=3)
        c.sendall(invite(call_id="tcp-rport-1", via_port=5099).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        fwd = parse_datagram(uas.recv(65535))
        assert fwd.values("via")[1].endswith(f";rport={c.getsockname()[1]};received=127.0.0.1")
        uas.sendto(make_response(fwd, 180, None, to_tag="u1").to_bytes(), ("127.0.0.1", h.port))
        assert c.recv(65535).startswith(b"SIP/2.0 180")
        c.close()
    uas.close()


def _response_for_tcp_via(conn_id: int, received=b""):
    return (b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtf0123456789abcdef0123;rport;i=%x\r\n"
            b"Via: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK1;rport=40123%s\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
            b"To: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n") % (conn_id, received)


@pytest.mark.parametrize("way", WAYS)
def test_a_response_for_a_tcp_via_is_the_full_paths_and_a_made_up_connection_is_not_used(pipe, way):
    """Both fast paths leave a response bound for a TCP Via to the full path (which connection is its
    decision); with no open connection of that id from that address, it goes to the sent-by port (not
    to rport: RFC 3581 §4 is for unreliable transports), and a connection from another address named
    in our Via is not used."""
    our = tuple(f"SIP/2.0/{t} 127.0.0.1:5060;branch=z9hG4bKtf".encode() for t in ("UDP", "TCP"))
    scr = offline_screen(pipe)
    other = TcpConnection(scr)
    other.transport, other.peer = FakeTransport(), ("127.0.0.7", 40123)
    scr.tcp_ids[other.id] = other
    data = _response_for_tcp_via(other.id)
    assert fastpath.relay_response(data, our) is fastpath.FULL_PARSE
    if fastpath._c_relay_response is not None:
        assert fastpath._c_relay_response(data, our) is None
    feeder(scr, way)(data, UAS)
    ((r, dest, tr),) = sent(scr)
    assert (r.status, dest, tr) == (180, ("127.0.0.1", 5099), "TCP") and other.transport.out == []
    feeder(scr, way)(_response_for_tcp_via(other.id, b";received=127.0.0.7"), UAS)     # from there: its connection
    assert sent(scr) == [] and len(other.transport.out) == 1 and other.transport.out[0].startswith(b"SIP/2.0 180")


def test_our_answer_after_the_connection_closed_goes_to_the_sent_by_port(pipe):
    """Our own answer (608) to a TCP request whose connection has closed meanwhile: §18.2.2's new
    connection to the source address and the sent-by port (it was written to the closed one)."""
    scr = offline_screen(pipe)

    class Closed(FakeTransport):
        def is_closing(self):
            return True
    c = TcpConnection(scr)
    c.transport, c.peer = Closed(), ("127.0.0.1", 40999)
    inv = invite(caller="0987000666", call_id="closed-1", via_port=5099).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
    c.data_received(inv)
    ((r, dest, tr),) = sent(scr)
    assert (r.status, dest, tr) == (608, ("127.0.0.1", 5099), "TCP")


@pytest.mark.parametrize("way", ["python", "c"])
def test_a_received_or_rport_the_sender_wrote_itself_is_overwritten(pipe, monkeypatch, way):
    """RFC 3261 §18.2.1 / RFC 3581 §4: the server sets them from the packet's source. One the sender wrote
    (received=127.0.0.99, rport=6000) used to be kept: responses went wherever the sender named."""
    if way == "python":
        monkeypatch.setattr(fastpath, "_c_in_dialog", None)
    scr = offline_screen(pipe)
    inv = invite(call_id="rcv-1").replace(b";rport\r\n", b";received=127.0.0.99;rport=6000\r\n")
    scr.on_datagram(inv, UAC)
    (d, _a), = scr.udp.out
    scr.udp.out.clear()
    fwd = parse_datagram(d)
    assert fwd.values("via")[1].endswith(";received=127.0.0.1;rport=5080")
    scr.on_datagram(make_response(fwd, 180, None, to_tag="x").to_bytes(), UAS)
    assert scr.udp.out[0][1] == UAC
    scr.udp.out.clear()
    bye = (b"BYE sip:0912345678@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKb1;"
           b"received=127.0.0.99;rport=6000\r\nMax-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=a\r\n"
           b"To: <sip:0912345678@127.0.0.1>;tag=x\r\nCall-ID: rcv-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
    scr.on_datagram(bye, UAC)
    (d, _a), = scr.udp.out
    assert parse_datagram(d).values("via")[1].endswith(";received=127.0.0.1;rport=5080")


VIA_VARIANTS = {
    "dup-received": b";received=127.0.0.99;received=127.0.0.98;rport",
    "dup-rport": b";rport=6000;rport=6001",
    "bare-received": b";received;rport",
    "empty-received": b";received=;rport",
    "blank-after-value": b";received=127.0.0.99\x1e;rport=6666",
    "blank-before-name": b";\x1ereceived=127.0.0.99;\x0brport=6666",
    "blank-before-equals": b";received\x1e=127.0.0.99;rport\x1e=6666",
    "nbsp-before-name": ";\u00a0received=127.0.0.99;rport=6666".encode(),
}


@pytest.mark.parametrize("way", ["full", "fast", "fast-python", "pump"])
@pytest.mark.parametrize("v", list(VIA_VARIANTS))
def test_no_copy_of_a_sender_written_received_or_rport_steers_the_response(pipe, monkeypatch, way, v):
    """Review: the grammar lets the last copy of a parameter win, and a bare received got no value."""
    scr = offline_screen(pipe)
    feed = scr.on_datagram
    if way == "full":
        scr.fast_path = False
    elif way == "fast-python":
        monkeypatch.setattr(fastpath, "_c_in_dialog", None)
        monkeypatch.setattr(fastpath, "_c_relay_response", None)
    elif way == "pump":
        feed = feeder(scr, way)
    src = ("127.0.0.1", 5080) if b"rport" in VIA_VARIANTS[v] else ("127.0.0.5", 5080)
    lines = invite(call_id="v-" + v).split(b"\r\n")
    lines[1] = b"Via: SIP/2.0/UDP 127.0.0.77:5080;branch=z9hG4bK-x1" + VIA_VARIANTS[v]
    feed(b"\r\n".join(lines), src)
    (d, _a), = scr.udp.out
    scr.udp.out.clear()
    fwd = parse_datagram(d)
    feed(make_response(fwd, 180, None, to_tag="x").to_bytes(), UAS)
    (_d, a), = scr.udp.out
    assert a == src
