"""The in-dialog fast paths (fastpath.py_in_dialog, its C version and the C pump) with a Route: with
`record_route` on, every in-dialog request comes back with a Route naming us (RFC 3261 §16.12, loose routing
§16.4). One Route header whose only value is byte for byte the Record-Route we wrote (proxying._screened:
`<sip:HOST:PORT;transport=udp;lr>`) is removed by the fast paths as by the full parse (routing._destination),
and the request goes by its Request-URI (§16.6 step 6); any other Route (two, a foreign one, other parameters, a
strict router's without `lr`, two values in one header, another case) is the full parse's. Each path is compared
with the full parse byte for byte, on these requests and on mutations of them."""
from __future__ import annotations

import random

import pytest

from engine.app import build
from engine.sip_screen import fastpath
from engine.sip_screen.settings import TAG_PREFIX
from engine.sip_screen.transport import Pump, make_pump

from .sip_helpers import UAC, offline_screen
from .test_sip_fuzz import check_screen, full_screen, mutate, norm

OUR_RR = b"<sip:127.0.0.1:5060;transport=udp;lr>"           # what offline_screen writes as Record-Route over UDP


def request(method: bytes, cseq: int, routes=(OUR_RR,), at: int = 1, body: bytes = b"") -> bytes:
    """An in-dialog request from the callee's side as a UA sends it after a Record-Route of ours: one line per
    Route value in `routes`, put after header line `at` (0: before the top Via)."""
    lines = [b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-r%d;rport" % cseq, b"Max-Forwards: 70",
             b"From: <sip:0912345678@127.0.0.1>;tag=uas1", b'To: "A" <sip:0901234567@127.0.0.1>;tag=abc',
             b"Call-ID: c1@127.0.0.1", b"CSeq: %d %s" % (cseq, method), b"Contact: <sip:0912345678@127.0.0.1:5070>",
             b"Content-Length: %d" % len(body)]
    lines[at:at] = [b"Route: " + r for r in routes]
    return b"%s sip:0901234567@127.0.0.1:5080 SIP/2.0\r\n" % method + b"\r\n".join(lines) + b"\r\n\r\n" + body


# the Route a fast path takes: ours, anywhere among the headers, in any header-name case
TAKEN = [request(m, n, at=at) for n, (m, at) in enumerate([(b"PRACK", 0), (b"UPDATE", 1), (b"INFO", 3),
                                                          (b"BYE", 8), (b"ACK", 5)], 2)] + [
    request(b"INFO", 9, body=b"Signal=1\r\nDuration=160\r\n").replace(b"Route:", b"ROUTE :"),
    request(b"UPDATE", 10, routes=[OUR_RR.replace(b"udp", b"tcp")]),      # came by TCP, the Record-Route says so
]
# the Routes left to the full parse (it may still remove some of them: then both must agree)
LEFT = [request(b"INFO", 20, routes=r) for r in [
    [OUR_RR, OUR_RR],                                       # two Route headers
    [OUR_RR + b", <sip:10.0.0.9;lr>"],                      # two values in one header
    [b"<sip:10.0.0.9:5060;lr>"], [b"<sip:127.0.0.1:5070;transport=udp;lr>"],    # not ours: another host / port
    [b"<sip:127.0.0.1:5060;lr>"], [b"<sip:127.0.0.1;transport=udp;lr>"],        # ours in other forms
    [b"<sip:127.0.0.1:5060;transport=udp;lr;ftag=x>"], [b"<sip:127.0.0.1:5060;transport=UDP;lr>"],
    [b"<SIP:127.0.0.1:5060;transport=udp;lr>"], [b"<sip:127.0.0.1:5060;transport=udp;LR>"],
    [b"<sip:127.0.0.1:5060;transport=udp>"],               # a strict router's (no lr, §16.4 / §16.6 step 6)
    [b"<sip:127.0.0.1:5060;transport=sctp;lr>"], [b'"us" ' + OUR_RR], [OUR_RR + b" "],
    [b"<sip:a@127.0.0.1:5060;transport=udp;lr>"],
]] + [request(b"INFO", 21).replace(b"Max-Forwards: 70", b"Max-Forwards: 70\r\nRecord-Route: " + OUR_RR)]
OURS = tuple(f"SIP/2.0/{t} 127.0.0.1:5060;branch=z9hG4bKtf".encode() for t in ("UDP", "TCP"))
# what the mutations insert besides fuzz's own odd bytes: Route lines and pieces of them
ROUTE_BITS = [b"Route: " + OUR_RR + b"\r\n", b"Route: <sip:127.0.0.1:5060;lr>\r\n", b";lr", b";transport=tcp",
              b"127.0.0.1:5060", b"Route: " + OUR_RR + b", " + OUR_RR + b"\r\n", b"rOute:", b"<", b">"]


