"""SIP codec and screen: RFC 4475 torture tests (rewritten to loopback), proxy rules, verdicts."""
import re
import socket
import time
from pathlib import Path

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.sip_screen.codec import SipParseError, parse_datagram
from engine.sip_screen.framing import StreamParser
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings

VEC = Path(__file__).parent / "vectors" / "sip"
HOST_RE = re.compile(rb"(?<![\w.-])(?:(?:[A-Za-z0-9-]+\.)+(?:com|net|org|edu|example)|\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?(?![\w-])")


def to_loopback(raw: bytes, client_port: int, route_port: int = 5060) -> bytes:
    """Rewrite every host in the header section to loopback: Via sent-by to our client's port,
    Route to the next hop's, everything else to 127.0.0.1. Folded lines keep their header.
    The body is left alone so Content-Length stays right. Nothing leaves this machine."""
    i = raw.find(b"\r\n\r\n")
    head, body = (raw[:i], raw[i:]) if i >= 0 else (raw, b"")
    lines, cur = [], b""
    for n, line in enumerate(head.split(b"\r\n")):
        if n and line[:1] not in (b" ", b"\t"):
            cur = line.split(b":", 1)[0].strip().lower()
        if n == 0:
            repl = b"127.0.0.1"
        elif cur in (b"via", b"v"):
            repl = b"127.0.0.1:%d" % client_port
        elif cur in (b"route", b"record-route"):
            repl = b"127.0.0.1:%d" % route_port
        else:
            repl = b"127.0.0.1"
        lines.append(HOST_RE.sub(repl, line))
    return b"\r\n".join(lines) + body


