"""Transport faults of the SIP screen (second probe): a CANCEL, the ACK of a non-2xx and a
retransmission go where their INVITE went and over its transport, also after a reload changed the next hop
(§9.1, §17.1.1.3), when §18.1.1 sent a large INVITE over TCP, and when a failed connect sent it to UDP; what
waits for a connect goes before what comes once it is made; a looping ACK is dropped quietly."""
import asyncio
import socket
import time
from dataclasses import replace

import pytest

from engine.sip_screen.codec import make_response
from engine.sip_screen.framing import StreamParser
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.live_settings import apply_sip_settings
from engine.sip_screen.server import SipSettings
from engine.sip_screen.tcp import TcpConnection

from .sip_helpers import UAC, UAS, invite, offline_screen
from .sip_transport_helpers import WAYS, ack_of, branch_of, cancel_of, feeder, pipe, sent, tcp_hop  # noqa: F401,F811  (pipe: fixture)


# ---------------------------------------------------------------- 5, 6. CANCEL, ACK, retransmission: where the INVITE went

@pytest.mark.parametrize("way", WAYS)
def test_cancel_ack_and_retransmission_go_where_the_invite_went_after_a_reload(pipe, way):
    """A call rings at next hop A; `ctl reload sip` makes B the next hop; the INVITE's retransmission,
    its CANCEL and the ACK of its 487 still go to A (RFC 3261 §9.1, §17.1.1.3), with its branch; a
    new call goes to B."""
    scr = offline_screen(pipe)
    feed = feeder(scr, way)
    inv = invite(call_id="reload-1")
    feed(inv, UAC)
    ((fwd, dest, _),) = sent(scr)
    assert dest == ("127.0.0.1", 5070)
    branch = branch_of(fwd.values("via")[0])
    apply_sip_settings(scr, replace(scr.s, next_hop="127.0.0.1:5071"), {})
    feed(inv, UAC)                                              # the UAC retransmits
    feed(cancel_of(inv), UAC)                                   # and hangs up
    (re_inv, d1, _), (cancel, d2, _) = sent(scr)
    assert (re_inv.method, d1, cancel.method, d2) == ("INVITE", ("127.0.0.1", 5070), "CANCEL", ("127.0.0.1", 5070))
    assert branch_of(re_inv.values("via")[0]) == branch_of(cancel.values("via")[0]) == branch
    feed(make_response(fwd, 487, None, to_tag="a1").to_bytes(), UAS)
    assert sent(scr)[0][0].status == 487
    feed(ack_of(inv, "a1"), UAC)
    ((ack, d3, _),) = sent(scr)
    assert (ack.method, d3, branch_of(ack.values("via")[0])) == ("ACK", ("127.0.0.1", 5070), branch)
    feed(invite(call_id="reload-2"), UAC)                       # a new call: the new next hop
    assert [d for _, d, _ in sent(scr)] == [("127.0.0.1", 5071)]


@pytest.mark.parametrize("way", WAYS)
def test_cancel_and_ack_of_a_large_invite_follow_it_over_tcp(pipe, way):
    """An INVITE over 1300 bytes from a UDP caller leaves over TCP (§18.1.1); its CANCEL and the ACK
    of its 487 are small but go over TCP too, with a TCP Via, to the same place (they went over UDP
    with a UDP Via, and a next hop whose INVITE transaction lives on TCP never matched them)."""
    scr = offline_screen(pipe)
    feed = feeder(scr, way)
    sdp = "v=0\r\n" + "".join(f"a=candidate:{i} 1 UDP 2130706431 127.0.0.1 {40000 + i} typ host\r\n" for i in range(30))
    inv = invite(call_id="big-1", body=sdp.encode(), extra=["Content-Type: application/sdp"])
    assert len(inv) > 1300
    feed(inv, UAC)
    ((fwd, dest, tr),) = sent(scr)
    assert (dest, tr) == (("127.0.0.1", 5070), "TCP") and fwd.values("via")[0].startswith("SIP/2.0/TCP ")
    feed(cancel_of(inv), UAC)
    ((cancel, dest, tr),) = sent(scr)
    assert (cancel.method, dest, tr) == ("CANCEL", ("127.0.0.1", 5070), "TCP")
    assert cancel.values("via")[0].startswith("SIP/2.0/TCP ") and cancel.get("content-length") == "0"
    feed(make_response(fwd, 487, None, to_tag="b1").to_bytes(), UAS)
    assert sent(scr)[0][0].status == 487
    feed(ack_of(inv, "b1"), UAC)
    ((ack, dest, tr),) = sent(scr)
    assert (ack.method, dest, tr) == ("ACK", ("127.0.0.1", 5070), "TCP") and ack.values("via")[0].startswith("SIP/2.0/TCP ")
    assert branch_of(ack.values("via")[0]) == branch_of(cancel.values("via")[0]) == branch_of(fwd.values("via")[0])
    assert len(scr.invites) == 1                                # one entry per INVITE transaction