def route_mutate(data: bytes, rnd: random.Random, n: int) -> bytes:
    """fuzz's mutations, and Route lines or pieces of them put anywhere"""
    data = mutate(data, rnd, n)
    for _ in range(rnd.randrange(2)):
        i = rnd.randrange(len(data) + 1)
        data = data[:i] + rnd.choice(ROUTE_BITS) + data[i:]
    return data


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return build(data_dir=tmp_path_factory.mktemp("routedata"))


def python_fast(scr, data: bytes) -> bool:
    """The Python fast path as on_datagram runs it (the same guards), given our Vias' starts: whether it took
    `data` (its sends in scr.udp.out)."""
    scr.udp.out.clear()
    r = fastpath.py_in_dialog(data, *UAC, scr.via_prefixes)
    if r is fastpath.FULL_PARSE or (r.method == "ACK" and r.to_tag.startswith(TAG_PREFIX)) or scr._over_udp_max(r):
        return False
    scr._in_dialog(r, data, UAC)
    return True


def test_fast_paths_take_an_in_dialog_request_whose_only_route_is_ours(pipe):
    """Ours alone: both fast paths take it, the C pump relays it itself, and all send what the full parse sends,
    byte for byte (the Route gone, our Via on top, Max-Forwards 69, to the Request-URI)."""
    for data in TAKEN:
        full = full_screen(pipe)
        full.on_datagram(data, UAC)
        (sent, dest), = full.udp.out
        assert b"route" not in sent.lower() and dest == ("127.0.0.1", 5080) and b"Max-Forwards: 69\r\n" in sent
        scr = offline_screen(pipe)
        assert python_fast(scr, data), data
        assert scr.udp.out == full.udp.out, data                            # byte for byte
        if fastpath._c_in_dialog is not None:
            assert fastpath._c_in_dialog(data, *UAC, OURS) == fastpath.py_in_dialog(data, *UAC, OURS).astuple()
        if Pump is not None:
            scr = offline_screen(pipe)
            handed = []
            scr.on_datagram = lambda d, a: handed.append(d)
            make_pump(scr, -1, scr.udp.sendto).handle(data, UAC)
            assert handed == [] and scr.udp.out == full.udp.out, data


def test_on_datagram_takes_our_route_on_the_python_fast_path(pipe):
    """As serve runs without the C pump: on_datagram hands the screen's own Vias' starts to in_dialog, so a request
    whose only Route is ours takes the fast path there too (it took the full parse: no `ours` given), and sends
    what the full parse sends."""
    for data in TAKEN:
        full = full_screen(pipe)
        full.on_datagram(data, UAC)
        scr = offline_screen(pipe)
        before = scr.stats["fast_path"]
        scr.on_datagram(data, UAC)
        assert scr.stats["fast_path"] == before + 1, data
        assert scr.udp.out == full.udp.out, data


def test_any_other_route_is_left_to_the_full_parse(pipe):
    """Two Routes, two values, a foreign one, ours in any other form: neither fast path decides; through the pump
    and through on_datagram the screen sends what the full parse sends."""
    for data in LEFT:
        assert fastpath.py_in_dialog(data, *UAC, OURS) is fastpath.FULL_PARSE, data
        if fastpath._c_in_dialog is not None:
            assert fastpath._c_in_dialog(data, *UAC, OURS) is None, data
        check_screen(offline_screen(pipe), data, full_screen(pipe))
        if Pump is not None:
            scr = offline_screen(pipe)
            scr.pump = make_pump(scr, -1, scr.udp.sendto)
            check_screen(scr, data, full_screen(pipe))


def test_without_our_address_no_route_is_taken():
    """A caller that does not say who we are (no `ours`) gets the full parse for any Route, as before."""
    for data in TAKEN:
        assert fastpath.py_in_dialog(data, *UAC) is fastpath.FULL_PARSE
        if fastpath._c_in_dialog is not None:
            assert fastpath._c_in_dialog(data, *UAC) is None


