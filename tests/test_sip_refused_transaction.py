"""The rest of an INVITE transaction the screen answered itself with a rejection (RFC 3261 §9.2, §17.1.1.3): its
CANCEL is answered 200 by the screen, and the ACK of its final is absorbed, whatever To tag the final carried --
neither is sent on to the next hop, which never saw the INVITE. Over the C pump (and the Python fast path it hands
ACKs to) and over the full parse. Before, both were forwarded: the CANCEL went to the configured next hop, which
answered it 481 (a sipp callee counted it as a failed call), and the ACK of a refused INVITE that had a To tag (a
re-INVITE of a dialog the screen does not know, judged as a new call: its 608 keeps the caller's To tag, §8.2.6.2)
was sent on as an in-dialog request."""
import socket

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.harness import SipHarness
from engine.sip_screen import transport
from engine.sip_screen.server import SipSettings

BLOCKED = "0987000666"          # on the blacklist: every call from it is refused 608


def _udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(3)
    return s


@pytest.fixture(params=["pump", "python_fast_path", "full_parse"])
def screen(tmp_path, request, monkeypatch):
    """A screen whose next hop is a UAS on 127.0.0.1, read by the C pump (which hands ACKs it cannot decide to the
    Python fast path), by the Python reader and fast path, or with every message through the full parse."""
    if request.param == "pump" and transport.Pump is None:
        pytest.skip("C extension not built")
    if request.param != "pump":
        monkeypatch.setattr(transport, "Pump", None)
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", f"kind,value\nnumber,{BLOCKED}\n".encode())
    cli, uas = _udp(), _udp()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}",
                    allow_networks=["127.0.0.0/8"])
    h = SipHarness(build(data_dir=d, with_model=False, persist=False), s).start()
    if request.param == "full_parse":
        async def full():
            h.screen.fast_path = False
            h.screen.udp.refresh()
        h.call(full())
    assert (h.screen.udp.pump is not None) == (request.param == "pump")
    yield h, cli, uas
    h.stop()
    cli.close()
    uas.close()


def _request(method, cli, branch, call_id, caller, cseq=1, to_tag=None, screen_port=None):
    """A request from the caller `cli`; its Request-URI names the screen when `screen_port` is given (as sipp's
    built-in uac does: an in-dialog one then goes to the next hop, routing._in_dialog_dest)."""
    host = f"127.0.0.1:{screen_port}" if screen_port else "127.0.0.1"
    to = "<sip:0912345678@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    extra = f"Contact: <sip:{caller}@127.0.0.1:{cli.getsockname()[1]}>\r\n" if method == "INVITE" else ""
    return (f"{method} sip:0912345678@{host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{cli.getsockname()[1]};branch=z9hG4bK{branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{caller}@127.0.0.1>;tag=from1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def _next_hop_gets_only(h, cli, uas, marker_branch):
    """What the next hop receives first after the requests sent before: an OPTIONS sent last (the screen reads one
    socket in order, so anything forwarded before it would arrive first)."""
    cli.sendto(_request("OPTIONS", cli, marker_branch, "marker", "0901234567"), ("127.0.0.1", h.port))
    return parse_datagram(uas.recv(65535))


def test_a_cancel_of_a_refused_invite_is_answered_here(screen):
    h, cli, uas = screen
    cli.sendto(_request("INVITE", cli, "c1", "cancel1", BLOCKED), ("127.0.0.1", h.port))
    r = parse_datagram(cli.recv(65535))
    assert r.status == 608
    cli.sendto(_request("CANCEL", cli, "c1", "cancel1", BLOCKED), ("127.0.0.1", h.port))
    c = parse_datagram(cli.recv(65535))
    assert (c.status, c.get("cseq")) == (200, "1 CANCEL")
    assert c.get("to") == r.get("to")                   # the tag of the screen's own answer (§9.2)
    first = _next_hop_gets_only(h, cli, uas, "m1")
    assert first.method == "OPTIONS"                    # the CANCEL was not sent on


def test_the_ack_of_a_refused_invite_with_a_to_tag_is_absorbed(screen):
    h, cli, uas = screen
    cli.sendto(_request("INVITE", cli, "a1", "ack1", BLOCKED, to_tag="made-up", screen_port=h.port), ("127.0.0.1", h.port))
    r = parse_datagram(cli.recv(65535))
    assert r.status == 608 and r.get("to").endswith(";tag=made-up")
    assert h.screen.stats["reinvite_unknown_dialog"] == 1
    cli.sendto(_request("ACK", cli, "a1", "ack1", BLOCKED, to_tag="made-up", screen_port=h.port), ("127.0.0.1", h.port))
    first = _next_hop_gets_only(h, cli, uas, "m2")
    assert first.method == "OPTIONS"                    # the ACK was not sent on


def test_a_cancel_and_ack_of_another_transaction_still_go_on(screen):
    """Only the refused INVITE's own branch is absorbed: a CANCEL on a branch the screen never answered is relayed
    as before (a stateless proxy's CANCEL, §16.10)."""
    h, cli, uas = screen
    cli.sendto(_request("INVITE", cli, "o1", "other1", BLOCKED), ("127.0.0.1", h.port))
    assert parse_datagram(cli.recv(65535)).status == 608
    cli.sendto(_request("CANCEL", cli, "o2", "other1", BLOCKED), ("127.0.0.1", h.port))
    assert parse_datagram(uas.recv(65535)).method == "CANCEL"


def _no_branch(data: bytes) -> bytes:
    """An RFC 2543 request: its Via without a branch (RFC 3261 §17.2.3 names its transaction by the other fields)."""
    head, sep, rest = data.partition(b";branch=")
    return head + rest[rest.index(b";"):]


def test_an_rfc_2543_invites_cancel_and_ack_keep_its_transaction(screen):
    """An INVITE with no Via branch: its CANCEL when the screen refused it is answered here, and when it went on, the
    ACK of its non-2xx final carries its branch to where it went (§17.1.1.3: the next hop's INVITE server
    transaction takes it; on another branch it resent its 487 until Timer H). Before, both named it by the branch it
    does not have: the CANCEL of a 608 went to the next hop, which never saw the INVITE, and the ACK left on a branch of
    its own (its To tag in the branch's key)."""
    h, cli, uas = screen
    cli.sendto(_no_branch(_request("INVITE", cli, "x", "nb-refused", BLOCKED)), ("127.0.0.1", h.port))
    assert parse_datagram(cli.recv(65535)).status == 608
    cli.sendto(_no_branch(_request("CANCEL", cli, "x", "nb-refused", BLOCKED)), ("127.0.0.1", h.port))
    assert parse_datagram(cli.recv(65535)).status == 200
    assert _next_hop_gets_only(h, cli, uas, "m4").method == "OPTIONS"  # the CANCEL was not sent on
    cli.sendto(_no_branch(_request("INVITE", cli, "x", "nb-sent", "0901234567")), ("127.0.0.1", h.port))
    inv = parse_datagram(uas.recv(65535))
    assert inv.method == "INVITE"
    cli.sendto(_no_branch(_request("ACK", cli, "x", "nb-sent", "0901234567", to_tag="callee1")), ("127.0.0.1", h.port))
    ack = parse_datagram(uas.recv(65535))
    assert ack.method == "ACK" and ack.values("via")[0] == inv.values("via")[0]
