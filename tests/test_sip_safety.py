"""The SIP screen as an inline element (issue #10's SIP items, #15's routing items): odd bytes are
answered, never silent; the verdict log never decides; every message's cost is bounded (caps,
linear loop check); TCP peers cannot hold connections; in-dialog requests follow Route /
Request-URI; a forwarding failure is answered 503."""
import logging
import socket
import time

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.sip_screen import server as sip_server
from engine.sip_screen.codec import MAX_HEADER_LINE, MAX_HEADERS, MAX_VIAS, SipParseError, parse_datagram
from engine.sip_screen.framing import StreamParser
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.verdictlog import VerdictLog

from .sip_helpers import UAC, invite, offline_screen


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    d = tmp_path_factory.mktemp("sipdata")
    ListStore(d).import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    return build(data_dir=d)


def udp_sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


def recv(sock, timeout=1.0):
    sock.settimeout(timeout)
    try:
        return sock.recv(65535)
    except (socket.timeout, ConnectionError):
        return None


def answers(scr):
    return [parse_datagram(d) for d, _ in scr.udp.out]


# ---------------------------------------------------------------- odd bytes are never silent

LATIN1 = invite(call_id=b"caf\xe9-1@127.0.0.1").replace(b'"Caller"', b'"Caf\xe9 \xc0"')


def test_latin1_invite_forwarded_and_logged_to_a_file(pipe, tmp_path):
    uas = udp_sock()
    vlog = VerdictLog(str(tmp_path / "verdicts.jsonl"))
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s, verdict_log=vlog) as h:
        cli = udp_sock()
        cli.sendto(LATIN1, ("127.0.0.1", h.port))
        fwd = recv(uas)
        assert fwd is not None and b"Call-ID: caf\xe9-1@127.0.0.1" in fwd and b'"Caf\xe9 \xc0"' in fwd
        h.run(vlog.flush)
        assert h.screen.stats["log_failed"] == 0 and h.screen.stats["internal_errors"] == 0
        cli.close()
    vlog.close()
    text = (tmp_path / "verdicts.jsonl").read_text(encoding="utf-8")
    assert '"call_id": "caf\\\\xe9-1@127.0.0.1"' in text             # the odd byte, escaped, not lost
    uas.close()


class BrokenLog:
    def write(self, rec):
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("caller,want", [("0901234567", "forward"), ("0987000666", 608)])
def test_a_failing_verdict_log_never_decides_the_call(pipe, caller, want, caplog):
    scr = offline_screen(pipe, BrokenLog())
    scr.on_datagram(invite(caller=caller), UAC)
    (data, addr), = scr.udp.out
    m = parse_datagram(data)
    if want == "forward":
        assert m.method == "INVITE" and addr == ("127.0.0.1", 5070)
    else:
        assert m.status == want
    assert scr.stats["log_failed"] == 1 and scr.stats["internal_errors"] == 0


@pytest.mark.parametrize("field", ["content-length", "cseq", "max-forwards", "via-port", "rport"])
def test_non_ascii_digits_in_numeric_headers_get_400(pipe, field, caplog):
    sup2 = "²".encode()
    kw = {"content-length": dict(content_length=sup2), "cseq": dict(cseq=sup2 + b" INVITE"),
          "max-forwards": dict(max_forwards=b"7" + sup2),
          "via-port": dict(vias=[b"SIP/2.0/UDP 127.0.0.1:50" + sup2 + b"0;branch=z9hG4bKx"]),
          "rport": dict(vias=[b"SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bKx;rport=5" + sup2])}[field]
    scr = offline_screen(pipe)
    with caplog.at_level(logging.INFO, logger="telfilter.sip"):
        scr.on_datagram(invite(**kw), UAC)
    (data, addr), = scr.udp.out
    assert parse_datagram(data).status == 400 and addr == UAC
    assert scr.stats["internal_errors"] == 0 and not any(r.exc_info for r in caplog.records)


def test_non_ascii_digits_in_a_response_are_dropped_quietly(pipe):
    scr = offline_screen(pipe)
    resp = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtfabc\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:50\xc2\xb20\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n"
            b"Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: \xc2\xb2\r\n\r\n")
    scr.on_datagram(resp, ("127.0.0.1", 5070))
    assert scr.udp.out == [] and scr.stats["internal_errors"] == 0


def test_internal_error_still_answers_500(pipe, monkeypatch):
    scr = offline_screen(pipe)
    monkeypatch.setattr(scr.pipeline, "judge", lambda call: 1 / 0)
    scr.on_datagram(invite(), UAC)
    (data, addr), = scr.udp.out
    assert parse_datagram(data).status == 500 and scr.stats["internal_errors"] == 1


# ---------------------------------------------------------------- bounded cost per message