@pytest.mark.skipif(fastpath._c_in_dialog is None, reason="C extension not built")
def test_c_in_dialog_agrees_with_python_on_routed_requests():
    """Where the C version decides, it answers what the Python one answers, on mutated Route-bearing requests."""
    rnd = random.Random(3261_16)
    decided = routed = 0
    for i in range(20000):
        data = route_mutate(rnd.choice(TAKEN + LEFT), rnd, rnd.randrange(0, 3))
        src = rnd.choice([UAC, ("10.0.0.3", 5062), ("::1", 5080)])
        c = fastpath._c_in_dialog(data, *src, OURS)
        if c is not None:
            decided += 1
            routed += b"route" in data.lower()
            py = fastpath.py_in_dialog(data, *src, OURS)
            assert py is not None and c == py.astuple(), (data, src)
    assert decided > 1000 and routed > 1000, (decided, routed)


def test_fast_paths_agree_with_the_full_parse_on_mutated_routed_requests(pipe):
    """Mutations of Route-bearing requests (bounded: 1,500): the Python fast path, when it takes one, sends what the
    full parse sends; the C pump (fed everything, handing the rest to Python) sends what the full parse sends."""
    rnd = random.Random(1604)
    scr, full = offline_screen(pipe), full_screen(pipe)
    pscr = offline_screen(pipe)
    if Pump is not None:
        pscr.pump = make_pump(pscr, -1, pscr.udp.sendto)
    taken = 0
    for i in range(1500):
        data = route_mutate(rnd.choice(TAKEN if i % 3 else LEFT), rnd, rnd.randrange(0, 3))
        check_screen(pscr, data, full)                          # (full.udp.out now holds the full parse's sends)
        if python_fast(scr, data):
            taken += 1
            assert [norm(d, a) for d, a in scr.udp.out] == [norm(d, a) for d, a in full.udp.out], data
    assert taken > 200, taken


def test_an_advertised_name_in_capitals_keeps_the_fast_paths(tmp_path):
    """`advertise = "Screen.EXAMPLE"`: the name our Via and Record-Route carry is the name the fast paths know us by
    (via_prefixes), so the callee's 200 to our Via and an in-dialog INFO whose only Route is our Record-Route both
    take the fast path (they took the full parse: our Via and Route kept the capitals, via_prefixes had the name in
    lower case; a host name's case does not matter, RFC 3261 §19.1.4)."""
    import shutil
    import socket

    from engine.sip_screen.harness import SipHarness
    from engine.sip_screen.server import SipSettings

    from .conftest import CONFIG
    from .test_kamailio_interop import ALLOWED
    uas, uac = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (uas, uac):
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
    uas_port, uac_port = uas.getsockname()[1], uac.getsockname()[1]
    shutil.copytree(CONFIG, tmp_path / "config")
    h = SipHarness(build(tmp_path / "config", tmp_path / "data"), SipSettings(
        listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas_port}", allow_networks=["127.0.0.0/8"], record_route=True,
        advertise="Screen.EXAMPLE")).start()

    def req(method, cseq, to_tag="", route=""):
        return (f"{method} sip:0912345678@127.0.0.1:{uas_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{uac_port};branch=z9hG4bK-c{cseq};rport\r\n{route}Max-Forwards: 70\r\n"
                f"From: <sip:{ALLOWED}@127.0.0.1>;tag=a\r\nTo: <sip:0912345678@127.0.0.1>{to_tag}\r\n"
                f"Call-ID: caps-1\r\nCSeq: {cseq} {method}\r\nContact: <sip:{ALLOWED}@127.0.0.1:{uac_port}>\r\n"
                f"Content-Length: 0\r\n\r\n").encode()

    def answer(data):
        keep = [ln for ln in data.decode().split("\r\n")
                if ln.split(":")[0].lower() in ("via", "from", "call-id", "cseq")]
        return ("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nTo: <sip:0912345678@127.0.0.1>;tag=b\r\n"
                "Content-Length: 0\r\n\r\n").encode()
    try:
        uac.sendto(req("INVITE", 1), ("127.0.0.1", h.port))
        data, src = uas.recvfrom(65535)
        rr = [ln for ln in data.split(b"\r\n") if ln.startswith(b"Record-Route:")]
        assert len(rr) == 1, data
        for step, (ask, frm, to) in enumerate([(None, uas, uac), (req("INFO", 2, ";tag=b", rr[0][7:].decode() + "\r\n"),
                                                                  uac, uas), (None, uas, uac)]):
            before = h.screen.stats["fast_path"]
            if ask is None:
                frm.sendto(answer(data), src)                       # the callee's 200, to our Via
            else:
                uac.sendto(ask, ("127.0.0.1", h.port))              # by the route set: our Route alone
            data, src = to.recvfrom(65535)
            assert data.startswith(b"SIP/2.0 200" if ask is None else b"INFO ") and b"\r\nRoute:" not in data, data
            assert h.screen.stats["fast_path"] == before + 1, (step, data)
    finally:
        h.stop()
        uas.close()
        uac.close()