def test_what_waited_behind_a_failed_connect_follows_its_invite_to_udp(pipe):
    """A large INVITE's TCP connect fails (the hop takes UDP only): the INVITE goes over UDP (§18.1.1),
    and its retransmission and CANCEL that waited behind that connect follow it there, instead of
    being answered 503 while their INVITE is on its way."""
    scr = offline_screen(pipe)
    real = scr._send
    waiting = []

    def send(data, dest, transport="UDP", on_fail=None):
        if transport == "TCP":
            waiting.append(on_fail)                             # behind the one connect under way
            return
        real(data, dest, transport, on_fail)
    scr._send = send
    inv = invite(call_id="fallback-1", body=b"v=0\r\n" + b"a=x:" + b"y" * 1400 + b"\r\n")
    scr.on_datagram(inv, UAC)
    scr.on_datagram(inv, UAC)
    scr.on_datagram(cancel_of(inv), UAC)
    assert len(waiting) == 3 and sent(scr) == []
    for on_fail in waiting:                                     # the connect is refused
        on_fail("TCP connection refused or timed out")
    out = sent(scr)
    assert [(m.method, d, t) for m, d, t in out] == [("INVITE", ("127.0.0.1", 5070), "UDP")] * 2 + [
        ("CANCEL", ("127.0.0.1", 5070), "UDP")]
    assert all(m.values("via")[0].startswith("SIP/2.0/UDP ") for m, _, _ in out)
    assert scr.stats["forward_failed"] == 0


def test_what_waits_for_a_connect_goes_before_what_comes_once_it_is_made(pipe, monkeypatch):
    """A CANCEL handled between the outbound connection's connection_made and the connect's resumption
    overtook its INVITE on the stream."""
    hop = tcp_hop()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{hop.getsockname()[1]};transport=tcp",
                    allow_networks=["127.0.0.0/8"])
    inv = invite(call_id="order-1", via_port=5099)
    with SipHarness(pipe, s) as h:
        real = TcpConnection.connection_made

        def made(self, tr):
            real(self, tr)
            if self.key is not None:
                asyncio.get_running_loop().call_soon(h.screen.on_datagram, cancel_of(inv), ("127.0.0.1", 5099))
        monkeypatch.setattr(TcpConnection, "connection_made", made)
        h.run(h.screen.on_datagram, inv, ("127.0.0.1", 5099))
        c, _ = hop.accept()
        c.settimeout(2)
        p, got, end = StreamParser(), [], time.monotonic() + 3
        while len(got) < 2 and time.monotonic() < end:
            try:
                p.feed(c.recv(65535))
            except socket.timeout:
                break
            while (m := p.next()) is not None:
                got.append(m.method)
        c.close()
    hop.close()
    assert got == ["INVITE", "CANCEL"]


@pytest.mark.parametrize("fast", [True, False])
def test_a_looping_ack_is_dropped_quietly(pipe, fast):
    ack = (b"ACK sip:0912345678@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKack1;rport\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=abc\r\nTo: <sip:0912345678@127.0.0.1>;tag=x\r\n"
           b"Call-ID: loop-ack\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
    scr = offline_screen(pipe)
    scr.fast_path = fast
    scr.on_datagram(ack, UAC)
    (fwd, dest), = scr.udp.out
    scr.udp.out.clear()
    scr.on_datagram(fwd, dest)                      # it comes back to us: a loop
    assert scr.udp.out == [] and scr.stats["internal_errors"] == 0 and scr.stats["loop_detected_ack"] == 1
