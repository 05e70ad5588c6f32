"""A request other than an INVITE (a BYE, INFO, CANCEL, OPTIONS, MESSAGE ...) forwarded over UDP to a next hop
that answers ICMP port unreachable is answered 503, once, like an INVITE (engine/sip_screen/unreachable.py;
RFC 3261 §16.7 step 10, §16.9: a transport error on forwarding is taken as a 503). Before, only INVITEs were:
the others were left to their senders' Timer F (32 s), a BYE the C pump relayed itself included. An ACK and a
response are never answered. Real UDP sockets on 127.0.0.1: a port nobody listens on gives ICMP port unreachable."""
import time

import pytest

from engine.app import build
from engine.sip_screen import transport
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.sip_screen.transport import Pump

from .sip_helpers import invite
from .test_sip_unreachable_hop import _answer, _dead_port, _to, _udp

READERS = ["pump", "python-fast", "python-full"]


@pytest.fixture(params=READERS)
def screen(request, tmp_path, monkeypatch):
    """A screen with no next hop (a request goes where its Request-URI says), read by the C pump, by the Python
    reader with its fast path (no C extension), or by the Python reader parsing everything."""
    if request.param == "pump" and Pump is None:
        pytest.skip("C extension not built")
    h = SipHarness(build(data_dir=tmp_path, with_model=False, persist=False),
                   SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"])).start()
    if request.param != "pump":
        monkeypatch.setattr(transport, "Pump", None)

        def python_reader():
            h.screen.fast_path = request.param == "python-fast"
            h.screen.udp.refresh()
        h.run(python_reader)
    assert (h.screen.udp.pump is not None) == (request.param == "pump")
    try:
        yield h
    finally:
        h.stop()


def request(method: str, port: int, me: int, call_id: str, in_dialog: bool, branch: str = "z9hG4bK-rq1") -> bytes:
    """`method` to 127.0.0.1:`port` (its Request-URI) from a UA on port `me`; `in_dialog`: with a To tag."""
    cseq = 1 if method == "CANCEL" else 2
    return (f"{method} sip:0912345678@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=a1\r\n"
            f"To: <sip:0912345678@127.0.0.1>{';tag=b1' if in_dialog else ''}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n").encode()


def _answers(uac, wait=0.6) -> list:
    """Every datagram the UA gets until none comes for `wait` seconds."""
    got, uac_timeout = [], uac.gettimeout()
    uac.settimeout(wait)
    try:
        while True:
            a = _answer(uac)
            if not a:
                return got
            got.append(a)
    finally:
        uac.settimeout(uac_timeout)


@pytest.mark.parametrize("method,in_dialog", [("BYE", True), ("INFO", True), ("UPDATE", True), ("OPTIONS", False),
                                              ("MESSAGE", False), ("CANCEL", False), ("REGISTER", False)])
def test_a_request_to_a_udp_hop_with_nothing_listening_is_answered_503(screen, method, in_dialog):
    uac = _udp()
    try:
        me, cid = uac.getsockname()[1], f"dead-{method.lower()}"
        uac.sendto(request(method, _dead_port(), me, cid, in_dialog), ("127.0.0.1", screen.port))
        data = _answer(uac)
        assert data.startswith(b"SIP/2.0 503"), data[:60]
        assert b"unreachable" in data and f"Call-ID: {cid}".encode() in data
        assert f"CSeq: {1 if method == 'CANCEL' else 2} {method}".encode() in data
        assert b"branch=z9hG4bK-rq1" in data and b"z9hG4bKtf" not in data      # our Via taken off
        st = screen.screen.stats
        assert st["next_hop_unreachable"] == 1 and st["icmp_errors"] >= 1
    finally:
        uac.close()


def test_a_bye_the_pump_relays_itself_is_answered_503(screen):
    """The in-dialog BYE is relayed by the C pump without a Python call (fast_path counted), kept in its ring."""
    if screen.screen.udp.pump is None:
        pytest.skip("the C pump's own relay")
    uac = _udp()
    try:
        uac.sendto(request("BYE", _dead_port(), uac.getsockname()[1], "pump-bye", True), ("127.0.0.1", screen.port))
        assert _answer(uac).startswith(b"SIP/2.0 503")
        assert screen.screen.stats["fast_path"] == 1 and screen.screen.unreachable_watch == {}
    finally:
        uac.close()


@pytest.mark.parametrize("method,in_dialog", [("BYE", True), ("OPTIONS", False)])
def test_copies_of_a_request_read_before_its_icmp_error_are_answered_once(screen, method, in_dialog):
    """The sender's retransmission, read in the round its first copy was forwarded in (so before the ICMP errors
    about either are read), is forwarded on the same branch: the two errors answer it once."""
    uac = _udp()
    try:
        one = request(method, _dead_port(), uac.getsockname()[1], "copies", in_dialog)
        screen.run(lambda: (uac.sendto(one, ("127.0.0.1", screen.port)), uac.sendto(one, ("127.0.0.1", screen.port))))
        got = _answers(uac)
        assert [a[:11] for a in got] == [b"SIP/2.0 503"], got
        st = screen.screen.stats
        assert st["next_hop_unreachable"] == 1 and st["icmp_errors"] == 2
        uac.sendto(one, ("127.0.0.1", screen.port))             # a copy after the 503 (it was lost): the same 503
        assert _answer(uac) == got[0]
    finally:
        uac.close()


def test_an_invite_and_its_cancel_to_a_dead_hop_are_each_answered_once(screen):
    """The CANCEL has its INVITE's branch (§9.1): each keeps its own place in the watch, each is answered once: the
    INVITE 503, the CANCEL, whose ICMP error comes after its INVITE has that final, 200 (§9.2: the screen answered
    the INVITE, so it is the UAS of that transaction; it used to be 503 too)."""
    uac = _udp()
    try:
        dead, me = _dead_port(), uac.getsockname()[1]
        inv = _to(invite(call_id="inv-cancel", via_port=me), dead)
        branch = inv.split(b";branch=", 1)[1].split(b";", 1)[0].decode()
        cancel = request("CANCEL", dead, me, "inv-cancel", False, branch)
        cancel = cancel.replace(b"From: <sip:0901234567@127.0.0.1>;tag=a1", b'From: "Caller" <sip:0901234567@127.0.0'
                                b'.1>;tag=abc')
        screen.run(lambda: (uac.sendto(inv, ("127.0.0.1", screen.port)), uac.sendto(cancel, ("127.0.0.1", screen.port))))
        got = _answers(uac, 1.0)
        answered = sorted((a.split(b"CSeq: 1 ", 1)[1].split(b"\r\n", 1)[0], a.split(b" ", 2)[1]) for a in got)
        assert answered == [(b"CANCEL", b"200"), (b"INVITE", b"503")], got
        assert screen.screen.stats["next_hop_unreachable"] == 2
    finally:
        uac.close()


def test_an_ack_or_a_response_to_a_dead_hop_is_not_answered(screen):
    uac = _udp()
    try:
        dead, me = _dead_port(), uac.getsockname()[1]
        ack = request("ACK", dead, me, "dead-ack", True).replace(b"CSeq: 2 ACK", b"CSeq: 1 ACK")
        resp = (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:{screen.port};branch=z9hG4bKtf0123456789abcdef0123;rport"
                f"\r\nVia: SIP/2.0/UDP 127.0.0.1:{dead};branch=z9hG4bK-r\r\nFrom: <sip:a@127.0.0.1>;tag=a\r\n"
                "To: <sip:b@127.0.0.1>;tag=b\r\nCall-ID: dead-resp\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode()
        uac.sendto(ack, ("127.0.0.1", screen.port))
        uac.sendto(resp, ("127.0.0.1", screen.port))
        assert _answers(uac) == []
        deadline = time.monotonic() + 2
        while screen.screen.stats["icmp_errors"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        st = screen.screen.stats
        assert st["icmp_errors"] == 2 and st["next_hop_unreachable"] == 0
    finally:
        uac.close()


def test_the_watch_keeps_at_most_watch_requests_each_for_watch_s():
    from engine.sip_screen.unreachable import WATCH, WATCH_S, Watch
    w, now = Watch(), 100.0
    for k in range(WATCH + 500):
        w.put((b"", None, None, None, now + WATCH_S, f"BYE b{k}"), now)
    assert len(w) == WATCH and "BYE b499" not in w and f"BYE b{WATCH + 499}" in w
    w.put((b"", None, None, None, now + 1 + WATCH_S, "BYE b1000"), now + 1)       # a copy: put again, last
    assert len(w) == WATCH - 1 and len(w.order) == WATCH    # (the oldest made room; b1000's first place stale)
    w.put((b"", None, None, None, now + 2 * WATCH_S, "OPTIONS late"), now + WATCH_S)   # the rest expired
    assert set(w) == {"BYE b1000", "OPTIONS late"} and len(w.order) == 2


def test_the_pump_keeps_at_most_pump_watch_relayed_requests_and_each_copy_answers_once(tmp_path):
    if Pump is None:
        pytest.skip("C extension not built")
    from engine.sip_screen.settings import BRANCH_PREFIX
    from engine.sip_screen.transport import make_pump
    from engine.sip_screen.unreachable import WATCH

    from .sip_helpers import offline_screen
    scr = offline_screen(build(data_dir=tmp_path, with_model=False, persist=False))
    sent = []
    pump = make_pump(scr, -1, lambda data, addr: sent.append(data))

    def relay(k):
        bye = request("BYE", 5070, 5080, f"ring-{k}", True, f"z9hG4bK-{k}")
        pump.handle(bye, ("127.0.0.1", 5080))
        return bye, sent[-1].split(b"branch=" + BRANCH_PREFIX.encode(), 1)[1][:20].decode()
    first, b0 = relay(0)
    pump.handle(first, ("127.0.0.1", 5080))                 # a copy, relayed again on its branch
    assert pump.unreachable(b0) == (first, ("127.0.0.1", 5080))
    assert pump.unreachable(b0) is None                     # both copies answered once
    again, b1 = relay(1)
    for k in range(2, WATCH + 2):                           # the ring holds WATCH: the oldest one is let go
        _, last = relay(k)
    assert len(sent) == WATCH + 3 and scr.stats["fast_path"] == WATCH + 3
    assert pump.unreachable(b1) is None and pump.unreachable(last) is not None
    assert pump.unreachable("not-a-branch") is None and pump.unreachable(b"x" * 20) is None