def test_an_in_dialog_request_to_the_screen_itself_goes_to_the_next_hop(pipe):
    """No Route and a Request-URI naming the screen (sipp's built-in uac sends its ACK and BYE so): it goes to the
    next hop, as the INVITE did, not to that URI (back to the screen, where the loop check answered the BYE 482).
    The fast paths and the pump relay it there themselves when given the next hop (the same bytes as the full
    path), and leave it to the full path without one. Another port of the same host is not the screen."""
    hop = ("127.0.0.1", 5070, "UDP")
    for m, n in ((b"BYE", 2), (b"ACK", 1), (b"INFO", 3)):
        data = request(m, n, routes=()).replace(b" sip:0901234567@127.0.0.1:5080 ", b" sip:0901234567@127.0.0.1:5060 ")
        assert fastpath.py_in_dialog(data, *UAC, OURS) is fastpath.FULL_PARSE, data
        r = fastpath.py_in_dialog(data, *UAC, OURS, hop)
        assert r is not fastpath.FULL_PARSE and r.dest == hop, data
        if fastpath._c_in_dialog is not None:
            assert fastpath._c_in_dialog(data, *UAC, OURS) is None, data
            assert fastpath._c_in_dialog(data, *UAC, OURS, hop) == r.astuple()
            assert fastpath._c_in_dialog(data, *UAC, OURS, None) is None
        out = []
        for scr in (full_screen(pipe), offline_screen(pipe)):              # the full parse; on_datagram's fast path
            scr.on_datagram(data, UAC)
            (sent, dest), = scr.udp.out
            assert dest == ("127.0.0.1", 5070) and sent.startswith(m + b" "), (m, sent[:40], dest)
            out.append(norm(sent, dest))
        assert out[0] == out[1], m                                         # the fast path's bytes are the full one's
        if Pump is not None:
            scr = offline_screen(pipe)
            make_pump(scr, -1, scr.udp.sendto).handle(data, UAC)
            (sent, dest), = scr.udp.out
            assert dest == ("127.0.0.1", 5070) and scr.stats["fast_path"] == 1, (m, dest, scr.stats)
            assert norm(sent, dest) == out[0], m
        other = data.replace(b"@127.0.0.1:5060 ", b"@127.0.0.1:5061 ")
        if fastpath._c_in_dialog is not None:
            assert fastpath._c_in_dialog(other, *UAC, OURS) == fastpath.py_in_dialog(other, *UAC, OURS).astuple()
            assert fastpath._c_in_dialog(other, *UAC, OURS, hop)[5] == ("127.0.0.1", 5061, "UDP")


def test_a_reloaded_next_hop_is_where_the_pump_sends_a_request_to_the_screen(pipe):
    """The pump keeps its own copy of the next hop: `ctl reload sip` that changes it rebuilds the pump
    (live_settings), so an in-dialog request to the screen itself goes to the new one."""
    from dataclasses import replace
    from types import SimpleNamespace

    from engine.sip_screen.live_settings import apply_sip_settings
    scr = offline_screen(pipe)
    refreshed = []
    scr.udp_endpoint = SimpleNamespace(loop=object(), refresh=lambda: refreshed.append(1))
    apply_sip_settings(scr, replace(scr.s, next_hop="127.0.0.1:5090"), {})
    assert refreshed == [1]
    data = request(b"BYE", 2, routes=()).replace(b" sip:0901234567@127.0.0.1:5080 ", b" sip:0901234567@127.0.0.1:5060 ")
    for handle in ([make_pump(scr, -1, scr.udp.sendto).handle] if Pump is not None else []) + [scr.on_datagram]:
        scr.udp.out.clear()
        handle(data, UAC)
        (sent, dest), = scr.udp.out
        assert dest == ("127.0.0.1", 5090), dest