def test_caps_on_headers_answered_400(pipe):
    scr = offline_screen(pipe)
    scr.on_datagram(invite(extra=[f"X-H{i}: {i}" for i in range(MAX_HEADERS)]), UAC)
    scr.on_datagram(invite(extra=["X-Long: " + "a" * (MAX_HEADER_LINE + 1)]), UAC)
    scr.on_datagram(invite(vias=[f"SIP/2.0/UDP 127.0.0.1:{6000 + i};branch=z9hG4bK{i}" for i in range(MAX_VIAS)]), UAC)
    got = answers(scr)
    assert [m.status for m in got] == [400, 400, 400]
    assert "Too many Via" in got[2].reason and len(got[2].values("via")) == MAX_VIAS + 1   # all copied (§8.2.6)


def test_950_vias_in_one_datagram_answered_once(pipe):
    vias = ", ".join(f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtf{i:020x}" for i in range(950))
    data = invite(extra=["Via: " + vias])
    assert len(data) > 55_000
    scr = offline_screen(pipe)
    scr.on_datagram(data, UAC)
    (resp, addr), = scr.udp.out
    assert resp.startswith(b"SIP/2.0 400 ") and addr == UAC and resp.count(b"z9hG4bKtf") == 950


def test_loop_check_is_linear_in_the_number_of_vias(pipe, monkeypatch):
    calls = []
    real = sip_server.SipScreen._branch
    monkeypatch.setattr(sip_server.SipScreen, "_branch", staticmethod(lambda k, b: calls.append(1) or real(k, b)))
    n = MAX_VIAS - 1                                            # every one names us, none matches
    scr = offline_screen(pipe)
    scr.on_datagram(invite(vias=[f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtf{i:020x}" for i in range(n)]), UAC)
    (data, addr), = scr.udp.out
    assert scr.sent_transports == ["TCP"]                      # over 1300 bytes: TCP first (§18.1.1)
    assert parse_datagram(data).method == "INVITE"             # forwarded: no loop
    assert len(calls) == n + 1                                  # one branch per Via of ours, one for our own Via


def test_tcp_message_over_the_limit_is_513():
    p = StreamParser()
    p.feed(invite(content_length=b"70000"))
    with pytest.raises(SipParseError) as ei:
        p.next()
    assert ei.value.status == 513 and ei.value.msg.method == "INVITE"


# ---------------------------------------------------------------- TCP connections

def _closed_within(sock, seconds) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_tcp_idle_and_unfinished_connections_are_closed(pipe):
    s = SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"], tcp_idle_timeout=1.0,
                    tcp_incomplete_timeout=0.3)
    with SipHarness(pipe, s) as h:
        unfinished = socket.create_connection(("127.0.0.1", h.port))
        unfinished.sendall(invite(content_length=b"100"))          # the body never comes
        idle = socket.create_connection(("127.0.0.1", h.port))
        assert _closed_within(unfinished, 0.9)
        assert _closed_within(idle, 3)
        assert h.screen.stats["tcp_timed_out"] == 2 and not h.screen.tcp_conns
        unfinished.close()
        idle.close()


def test_a_tcp_connection_that_sends_nothing_is_closed_as_an_unfinished_one(pipe):
    """Found by the adversarial probe: an inbound connection that sent no byte was closed only at tcp_idle_timeout
    (300 s), so idle connections from max_tcp_connections / max_tcp_per_source addresses held every slot and every
    other TCP caller was refused meanwhile. Its first message is now due within tcp_incomplete_timeout; a peer that
    sent one (or a CRLFCRLF keep-alive) is idle by tcp_idle_timeout as before."""
    s = SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"], tcp_idle_timeout=300.0,
                    tcp_incomplete_timeout=0.3)
    with SipHarness(pipe, s) as h:
        silent = socket.create_connection(("127.0.0.1", h.port))
        pinged = socket.create_connection(("127.0.0.1", h.port))
        pinged.sendall(b"\r\n\r\n")
        assert pinged.recv(10) == b"\r\n"                          # the pong: the keep-alive was read
        assert _closed_within(silent, 2)
        assert not _closed_within(pinged, 1)
        assert h.screen.stats["tcp_timed_out"] == 1
        silent.close()
        pinged.close()


def test_tcp_connections_capped_per_source(pipe):
    s = SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"], max_tcp_per_source=2)
    with SipHarness(pipe, s) as h:
        a, b = (socket.create_connection(("127.0.0.1", h.port)) for _ in range(2))
        time.sleep(0.1)
        c = socket.create_connection(("127.0.0.1", h.port))
        assert _closed_within(c, 2) and not _closed_within(a, 0.2)
        assert h.screen.stats["tcp_refused"] == 1
        a.close()
        time.sleep(0.2)
        d = socket.create_connection(("127.0.0.1", h.port))        # a slot freed: admitted again
        assert not _closed_within(d, 0.3)
        for x in (b, c, d):
            x.close()


# ---------------------------------------------------------------- routing (RFC 3261 §16.6, RFC 3263)

def test_in_dialog_bye_follows_route_and_request_uri_not_the_next_hop(pipe):
    uas, caller = udp_sock(), udp_sock()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"],
                    record_route=True)
    with SipHarness(pipe, s) as h:
        cp = caller.getsockname()[1]
        caller.sendto(invite(via_port=cp).replace(b"127.0.0.1:5080>", b"127.0.0.1:%d>" % cp), ("127.0.0.1", h.port))
        fwd = parse_datagram(recv(uas))
        rr = fwd.get("record-route")
        assert rr == f"<sip:127.0.0.1:{h.port};transport=udp;lr>"
        # the callee hangs up: BYE to the caller's Contact, through the Record-Route
        bye = (f"BYE sip:0901234567@127.0.0.1:{cp} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{uas.getsockname()[1]};"
               f"branch=z9hG4bKbye1\r\nRoute: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:0912345678@127.0.0.1>;tag=uas1\r\n"
               f"To: {fwd.get('from')}\r\nCall-ID: {fwd.get('call-id')}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n")
        uas.sendto(bye.encode(), ("127.0.0.1", h.port))
        got = recv(caller)
        assert got is not None and parse_datagram(got).method == "BYE" and parse_datagram(got).get("route") is None
        assert recv(uas, 0.3) is None
    uas.close()
    caller.close()


def test_tcp_invite_to_a_udp_only_next_hop_goes_over_udp(pipe):
    uas = udp_sock()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        t = socket.create_connection(("127.0.0.1", h.port), timeout=3)
        t.sendall(invite(via_port=t.getsockname()[1]).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        fwd = parse_datagram(recv(uas))
        assert fwd.method == "INVITE" and fwd.values("via")[0].startswith(f"SIP/2.0/UDP 127.0.0.1:{h.port};")
        assert f"rport={t.getsockname()[1]}" in fwd.values("via")[1]
        t.close()
    uas.close()


def test_refused_tcp_next_hop_answers_503(pipe):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()                                                 # nothing listens there
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{port};transport=tcp", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        t = socket.create_connection(("127.0.0.1", h.port), timeout=3)
        t.sendall(invite(via_port=t.getsockname()[1]).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        r = parse_datagram(t.recv(65535))
        assert r.status == 503 and len(r.values("via")) == 1 and h.screen.stats["forward_failed"] == 1
        t.close()


def test_destination_outside_permitted_networks_answers_503(pipe):
    scr = offline_screen(pipe)
    scr.s.next_hop = "192.0.2.10:5060"
    scr.on_datagram(invite(), UAC)
    (data, addr), = scr.udp.out
    r = parse_datagram(data)
    assert addr == UAC and r.status == 503 and len(r.values("via")) == 1 and scr.stats["not_permitted"] == 1


def test_a_bug_on_one_datagram_does_not_stop_the_udp_rounds(pipe, monkeypatch):
    uas = udp_sock()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        real, calls = h.screen.on_datagram, []

        def flaky(data, addr):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return real(data, addr)
        monkeypatch.setattr(h.screen, "on_datagram", flaky)
        cli = udp_sock()
        cli.sendto(invite(call_id="bug-1"), ("127.0.0.1", h.port))
        time.sleep(0.2)
        cli.sendto(invite(call_id="bug-2"), ("127.0.0.1", h.port))
        got = recv(uas)
        assert got is not None and b"Call-ID: bug-2" in got and h.screen.stats["internal_errors"] == 1
        cli.close()
    uas.close()


def test_call_verdict_line_is_the_json_of_the_record():
    """VerdictLog.write_call builds the call line directly: it is exactly what write() gives for
    the record dict the screen used to log (field order, float and escape forms)."""
    import io
    from datetime import datetime, timezone

    from engine.verdictlog import VerdictLog
    from engine.verdict import Action, Hit, Verdict
    v = Verdict(Action.TAG, 3.14159265, (Hit("TOO_MANY_CALLS", 2.5, "12 calls in 60 s", "rule:x"),
                                         Hit("Ünïcode_€", 0.6400000001, 'a "quoted" \\ détail\x01', "ml")))
    when = datetime(2026, 11, 30, 18, 0, 0, 123456, tzinfo=timezone.utc)
    for call_id in ("c1@h", None, "caf\\xe9"):
        a, b = io.StringIO(), io.StringIO()
        VerdictLog(a).write_call(when, call_id, "0901234567", "0912\u20ac", "127.0.0.1:5080", v, 41.26)
        VerdictLog(b).write({"ts": when.isoformat(), "kind": "call", "call_id": call_id, "caller": "0901234567",
                             "callee": "0912\u20ac", "ingress": "127.0.0.1:5080", "action": str(v.action),
                             "score": round(v.score, 4), "hits": [h.to_json() for h in v.hits], "judge_us": round(41.26, 1)})
        assert a.getvalue() == b.getvalue() and a.getvalue().count("\n") == 1
