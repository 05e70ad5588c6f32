"""The CANCEL of a call let through whose forward failed -- answered 503 by the screen (forwarding.UNSENT), its
transaction's final -- is answered 200 by the screen (RFC 3261 §9.2: it is the UAS of that transaction now), and the
ACK of that 503 is absorbed whatever To tag it carries, as for the screen's own refusals
(tests/test_sip_own_answers_cancel.py). Both went on to the dead next hop: the CANCEL was answered 503 for it; the ACK
of an INVITE with a To tag of its own reached the hop once it was up, which never saw the INVITE. And a CANCEL sent
over UDP behind a failed TCP connect (its INVITE over 1300 bytes, RFC 3261 §18.1.1) is in the ICMP watch: it was left
to the caller's Timer F (32 s). Through the screen on loopback (the C pump and the Python reader)."""
import socket
import time

import pytest

from engine.app import build
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings

from .sip_helpers import invite
from .sip_transport_helpers import ack_of, cancel_of
from .test_sip_every_invite_logged import Lines
from .test_sip_unreachable_hop import _dead_port, _to, _udp, screen  # noqa: F401,F811  (screen: fixture, dead hop)


def _status(uac) -> tuple:
    r = parse_datagram(uac.recv(65535))
    return r.status, r.get("cseq")


def test_the_cancel_of_an_invite_whose_forward_failed_is_answered_here(screen):
    screen.screen.vlog = vlog = Lines()
    uac = _udp(5.0)
    try:
        inv = invite(call_id="unsent-cancelled", via_port=uac.getsockname()[1])
        uac.sendto(inv, ("127.0.0.1", screen.port))
        assert _status(uac) == (503, "1 INVITE")        # the next hop's ICMP error
        uac.sendto(cancel_of(inv), ("127.0.0.1", screen.port))
        assert _status(uac) == (200, "1 CANCEL")        # not sent on to the dead hop (and answered 503 for it)
        assert screen.screen.stats["next_hop_unreachable"] == 1
        assert (len(vlog.calls), len(vlog.unsent), vlog.refusals) == (1, 1, [])
    finally:
        uac.close()


def test_the_ack_of_the_503_of_an_invite_with_a_to_tag_whose_forward_failed_is_absorbed(screen):
    """An INVITE with a To tag (of a dialog the screen never saw answered: judged as a new call) goes where its
    Request-URI says, here a port with nothing listening."""
    uac, hop, port = _udp(5.0), None, _dead_port()
    try:
        inv = _to(invite(call_id="unsent-acked", via_port=uac.getsockname()[1]).replace(
            b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=theirs"), port)
        uac.sendto(inv, ("127.0.0.1", screen.port))
        r = parse_datagram(uac.recv(65535))
        assert r.status == 503 and r.get("to").endswith(";tag=theirs")     # §8.2.6.2: the tag it came with
        hop = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        hop.bind(("127.0.0.1", port))                   # the next hop is up again
        uac.sendto(ack_of(inv, "theirs").replace(b";tag=theirs;tag=theirs", b";tag=theirs"), ("127.0.0.1", screen.port))
        uac.sendto(inv, ("127.0.0.1", screen.port))     # a retransmission: its 503 again, after the ACK was handled
        assert _status(uac) == (503, "1 INVITE")
        hop.setblocking(False)
        with pytest.raises(BlockingIOError):            # the ACK was not sent on
            hop.recv(65535)
    finally:
        uac.close()
        if hop is not None:
            hop.close()


@pytest.mark.parametrize("reader", ["pump", "python"])
def test_a_cancel_sent_over_udp_behind_a_failed_tcp_connect_is_answered_for_its_icmp_error(tmp_path, reader):
    """A large INVITE tries TCP first; the hop's TCP accept queue is full, so the connect hangs (TCP_CONNECT, 2 s) and
    the INVITE's CANCEL waits behind it. The connect fails: both go over UDP, where nothing listens."""
    from engine.sip_screen.transport import Pump
    if reader == "pump" and Pump is None:
        pytest.skip("C extension not built")
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fill = []
    for _ in range(4):                                  # the accept queue full: the screen's SYN goes unanswered
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fill.append(c)
    h = SipHarness(build(data_dir=tmp_path, with_model=False, persist=False),
                   SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{port}",
                               allow_networks=["127.0.0.0/8"])).start()
    if reader == "python":
        def python_reader():
            h.screen.fast_path = False
            h.screen.udp.refresh()
        h.run(python_reader)
    uac = _udp(6.0)
    try:
        inv = invite(call_id="large-cancelled", via_port=uac.getsockname()[1], extra=["X-Pad: " + "p" * 1500])
        uac.sendto(inv, ("127.0.0.1", h.port))
        deadline = time.monotonic() + 2.0
        while not h.screen.tcp_connecting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert h.screen.tcp_connecting                  # the INVITE waits for its connect
        uac.sendto(cancel_of(inv), ("127.0.0.1", h.port))
        got = sorted((_status(uac), _status(uac)))
        assert got == [(200, "1 CANCEL"), (503, "1 INVITE")]
        assert h.screen.stats["next_hop_unreachable"] == 2
    finally:
        uac.close()
        h.stop()
        lst.close()
        for c in fill:
            c.close()