@pytest.fixture
def screen(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    pipe = build(data_dir=d)
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", 0))
    uas.settimeout(0.5)
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    h = SipHarness(pipe, s).start()
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.1", 0))
    cli.settimeout(0.5)
    yield h, cli, uas
    h.stop()
    cli.close()
    uas.close()


def recv(sock, timeout=0.5):
    sock.settimeout(timeout)
    try:
        return sock.recv(65535)
    except socket.timeout:
        return None


# (vector, expected): an int = the status the client must get; "fwd" = forwarded to the next hop; None = silence
EXPECT = {
    "wsinv": "fwd", "intmeth": "fwd", "esc01": "fwd", "lwsdisp": "fwd", "longreq": "fwd", "dblreq": "fwd",
    "transports": "fwd", "inv2543": "fwd", "badbranch": "fwd", "unreason": None, "bigcode": None,
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "quotbal": 400, "ltgtruri": 400,
    "lwsstart": 400, "badvers": 505, "mismatch01": 400, "insuf": 400, "unkscm": 416, "bext01": 420,
    "zeromf": 483, "multi01": 400,
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_rfc4475_reaction_over_udp(screen, name):
    h, cli, uas = screen
    raw = to_loopback((VEC / f"{name}.dat").read_bytes(), cli.getsockname()[1], uas.getsockname()[1])
    head = raw.split(b"\r\n\r\n")[0]
    assert b"example" not in head.lower() and not re.search(rb"192\.|10\.\d", head)
    cli.sendto(raw, ("127.0.0.1", h.port))
    want = EXPECT[name]
    got_cli, got_uas = recv(cli), recv(uas, 0.3 if want != "fwd" else 0.5)
    if want == "fwd":
        assert got_uas is not None and got_cli is None
        fwd = parse_datagram(got_uas)
        top = fwd.values("via")[0]
        assert "127.0.0.1:%d" % h.port in top and "branch=z9hG4bKtf" in top
        mf = fwd.get("max-forwards")
        orig = parse_datagram(raw).get("max-forwards")
        assert int(mf) == (int(orig) - 1 if orig else 70)
    elif want is None:
        assert got_cli is None and got_uas is None
    else:
        assert got_uas is None, "an invalid request must never be forwarded"
        r = parse_datagram(got_cli)
        assert r.status == want, (r.status, r.reason)
        if want == 420:
            assert "noProxiesSupportThis" in r.get("unsupported")
    # and the screen still serves
    ok = to_loopback((VEC / "wsinv.dat").read_bytes(), cli.getsockname()[1], uas.getsockname()[1])
    cli.sendto(ok, ("127.0.0.1", h.port))
    assert recv(uas) is not None


def test_dblreq_only_first_request_is_processed(screen):
    h, cli, uas = screen
    cli.sendto(to_loopback((VEC / "dblreq.dat").read_bytes(), cli.getsockname()[1]), ("127.0.0.1", h.port))
    first = parse_datagram(recv(uas))
    assert first.method == "REGISTER"
    assert recv(uas, 0.3) is None


def test_stream_framing_and_conflicting_content_length():
    p = StreamParser()
    msg = (VEC / "esc01.dat").read_bytes()
    p.feed(msg[:50])
    assert p.next() is None
    p.feed(msg[50:] + msg)
    a, b = p.next(), p.next()
    assert a.method == b.method == "INVITE" and len(a.body) == 150 and p.next() is None
    bad = b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\nl: 5\r\n\r\nhello"
    with pytest.raises(SipParseError) as ei:
        parse_datagram(bad)
    assert ei.value.status == 400


INVITE = ("INVITE sip:{callee}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK{branch};rport\r\n"
          "Max-Forwards: 70\r\nFrom: \"Caller\" <sip:{caller}@127.0.0.1>;tag=abc\r\nTo: <sip:{callee}@127.0.0.1>\r\n"
          "Call-ID: {branch}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:{caller}@127.0.0.1:{cport}>\r\n"
          "Content-Length: 0\r\n\r\n")


def test_blacklisted_caller_gets_608_with_reason(screen):
    h, cli, uas = screen
    cli.sendto(INVITE.format(callee="0912345678", caller="0987000666", cport=cli.getsockname()[1], branch="bl1").encode(),
               ("127.0.0.1", h.port))
    r = parse_datagram(recv(cli))
    assert r.status == 608 and "SENDER_BLACKLISTED" in r.get("reason")
    assert "purpose=info" in r.get("call-info") and ";tag=tf" in r.get("to")
    assert recv(uas, 0.3) is None
    # the ACK for our 608 is absorbed, not forwarded
    ack = INVITE.format(callee="0912345678", caller="0987000666", cport=cli.getsockname()[1], branch="bl1")
    ack = ack.replace("INVITE sip", "ACK sip").replace("CSeq: 1 INVITE", "CSeq: 1 ACK").replace(
        "To: <sip:0912345678@127.0.0.1>", "To: " + r.get("to"))
    cli.sendto(ack.encode(), ("127.0.0.1", h.port))
    assert recv(uas, 0.3) is None


@pytest.mark.parametrize("caller", ["+84987000666;cpc=ordinary", "0987000666;npdi", "987000666;phone-context=+84",
                                    "+84987000666;rn=+84987000999;npdi"])
def test_a_number_with_parameters_in_the_user_part_is_still_the_number(screen, caller):
    """RFC 3261 §19.1.1 / RFC 3966: a telephone-subscriber user part carries its own ;parameters. The number
    before them is judged (it used to parse as no number at all, and every call rule was skipped)."""
    h, cli, uas = screen
    inv = INVITE.format(callee="0912345678", caller=caller, cport=cli.getsockname()[1], branch="np" + str(len(caller)))
    inv = inv.replace("INVITE sip:0912345678@127.0.0.1", "INVITE sip:0912345678;npdi@127.0.0.1;user=phone")
    cli.sendto(inv.encode(), ("127.0.0.1", h.port))
    r = parse_datagram(recv(cli))
    assert r.status == 608 and "SENDER_BLACKLISTED" in r.get("reason")
    assert recv(uas, 0.3) is None


def test_an_in_dialog_request_to_a_user_part_with_parameters_goes_to_its_host(screen):
    """A BYE to sip:0912345678;npdi@127.0.0.1:<port> goes to that port (it went to host "0912345678")."""
    h, cli, uas = screen
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    try:
        port = other.getsockname()[1]
        bye = (f"BYE sip:0912345678;npdi@127.0.0.1:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{cli.getsockname()[1]};branch=z9hG4bKnpbye;rport\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=a1\r\nTo: <sip:0912345678@127.0.0.1>;tag=b1\r\n"
               "Call-ID: npbye@127.0.0.1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
        cli.sendto(bye.encode(), ("127.0.0.1", h.port))
        got = parse_datagram(recv(other, 2.0))
        assert got.method == "BYE" and got.uri == f"sip:0912345678;npdi@127.0.0.1:{port}"
    finally:
        other.close()


def test_parse_uri_takes_the_userinfo_up_to_the_last_at():
    from engine.sip_screen.grammar import parse_uri
    u = parse_uri("sip:+842439998888;npdi;rn=+84243@10.0.0.5:5070;user=phone?Subject=x")
    assert (u.user, u.host, u.port, u.params) == ("+842439998888", "10.0.0.5", 5070, {"user": "phone"})
    u = parse_uri("sip:02439998888;phone-context=+84@example.net")
    assert (u.user, u.host, u.port) == ("+842439998888", "example.net", None)     # its global number
    u = parse_uri("sip:alice:secret@[::1]:5061;transport=tcp")
    assert (u.user, u.host, u.port, u.params) == ("alice", "::1", 5061, {"transport": "tcp"})
    u = parse_uri("sip:0987000666@127.0.0.1;x=@127.0.0.1")        # a stray '@' never hides the number
    assert (u.user, u.host) == ("0987000666", "127.0.0.1")
    u = parse_uri("sip:example.net;lr")
    assert (u.user, u.host, u.params) == ("", "example.net", {"lr": ""})
    assert parse_uri("tel:+84987000666;cpc=ordinary").user == "+84987000666"


def test_allowed_call_forwarded_and_response_relayed(screen):
    h, cli, uas = screen
    cli.sendto(INVITE.format(callee="0912345678", caller="0901234567", cport=cli.getsockname()[1], branch="ok1").encode(),
               ("127.0.0.1", h.port))
    data, addr = uas.recvfrom(65535)
    fwd = parse_datagram(data)
    vias = fwd.values("via")
    assert len(vias) == 2 and f"rport={cli.getsockname()[1]}" in vias[1]
    # the UAS answers to the top Via (the screen), which relays to the client
    resp = ("SIP/2.0 180 Ringing\r\n" + "".join(f"Via: {v}\r\n" for v in vias) +
            f"From: {fwd.get('from')}\r\nTo: {fwd.get('to')};tag=uas1\r\nCall-ID: {fwd.get('call-id')}\r\n"
            "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    uas.sendto(resp.encode(), ("127.0.0.1", h.port))
    r = parse_datagram(recv(cli))
    assert r.status == 180 and len(r.values("via")) == 1
    # a retransmission gets the same branch (stateless §16.11)
    cli.sendto(INVITE.format(callee="0912345678", caller="0901234567", cport=cli.getsockname()[1], branch="ok1").encode(),
               ("127.0.0.1", h.port))
    again = parse_datagram(uas.recv(65535))
    assert again.values("via")[0] == vias[0]


def test_not_sent_outside_permitted_networks(screen):
    h, cli, uas = screen
    h.screen.s.next_hop = "192.0.2.10:5060"
    cli.sendto(INVITE.format(callee="0912345678", caller="0901234567", cport=cli.getsockname()[1], branch="nx").encode(),
               ("127.0.0.1", h.port))
    cli.settimeout(10)                  # the answer, not a fixed sleep: a loaded CI host may take longer than one
    r = parse_datagram(cli.recv(65535))
    assert r.status == 503 and h.screen.stats["not_permitted"] >= 1    # counted, and the caller is told (not silence)


def test_tcp_framing_forwarding_and_errors(screen):
    h, cli, uas = screen
    # a TCP next hop
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(3)
    h.screen.s.next_hop = f"127.0.0.1:{srv.getsockname()[1]};transport=tcp"
    t = socket.create_connection(("127.0.0.1", h.port), timeout=3)
    port = t.getsockname()[1]
    inv = INVITE.format(callee="0912345678", caller="0901234567", cport=port, branch="tcp1").replace("SIP/2.0/UDP", "SIP/2.0/TCP")
    junk = f"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKj\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    data = (inv + junk).encode()
    t.sendall(data[:40])
    time.sleep(0.05)
    t.sendall(data[40:])                                  # split across segments: framing by Content-Length
    peer, _ = srv.accept()
    peer.settimeout(3)
    fwd = StreamParser()
    fwd.feed(peer.recv(65535))
    m = fwd.next()
    assert m.method == "INVITE" and m.values("via")[0].startswith("SIP/2.0/TCP 127.0.0.1:%d" % h.port)
    resp = t.recv(65535)
    assert resp.startswith(b"SIP/2.0 400")                # the junk OPTIONS, answered on the same connection
    t.close(); peer.close(); srv.close()


def test_loop_detected_and_record_route(screen):
    h, cli, uas = screen
    h.screen.s.record_route = True
    cp = cli.getsockname()[1]
    cli.sendto(INVITE.format(callee="0912345678", caller="0901234567", cport=cp, branch="rr1").encode(), ("127.0.0.1", h.port))
    fwd = parse_datagram(recv(uas))
    assert fwd.get("record-route") == f"<sip:127.0.0.1:{h.port};transport=udp;lr>"
    # the same request coming back through us (our Via already on it, same branch) is a loop
    cli.sendto(fwd.to_bytes(), ("127.0.0.1", h.port))
    r = recv(cli)
    assert r is not None and parse_datagram(r).status == 482


def test_tagged_call_gets_header_and_display_prefix(tmp_path):
    import shutil
    from .conftest import CONFIG
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    (cfg / "rules" / "90-test.toml").write_text('[[rule]]\nsymbol = "TEST_TAG"\naction = "tag"\nscore = 3.0\n'
                                                'applies_to = ["call"]\n[rule.when]\nsender = ["0900000777"]\n')
    pipe = build(cfg, tmp_path / "data")
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", 0))
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"],
                    display_prefix="[SPAM?] ")
    with SipHarness(pipe, s) as h:
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cli.bind(("127.0.0.1", 0))
        cli.sendto(INVITE.format(callee="0912345678", caller="0900000777", cport=cli.getsockname()[1], branch="tg").encode(),
                   ("127.0.0.1", h.port))
        m = parse_datagram(recv(uas))
        assert m.get("x-spam-score") == "3; symbols=TEST_TAG"
        assert m.get("from").startswith('"[SPAM?] Caller" <sip:0900000777@127.0.0.1>')
        cli.close()
    uas.close()


def _req(start, *headers, via_port):
    base = [f"Via: SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bKx1", "From: <sip:a@127.0.0.1>;tag=1",
            "To: <sip:b@127.0.0.1>", "Call-ID: extra-1", "Max-Forwards: 10"]
    return ("\r\n".join([start, *base, *headers, "Content-Length: 0"]) + "\r\n\r\n").encode()


@pytest.mark.parametrize("start,headers,want", [
    ("OPTIONS sip:b@127.0.0.1?Route=%3Csip:127.0.0.1%3E SIP/2.0", ["CSeq: 1 OPTIONS"], 400),      # escruri
    ("REGISTER sip:127.0.0.1 SIP/2.0", ["CSeq: 1 REGISTER", "Contact: sip:b@127.0.0.1?Route=%3Csip:x%3E"], 400),  # regbadct
    ("OPTIONS sip:b@127.0.0.1 SIP/2.0", ["CSeq: 1 OPTIONS", "Contact: Watson, Thomas <sip:w@127.0.0.1>"], 400),  # baddn
    ("OPTIONS sip:b@127.0.0.1; lr SIP/2.0", ["CSeq: 1 OPTIONS"], 400),                            # lwsruri
    ("OPTIONS sip:b@127.0.0.1 SIP/2.0  ", ["CSeq: 1 OPTIONS"], 400),                              # trws
    ("NEWMETHOD sip:b@127.0.0.1 SIP/2.0", ["CSeq: 1 INVITE"], 400),                               # mismatch02
    ("OPTIONS sip:b@127.0.0.1 SIP/2.0", ["CSeq: 1 OPTIONS", "Content-Length: 3"], 400),           # mcl01
    ("REGISTER sip:127.0.0.1 SIP/2.0", ["CSeq: 1 REGISTER", "Contact: <sip:%00@127.0.0.1>"], "fwd"),  # escnull
    ("OPTIONS sip:b;par=u%40x@127.0.0.1 SIP/2.0", ["CSeq: 1 OPTIONS"], "fwd"),                    # semiuri
    ("RE%47IST%45R sip:127.0.0.1 SIP/2.0", ["CSeq: 1 RE%47IST%45R"], "fwd"),                      # esc02
    ("OPTIONS sip:b@127.0.0.1 SIP/2.0", ["CSeq: 1 OPTIONS", "Date: Fri, 01 Jan 2010 16:00:00 EST"], "fwd"),  # baddate
])
def test_more_rfc4475_cases(screen, start, headers, want):
    h, cli, uas = screen
    cli.sendto(_req(start, *headers, via_port=cli.getsockname()[1]), ("127.0.0.1", h.port))
    if want == "fwd":
        assert recv(uas) is not None and recv(cli, 0.2) is None
    else:
        r = recv(cli)
        assert r is not None and parse_datagram(r).status == want and recv(uas, 0.2) is None
