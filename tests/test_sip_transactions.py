"""What a stateless screen must still get right about transactions (review of the SIP screen):
a call's retransmitted or re-challenged INVITE is not judged again; the ACK of a non-2xx final
goes where its INVITE went with its branch; only the ACK of our own answer is absorbed; our
answers go to the sent-by port; TCP peers are framed, timed and connected to correctly; and
what the screen remembers is bounded in bytes, whatever the Call-ID's length."""
import re
import socket
import time
from datetime import datetime, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.sip_screen.codec import make_response, parse_datagram
from engine.verdict import Action
from engine.sip_screen.framing import StreamParser
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.sip_screen.tcp import TcpConnection
from engine.sip_screen.transport import Pump, make_pump

from .sip_helpers import UAC, UAS, invite, offline_screen

AD_CALLER = "02439998888"                          # a registered ad sender: one call per callee a day


@pytest.fixture
def pipe(tmp_path):
    ListStore(tmp_path).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\n"
                                              b"02439998888,Shop ABC,QC,,,\n")
    ListStore(tmp_path).import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    return build(data_dir=tmp_path, with_model=False, persist=False)


class Lines:
    def __init__(self):
        self.calls = []

    def write_call(self, *a):
        self.calls.append(a)


def screen(pipe, vlog=None):
    scr = offline_screen(pipe, vlog)
    scr.clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)     # 10:00 +07: ad hours
    return scr


def sent(scr):
    return [(parse_datagram(d), a) for d, a in scr.udp.out]


def top_branch(m):
    return re.search(r";branch=([^;]+)", m.values("via")[0]).group(1)


# ---------------------------------------------------------------- 1. one judgement per call

def test_retransmitted_and_rechallenged_invites_reuse_the_calls_verdict(pipe):
    vlog = Lines()
    scr = screen(pipe, vlog)
    inv = invite(caller=AD_CALLER, call_id="ad-1")
    for _ in range(2):                                           # the INVITE and its T1 retransmission
        scr.on_datagram(inv, UAC)
    (f1, a1), (f2, a2) = sent(scr)
    assert f1.method == f2.method == "INVITE" and a1 == a2 == UAS
    assert top_branch(f1) == top_branch(f2)                      # §16.11: a retransmission, same branch
    # the next hop challenges (407), and the INVITE is re-sent with credentials: same Call-ID and From tag, CSeq 2,
    # a new branch
    scr.udp.out.clear()
    scr.on_datagram(make_response(f1, 407, None, to_tag="uas1").to_bytes(), UAS)
    assert [m.status for m, _ in sent(scr)] == [407]
    scr.udp.out.clear()
    scr.on_datagram(inv.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-2-")
                    .replace(b"Content-Length", b'Proxy-Authorization: Digest username="x"\r\nContent-Length'), UAC)
    ((f3, a3),) = sent(scr)
    assert f3.method == "INVITE" and a3 == UAS and top_branch(f3) != top_branch(f1)
    assert scr.stats["screened"] == 1 and scr.stats["replayed"] == 2 and len(vlog.calls) == 1
    # the cap still counts calls: a second call of the same ad sender is rejected, and so is its copy
    scr.udp.out.clear()
    for _ in range(2):
        scr.on_datagram(invite(caller=AD_CALLER, call_id="ad-2"), UAC)
    (r1, _), (r2, _) = sent(scr)
    assert r1.status == r2.status == 608 and r1.get("reason") == r2.get("reason")
    assert "AD_CALL_FREQUENCY_CAP" in r1.get("reason")
    assert scr.stats["screened"] == 2 and scr.stats["rejected"] == 1 and len(vlog.calls) == 2


# ---------------------------------------------------------------- 2. the ACK of a non-2xx final

OTHER = ("127.0.0.1", 5999)                      # the Request-URI's host: not where the INVITE went


def _call_refused(scr, feed):
    inv = invite(call_id="ack-1").replace(b"INVITE sip:0912345678@127.0.0.1 SIP/2.0",
                                          b"INVITE sip:0912345678@127.0.0.1:5999 SIP/2.0")
    feed(inv, UAC)
    ((fwd, dest),) = sent(scr)
    assert dest == UAS                                            # the configured next hop
    busy = make_response(fwd, 486, None, to_tag="uas1").to_bytes()
    scr.udp.out.clear()
    feed(busy, UAS)
    assert sent(scr)[0][0].status == 486
    scr.udp.out.clear()
    ack = inv.replace(b"INVITE sip", b"ACK sip").replace(b"CSeq: 1 INVITE", b"CSeq: 1 ACK") \
        .replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=uas1")
    feed(ack, UAC)
    ((a, adest),) = sent(scr)
    return fwd, a, adest


def _screen_by(pipe, way):
    """A screen and how a datagram reaches it: the full parse, the Python fast path, or the C pump."""
    scr = screen(pipe)
    feed = scr.on_datagram
    if way == "full":
        scr.fast_path = False
    elif way == "pump":
        if Pump is None:
            pytest.skip("C extension not built")
        feed = make_pump(scr, -1, scr.udp.sendto).handle
    return scr, feed


@pytest.mark.parametrize("way", ["full", "fast", "pump"])
def test_ack_of_a_non_2xx_final_goes_where_its_invite_went_with_its_branch(pipe, way):
    scr, feed = _screen_by(pipe, way)
    fwd, ack, dest = _call_refused(scr, feed)
    assert ack.method == "ACK" and dest == UAS                   # RFC 3261 §17.1.1.3: hop by hop
    assert top_branch(ack) == top_branch(fwd)


# ---------------------------------------------------------------- 4. only our own answer's ACK is absorbed

@pytest.mark.parametrize("way", ["full", "fast", "pump"])
def test_only_the_ack_of_our_own_answer_is_absorbed(pipe, way):
    scr, feed = _screen_by(pipe, way)
    ack = invite(call_id="d1").replace(b"INVITE sip:0912345678@127.0.0.1 SIP/2.0",
                                       b"ACK sip:0912345678@127.0.0.1:5070 SIP/2.0") \
        .replace(b"CSeq: 1 INVITE", b"CSeq: 1 ACK").replace(b"z9hG4bK-", b"z9hG4bK-ack-")
    to = b"To: <sip:0912345678@127.0.0.1>"
    feed(ack.replace(to, to + b";tag=tfx9Q2aL"), UAC)             # a 2xx ACK; the UAS's tag starts with tf
    assert [m.method for m, _ in sent(scr)] == ["ACK"]
    # a rejected call: the ACK of our 608 carries our tag and goes nowhere
    scr.udp.out.clear()
    inv = invite(caller="0987000666", call_id="bl-1")
    feed(inv, UAC)
    ((r, _),) = sent(scr)
    assert r.status == 608
    scr.udp.out.clear()
    feed(inv.replace(b"INVITE sip", b"ACK sip").replace(b"CSeq: 1 INVITE", b"CSeq: 1 ACK")
         .replace(b"To: <sip:0912345678@127.0.0.1>", ("To: " + r.get("to")).encode()), UAC)
    assert scr.udp.out == []


# ---------------------------------------------------------------- 7. our answers: sent-by port

def test_our_answer_goes_to_the_source_address_and_the_sent_by_port(pipe):
    scr = screen(pipe)
    inv = invite(caller="0987000666", call_id="bl-2").replace(
        b"127.0.0.1:5080;branch=z9hG4bK-", b"ua.example.invalid:5099;branch=z9hG4bK-").replace(b";rport\r\n", b"\r\n")
    scr.on_datagram(inv, ("127.0.0.1", 40000))
    ((r, dest),) = sent(scr)
    assert r.status == 608 and dest == ("127.0.0.1", 5099)     # RFC 3261 §18.2.2, as relayed responses


# ---------------------------------------------------------------- 6. Content-Length on a stream

def test_udp_request_without_content_length_gets_one_on_tcp(pipe):
    scr = screen(pipe)
    scr.s.next_hop = "127.0.0.1:5070;transport=tcp"
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
    inv = invite(call_id="nocl").replace(b"Content-Length: 0\r\n", b"Content-Type: application/sdp\r\n") + body
    scr.on_datagram(inv, UAC)
    assert scr.sent_transports == ["TCP"]
    p = StreamParser()
    p.feed(scr.udp.out[0][0])
    m = p.next()                                                 # framed by a stream peer
    assert m.body == body and m.get("content-length") == str(len(body))


# ---------------------------------------------------------------- 8. memory bounded in bytes

def test_what_the_screen_remembers_is_keyed_by_fixed_size_digests(pipe):
    scr = screen(pipe)
    long_id = "x" * 8000
    scr.on_datagram(invite(call_id=long_id), UAC)
    ((fwd, _),) = sent(scr)
    scr.on_datagram(make_response(fwd, 200, None, to_tag="uas1").to_bytes(), UAS)
    for name in ("answered", "finals_seen", "verdicts", "invites"):
        keys = getattr(getattr(scr, name, {}), "d", getattr(scr, name, {}))
        assert len(keys) == 1, name
        assert all(isinstance(k, int) if name != "invites" else len(k) == 16 for k in keys), name   # fixed size
    assert scr.final_codes == {"200": 1}


# ---------------------------------------------------------------- 3. TCP: the unfinished-message clock

class FakeTransport:
    def is_closing(self):
        return False

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def test_tcp_unfinished_clock_restarts_after_each_message(pipe):
    scr = screen(pipe)
    got = []
    scr.on_message = lambda msg, *a: got.append(msg)
    c = TcpConnection(scr)
    c.transport, c.peer = FakeTransport(), UAC
    m1, m2 = invite(call_id="t1"), invite(call_id="t2")
    c.data_received(m1[:100])
    assert c.partial_since is not None
    c.partial_since -= 1000                                     # long ago: that message is done below
    c.data_received(m1[100:] + m2[:100])                        # a read that ends inside the next one
    assert len(got) == 1
    assert c.expired(time.monotonic()) is None                  # the new partial message's clock is fresh
    c.data_received(m2[100:])
    assert len(got) == 2 and c.partial_since is None


# ---------------------------------------------------------------- 5. TCP: one outbound connection

def test_one_outbound_tcp_connection_per_destination(pipe):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(2)
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{srv.getsockname()[1]};transport=tcp",
                    allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cli.bind(("127.0.0.1", 0))
        for i in range(8):                                       # within one connect's time
            cli.sendto(invite(call_id=f"o{i}"), ("127.0.0.1", h.port))
        c, _ = srv.accept()
        c.settimeout(1)
        p, msgs = StreamParser(), []
        deadline = time.monotonic() + 3
        while len(msgs) < 8 and time.monotonic() < deadline:
            try:
                p.feed(c.recv(65535))
            except socket.timeout:
                continue
            while (m := p.next()) is not None:
                msgs.append(m)
        assert sorted(m.get("call-id") for m in msgs) == [f"o{i}" for i in range(8)]
        srv.settimeout(0.3)
        with pytest.raises(socket.timeout):
            srv.accept()                                         # no second connection
        assert len(h.screen.tcp_conns) == 1 and not h.screen.tcp_connecting
        c.close()
        cli.close()
    srv.close()


# ---------------------------------------------------------------- 9. a slow body: the head parsed once

def test_stream_parser_parses_a_head_once_however_slowly_its_body_comes(monkeypatch):
    from engine.sip_screen import framing
    calls = []
    real = framing._parse_head
    monkeypatch.setattr(framing, "_parse_head", lambda head: (calls.append(1), real(head))[1])
    body = b"x" * 300
    data = invite(content_length=str(len(body))) + body
    p = StreamParser()
    for i in range(len(data) - 1):                              # one byte a read
        p.feed(data[i:i + 1])
        assert p.next() is None and p.pending()
    p.feed(data[-1:])
    m = p.next()
    assert m.body == body and len(calls) == 1 and not p.pending()


# ---------------------------------------------------------------- 10. fast paths agree with the full one

def _bye(via_params, pad=0):
    lines = ["BYE sip:0901234567@127.0.0.1:5080 SIP/2.0", f"Via: SIP/2.0/UDP 10.9.9.9:5070{via_params}",
             "Max-Forwards: 70", "From: <sip:0912345678@127.0.0.1>;tag=uas1", "To: <sip:0901234567@127.0.0.1>;tag=abc",
             "Call-ID: c1", "CSeq: 7 BYE"] + ([f"X-Pad: {'p' * pad}"] if pad else []) + ["Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("data", [_bye(";branch=z9hG4bKb1;received;rport"), _bye(";branch=z9hG4bKb1;rport", pad=1195 - len(_bye(";branch=z9hG4bKb1;rport")) - len("X-Pad: \r\n"))],
                         ids=["bare-received", "1195-bytes-1302-out"])
def test_fast_paths_stamp_and_choose_the_transport_as_the_full_path(pipe, data):
    src = ("127.200.200.200", 50000)
    outs = []
    for way in ("full", "fast", "pump"):
        scr = screen(pipe)
        feed = scr.on_datagram
        if way == "full":
            scr.fast_path = False
        elif way == "pump" and Pump is not None:
            feed = make_pump(scr, -1, scr.udp.sendto).handle
        feed(data, src)
        outs.append(list(zip(scr.udp.out, scr.sent_transports)))
    assert outs[0] == outs[1] == outs[2] and len(outs[0]) == 1


# ---------------------------------------------------------------- a To tag is no pass

def test_an_invite_with_a_made_up_to_tag_is_judged_a_real_reinvite_is_not(pipe):
    scr = screen(pipe)
    tagged = lambda b: b.replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=made-up")
    scr.on_datagram(tagged(invite(caller="0987000666", call_id="bl-1")), UAC)      # blacklisted caller
    ((r, to),) = sent(scr)
    assert r.status == 608 and to == UAC and scr.stats["reinvite_unknown_dialog"] == 1
    # a call let through and answered: its re-INVITE goes on without a second judgement
    scr.udp.out.clear()
    scr.on_datagram(invite(call_id="ok-1"), UAC)
    ((fwd, _),) = sent(scr)
    scr.on_datagram(make_response(fwd, 200, None, to_tag="uas1").to_bytes(), UAS)
    scr.udp.out.clear()
    screened = scr.stats["screened"]
    re_inv = invite(call_id="ok-1", cseq="2 INVITE").replace(
        b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=uas1").replace(b"z9hG4bK-", b"z9hG4bK-r-")
    scr.on_datagram(re_inv, UAC)
    ((f2, _),) = sent(scr)
    assert f2.method == "INVITE" and scr.stats["screened"] == screened


def test_a_tag_inside_the_to_uri_is_not_the_to_tag():
    from engine.sip_screen.codec import make_response
    m = parse_datagram(invite().replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1;tag=uri>"))
    r = make_response(m, 608, None, "tfabc")
    assert r.tag_in(r.get("to")) == "tfabc"                     # RFC 3261 §8.2.6.2: our answer carries a To tag


def test_a_rejected_or_unanswered_call_cannot_be_re_invited_past_the_screen(pipe):
    scr = screen(pipe)
    tagged = lambda b: b.replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=made-up") \
        .replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-r-")
    scr.on_datagram(invite(caller="0987000666", call_id="bl-2"), UAC)             # rejected: 608
    scr.udp.out.clear()
    scr.on_datagram(tagged(invite(caller="0987000666", call_id="bl-2")), UAC)    # its "re-INVITE"
    ((r, _),) = sent(scr)
    assert r.status == 608
    scr.udp.out.clear()
    scr.on_datagram(invite(call_id="never-answered"), UAC)                       # forwarded, never answered
    scr.udp.out.clear()
    scr.on_datagram(tagged(invite(caller="0987000666", call_id="never-answered")), UAC)
    ((r, _),) = sent(scr)
    assert r.status == 608


def test_a_call_id_alone_is_no_dialog(pipe):
    """After one real answered call, an INVITE on its Call-ID with a To tag but other parties is judged."""
    scr = screen(pipe)
    scr.on_datagram(invite(call_id="real-1"), UAC)
    ((fwd, _),) = sent(scr)
    scr.on_datagram(make_response(fwd, 200, None, to_tag="uas1").to_bytes(), UAS)
    scr.udp.out.clear()
    other = invite(caller="0987000666", callee="0913000000", call_id="real-1").replace(
        b"To: <sip:0913000000@127.0.0.1>", b"To: <sip:0913000000@127.0.0.1>;tag=uas1").replace(
        b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-x-")
    scr.on_datagram(other, UAC)
    ((r, _),) = sent(scr)
    assert r.status == 608                                       # the blacklisted caller was judged


def test_an_initial_invite_preloaded_with_our_route_alone_goes_to_the_next_hop(pipe):
    """Found by a SIP probe at stop 33: a UA that names the screen as its outbound proxy (a preloaded Route to us,
    RFC 3261 §8.1.2) had its INVITE sent to the Request-URI's host instead of the configured next hop (a host name
    there: 503). With the Route removed it is an initial request like any other; in a dialog the URI is followed."""
    scr = screen(pipe)
    data = invite(extra=[b"Route: <sip:127.0.0.1:5060;lr>"]).replace(b"INVITE sip:0912345678@127.0.0.1 ",
                                                                       b"INVITE sip:0912345678@carrier.example ")
    scr.on_datagram(data, UAC)
    (m, dest), = sent(scr)
    assert m.method == "INVITE" and dest == UAS and m.get("route") is None
    scr.udp.out.clear()
    bye = (b"BYE sip:0912345678@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-pl;rport\r\n"
           b"Max-Forwards: 70\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nFrom: <sip:0901234567@127.0.0.1>;tag=abc\r\n"
           b"To: <sip:0912345678@127.0.0.1>;tag=x\r\nCall-ID: pl1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
    scr.on_datagram(bye, UAC)
    (m, dest), = sent(scr)
    assert m.method == "BYE" and dest == ("127.0.0.1", 5090)


@pytest.mark.parametrize("method", [b"invite", b"Invite", b"iNVITE"])
def test_an_invite_written_in_another_case_is_refused_never_forwarded_unjudged(pipe, method):
    """Found by a SIP probe at stop 34: `invite` from a blacklisted caller went to the next hop unjudged (no verdict
    line, no count), and Kamailio routes it as an INVITE. A known method in another case is refused 400, by the full
    parse: the fast paths (Python and C) take only upper-case methods."""
    from engine.sip_screen import fastpath
    vlog = Lines()
    scr = screen(pipe, vlog)
    for to_tag in (b"", b";tag=made-up"):
        data = invite(caller="0987000666", cseq=method.decode() + " 1").replace(b"INVITE sip:", method + b" sip:", 1)
        data = data.replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>" + to_tag)
        assert fastpath.in_dialog(data, "127.0.0.1", 5080) is fastpath.FULL_PARSE
        assert fastpath.py_in_dialog(data, "127.0.0.1", 5080) is fastpath.FULL_PARSE
        scr.on_datagram(data, UAC)
        (m, dest), = sent(scr)
        assert m.status == 400 and dest == UAC and "upper case" in m.reason
        scr.udp.out.clear()
    assert vlog.calls == [] and scr.stats["screened"] == 0


def test_a_new_call_on_a_used_call_id_is_judged_a_retry_after_a_final_that_asks_for_it_is_not(pipe):
    """Found by a SIP probe at stop 34: an advertiser reusing one Call-ID and From tag made 4 complete calls to one
    callee within 10 s, all let through on the first call's verdict (one verdict line, one count): the 1-a-day cap
    did not apply. Only a retransmission (same branch) or a try after a 401/407/422/3xx/5xx replays the verdict."""
    vlog = Lines()
    scr = screen(pipe, vlog)

    def call(branch, cseq):
        data = invite(caller=AD_CALLER, call_id="reuse-1", cseq=f"{cseq} INVITE")
        scr.on_datagram(re.sub(rb"branch=[^;]+", b"branch=z9hG4bK-" + branch, data), UAC)
        (m, dest), = sent(scr)
        scr.udp.out.clear()
        return m, dest

    fwd, dest = call(b"a", 1)
    assert fwd.method == "INVITE" and dest == UAS
    for code in (503, 302):                     # failed over, redirected: the same call again, replayed
        scr.on_datagram(make_response(fwd, code, None, to_tag="u%d" % code).to_bytes(), UAS)
        scr.udp.out.clear()
        fwd, dest = call(b"r%d" % code, 1)
        assert fwd.method == "INVITE" and dest == UAS
    assert scr.stats["screened"] == 1 and scr.stats["replayed"] == 2
    scr.on_datagram(make_response(fwd, 200, None, to_tag="u200").to_bytes(), UAS)
    scr.udp.out.clear()
    m, _ = call(b"b", 2)                         # after the answer: a new call on the same Call-ID, judged
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in m.get("reason")
    m, _ = call(b"b", 2)                         # its retransmission: the same answer, not judged again
    assert m.status == 608 and scr.stats["screened"] == 2 and scr.stats["call_id_reused"] == 1
    assert len(vlog.calls) == 2


def test_a_call_rung_cancelled_and_rung_again_on_its_call_id_is_judged_again(pipe):
    vlog = Lines()
    scr = screen(pipe, vlog)
    inv = invite(caller=AD_CALLER, call_id="ring-1")
    scr.on_datagram(inv, UAC)
    ((fwd, _),) = sent(scr)
    scr.udp.out.clear()
    scr.on_datagram(make_response(fwd, 487, None, to_tag="u1").to_bytes(), UAS)
    scr.udp.out.clear()
    scr.on_datagram(inv.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-2-"), UAC)
    ((m, _),) = sent(scr)
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in m.get("reason") and len(vlog.calls) == 2


def test_a_cancel_while_its_invite_is_being_judged_is_answered_and_the_invite_never_leaves(pipe):
    """Found by a SIP probe at stop 34: with a shared state store slow to confirm, a CANCEL found no INVITE sent and
    went to the next hop before its INVITE (the callee rang after the caller had hung up). It is answered 200 here,
    and the INVITE, once judged, is answered 487: not sent, its counts given back."""
    scr = screen(pipe)
    held, real = [], scr._screen
    scr._screen = lambda msg, src, then, callee=None: held.append((msg, src, then, callee))   # the store is slow
    inv = invite(caller=AD_CALLER, call_id="slow-1")
    scr.on_datagram(inv, UAC)
    assert sent(scr) == [] and len(held) == 1
    cancel = inv.replace(b"INVITE sip", b"CANCEL sip").replace(b"CSeq: 1 INVITE", b"CSeq: 1 CANCEL")
    scr.on_datagram(cancel, UAC)
    ((m, dest),) = sent(scr)
    assert m.status == 200 and m.get("cseq") == "1 CANCEL" and dest == UAC
    scr.udp.out.clear()
    real(*held.pop())                                                   # the verdict comes: allow
    ((m, dest),) = sent(scr)
    assert m.status == 487 and m.get("cseq") == "1 INVITE" and dest == UAC
    assert scr.stats["cancelled_while_judged"] == 1 and scr.stats["uncounted_unsent"] == 1
    scr.udp.out.clear()
    scr.on_datagram(inv, UAC)                                           # its retransmission: 487 again, not sent
    ((m, dest),) = sent(scr)
    assert m.status == 487 and dest == UAC
    scr.udp.out.clear()
    scr._screen = real
    scr.on_datagram(invite(caller=AD_CALLER, call_id="slow-2"), UAC)     # not counted: the next call goes out
    ((m, dest),) = sent(scr)
    assert m.method == "INVITE" and dest == UAS


def _slow_store(scr):
    """The shared state store is slow: every call's verdict waits in `held` until the test lets it come."""
    held, real = [], scr._screen
    scr._screen = lambda msg, src, then, callee=None: held.append((msg, src, then, callee))
    return held, lambda: real(*held.pop(0))


def test_another_invite_on_a_call_being_judged_waits_for_its_verdict_then_is_judged_never_left_unanswered(pipe):
    """Found at stop 35 (a known gap): with a shared state store slow to confirm, an INVITE on the same Call-ID, From
    and callee with another branch (over TCP nobody retransmits it) was dropped unanswered while the first was
    judged. It waits for that verdict, then is taken as if it came after it: a new call, judged and counted."""
    vlog = Lines()
    scr = screen(pipe, vlog)
    held, release = _slow_store(scr)
    first = invite(caller=AD_CALLER, call_id="wait-1")
    other = first.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-2-")
    scr.on_datagram(first, UAC)
    for _ in range(2):                                                  # the other and its retransmission
        scr.on_datagram(other, UAC)
    assert sent(scr) == [] and len(held) == 1 and scr.stats["waited_for_judging"] == 1
    release()                                                           # the first's verdict: allow, forwarded
    ((m, dest),) = sent(scr)
    assert m.method == "INVITE" and m.get("cseq") == "1 INVITE" and dest == UAS
    assert len(held) == 1                                               # the other is judged now, in its turn
    scr.udp.out.clear()
    release()
    ((m, dest),) = sent(scr)                                            # a second ad call to the callee today
    assert m.status == 608 and m.get("cseq") == "2 INVITE" and dest == UAC and "AD_CALL_FREQUENCY_CAP" in m.get("reason")
    assert len(vlog.calls) == 2 and scr.stats["call_id_reused"] == 1
    assert scr.waiting == {} and scr.waiting_count == 0


def _invite_wait_and_cancel(scr, call_id):
    """An INVITE (CSeq 1, judged slowly), another on its call with a new branch (CSeq 2: waits), and its CANCEL."""
    first = invite(call_id=call_id)
    other = first.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-2-")
    scr.on_datagram(first, UAC)
    scr.on_datagram(other, UAC)
    scr.on_datagram(other.replace(b"INVITE sip", b"CANCEL sip").replace(b"CSeq: 2 INVITE", b"CSeq: 2 CANCEL"), UAC)


def test_a_cancel_of_an_invite_waiting_for_anothers_verdict_gets_200_and_the_invite_487(pipe):
    scr = screen(pipe)
    held, release = _slow_store(scr)
    _invite_wait_and_cancel(scr, "wait-2")
    ((m, dest),) = sent(scr)
    assert m.status == 200 and m.get("cseq") == "2 CANCEL" and dest == UAC
    scr.udp.out.clear()
    release()
    release()
    got = sorted((m.get("cseq"), m.status or m.method) for m, _ in sent(scr))
    assert got == [("1 INVITE", "INVITE"), ("2 INVITE", 487)]            # the first forwarded, the other not
    assert scr.stats["cancelled_while_judged"] == 1


def test_beyond_max_waiting_an_invite_is_answered_503_with_retry_after(pipe, monkeypatch):
    from engine.sip_screen import screening
    monkeypatch.setattr(screening, "MAX_WAITING", 2)
    scr = screen(pipe)
    held, release = _slow_store(scr)
    first = invite(call_id="wait-3")
    scr.on_datagram(first, UAC)
    for i in range(3):
        scr.on_datagram(first.replace(b"z9hG4bK-", b"z9hG4bK-w%d-" % i), UAC)
    ((m, dest),) = sent(scr)
    assert m.status == 503 and m.get("retry-after") == "1" and dest == UAC and scr.stats["waiting_refused"] == 1
    scr.udp.out.clear()
    while held:
        release()
    assert [m.method for m, _ in sent(scr)] == ["INVITE"] * 3 and scr.waiting_count == 0


def test_a_bug_while_judging_a_waiting_invite_leaves_none_unanswered(pipe):
    scr = screen(pipe)
    held, release = _slow_store(scr)
    first = invite(call_id="wait-4")
    scr.on_datagram(first, UAC)
    for b in (b"b", b"c"):
        scr.on_datagram(first.replace(b"z9hG4bK-", b"z9hG4bK-" + b + b"-"), UAC)

    def broken(msg, src, then, callee=None):
        raise RuntimeError("a bug")
    scr._screen = broken
    release()                                                            # the first: allowed; the others' judging fails
    got = [(m.method or m.status, top_branch(m) if m.method else m.get("retry-after")) for m, _ in sent(scr)]
    assert got[0][0] == "INVITE" and [g[0] for g in got[1:]] == [503, 503]
    assert scr.waiting_count == 0 and scr.stats["internal_errors"] == 2
    scr.udp.out.clear()
    scr.on_datagram(first.replace(b"z9hG4bK-", b"z9hG4bK-d-"), UAC)     # its judging fails: 500 ...
    assert [m.status for m, _ in sent(scr)] == [500]
    scr._screen = lambda msg, src, then, callee=None: held.append((msg, src, then, callee))
    scr.on_datagram(first.replace(b"z9hG4bK-", b"z9hG4bK-e-"), UAC)     # ... and the key is not left being judged:
    assert len(held) == 1 and scr.waiting_count == 0                     # the next try is judged, not kept waiting


def test_the_verdict_memory_keeps_a_digest_of_the_branch_not_the_branch(pipe):
    """Found by a review at stop 34: the verdict memory kept each INVITE's top Via branch as received (up to ~8 KB:
    ~1 GB at its 131,072 calls for a peer writing long branches). It keeps a fixed-size digest."""
    scr = screen(pipe)
    scr.on_datagram(re.sub(rb"branch=[^;]+", b"branch=z9hG4bK-" + b"x" * 4000, invite(call_id="long-1")), UAC)
    assert len(sent(scr)) == 1
    ((_, (_, (decision, branch))),) = scr.verdicts.d.items()           # key -> (time stored, value)
    assert decision.action is Action.ALLOW and isinstance(branch, int)


def test_two_invite_transactions_of_one_call_each_keep_their_verdict(pipe):
    """Found by a SIP probe at stop 34: two INVITE transactions on one Call-ID, From and callee at once (a forking
    proxy upstream sending the number to two gateways through us, or a UAC's merged request) with their
    retransmissions interleaved were judged at every retransmission (6 INVITEs, 6 verdict lines, call_id_reused 5):
    the verdict memory kept one branch per call, so each transaction's copy looked like a new call to the other's.
    For an advertiser with a 1-a-day cap the ringing first transaction's own retransmission was answered 608."""
    vlog = Lines()
    scr = screen(pipe, vlog)

    def send(branch):
        data = invite(caller=AD_CALLER, call_id="fork-1")
        scr.on_datagram(re.sub(rb"branch=[^;]+", b"branch=z9hG4bK-" + branch, data), UAC)
        (m, dest), = sent(scr)
        scr.udp.out.clear()
        return m, dest

    m, dest = send(b"a")
    assert m.method == "INVITE" and dest == UAS
    m, _ = send(b"b")                           # another transaction: a new call, judged (over the cap)
    assert m.status == 608
    for _ in range(2):                          # each one's retransmissions get its own answer, not judged again
        m, dest = send(b"a")
        assert m.method == "INVITE" and dest == UAS
        m, _ = send(b"b")
        assert m.status == 608
    assert scr.stats["screened"] == 2 and scr.stats["call_id_reused"] == 1 and len(vlog.calls) == 2


def test_a_datagram_with_crlfs_before_its_start_line_is_taken_not_dropped_unanswered(pipe):
    """Found by a SIP probe at stop 35: an INVITE datagram starting with CRLFs (RFC 3261 §7.5 has them ignored on a
    stream; some UAs send them on UDP too) was dropped unanswered: the blank line ended an empty head."""
    vlog = Lines()
    scr = screen(pipe, vlog)
    scr.on_datagram(b"\r\n\r\n" + invite(call_id="crlf-1"), UAC)
    ((m, dest),) = sent(scr)
    assert m.method == "INVITE" and dest == UAS and len(vlog.calls) == 1
    scr.udp.out.clear()
    scr.on_datagram(b"\r\n\r\n", UAC)                                   # a keep-alive alone: nothing to answer
    assert sent(scr) == []


def test_giving_back_a_calls_counts_leaves_a_newer_calls_verdict_on_the_key(pipe):
    """Found by a review at stop 35: _give_back popped the key's verdict whoever it was: a second call on the key
    judged while the first's TCP connect was pending lost its decision when that connect failed."""
    from engine.sip_screen.recent import digest
    from engine.sip_screen.screening import Decision
    from engine.verdict import Verdict
    scr = screen(pipe)
    key, first, second = 12345, 111, 222
    newer = Decision(Action.ALLOW, 0, (), (), 0.0)
    scr.verdicts.put(key, (newer, second), time.monotonic())
    scr._give_back((key, Verdict(Action.ALLOW, 0.0), digest(key, first)))
    assert scr.verdicts.get(key) == (newer, second) and scr.stats["uncounted_unsent"] == 1
    scr._give_back((key, Verdict(Action.ALLOW, 0.0), digest(key, second)))
    assert scr.verdicts.get(key) is None


def test_a_cancelled_waiting_invite_that_waits_again_stays_cancelled(pipe):
    """Found by a SIP probe (stop 35): three INVITEs on one key with a slow shared state store, the third cancelled
    while it waited. When the first was judged, the second was judged in turn and the third waited again for it, its
    CANCEL forgotten: it was forwarded after its CANCEL had been answered 200 (the callee rang for nobody)."""
    scr = screen(pipe)
    held, release = _slow_store(scr)
    first = invite(call_id="wait-5")
    second = first.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-w-")
    third = first.replace(b"CSeq: 1 INVITE", b"CSeq: 3 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-y-")
    for m in (first, second, third):
        scr.on_datagram(m, UAC)
    scr.on_datagram(third.replace(b"INVITE sip", b"CANCEL sip").replace(b"CSeq: 3 INVITE", b"CSeq: 3 CANCEL"), UAC)
    ((m, _),) = sent(scr)
    assert m.status == 200 and m.get("cseq") == "3 CANCEL"
    scr.udp.out.clear()
    while held:
        release()
    got = sorted((m.get("cseq"), m.status or m.method) for m, _ in sent(scr))
    assert got == [("1 INVITE", "INVITE"), ("2 INVITE", "INVITE"), ("3 INVITE", 487)]
    assert scr.waiting_count == 0


def cancelled_while_waiting_after_a_retry(scr):
    """A call's INVITE answered 407 (a final that asks for a retry), then, the store slow, its retry (CSeq 1, another
    callee) being judged and another INVITE on the call (CSeq 2) waiting behind it, cancelled: (that INVITE, held,
    release), what was sent so far forgotten (tests/test_sip_judged_restart.py carries it across a restart)."""
    scr.on_datagram(invite(call_id="wait-6"), UAC)
    ((fwd, _),) = sent(scr)
    scr.on_datagram(make_response(fwd, 407, None, to_tag="u7").to_bytes(), UAS)     # a final that asks for a retry
    scr.udp.out.clear()
    held, release = _slow_store(scr)
    first = invite(callee="0912345679", call_id="wait-6").replace(b"z9hG4bK-", b"z9hG4bK-x-")
    other = first.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-x-", b"z9hG4bK-y-")
    scr.on_datagram(first, UAC)
    scr.on_datagram(other, UAC)
    scr.on_datagram(other.replace(b"INVITE sip", b"CANCEL sip").replace(b"CSeq: 2 INVITE", b"CSeq: 2 CANCEL"), UAC)
    scr.udp.out.clear()
    return other, held, release


def test_a_cancelled_waiting_invite_given_a_retrys_verdict_is_487_at_every_retransmission(pipe):
    """Found by a SIP probe (stop 35): an INVITE cancelled while it waited, then given the call's verdict again as a
    retry (another callee's 407 on the Call-ID), was answered 487, but its transaction kept the verdict 'allow': its
    retransmission (the 487 lost) was forwarded."""
    scr = screen(pipe)
    other, held, release = cancelled_while_waiting_after_a_retry(scr)
    while held:
        release()
    got = sorted((m.get("cseq"), m.status or m.method) for m, _ in sent(scr))
    assert got == [("1 INVITE", "INVITE"), ("2 INVITE", 487)]
    scr.udp.out.clear()
    scr.on_datagram(other, UAC)                                          # its retransmission: 487 again, not sent
    assert [(m.get("cseq"), m.status) for m, _ in sent(scr)] == [("2 INVITE", 487)]


def test_an_invite_waiting_behind_others_on_its_key_longer_than_timer_b_is_answered_503_not_forwarded(pipe, monkeypatch):
    """Found by a SIP probe (stop 35): the INVITEs on one key are judged one after another, a shared state store's
    round trip each (1,100 on one key over TCP, 0.6 s a round trip: the last would have been forwarded after 10
    minutes, its caller long gone, and each wait again was counted in waited_for_judging). One that has waited
    MAX_WAIT (Timer B) is answered 503 with Retry-After; the waits of one INVITE count once."""
    from engine.sip_screen import screening
    clock = [time.monotonic()]
    monkeypatch.setattr(screening.time, "monotonic", lambda: clock[0])
    scr = screen(pipe)
    held, release = _slow_store(scr)
    first = invite(call_id="wait-7")
    others = [first.replace(b"CSeq: 1 INVITE", b"CSeq: %d INVITE" % (2 + i)).replace(b"z9hG4bK-", b"z9hG4bK-%d-" % i)
              for i in range(3)]
    for m in [first] + others:
        scr.on_datagram(m, UAC)
    assert len(held) == 1 and scr.waiting_count == 3 and scr.stats["waited_for_judging"] == 3
    release()                                       # the first: forwarded; the second judged; the others wait again
    assert [m.method for m, _ in sent(scr)] == ["INVITE"] and scr.waiting_count == 2
    assert scr.stats["waited_for_judging"] == 3
    scr.udp.out.clear()
    clock[0] += screening.MAX_WAIT
    release()                                       # the second: forwarded; the others have waited Timer B: 503
    got = sorted((m.get("cseq"), m.status or m.method) for m, _ in sent(scr))
    assert got == [("2 INVITE", "INVITE"), ("3 INVITE", 503), ("4 INVITE", 503)]
    assert held == [] and scr.waiting_count == 0 and scr.stats["waiting_refused"] == 2


def test_a_cancelled_invite_that_waited_timer_b_is_answered_487_not_503(pipe, monkeypatch):
    """Found by a review at stop 35: a CANCEL answered 200 must be followed by the INVITE's 487 (RFC 3261 §9.2),
    also when the INVITE has waited MAX_WAIT behind others on its key."""
    from engine.sip_screen import screening
    clock = [time.monotonic()]
    monkeypatch.setattr(screening.time, "monotonic", lambda: clock[0])
    scr = screen(pipe)
    held, release = _slow_store(scr)
    _invite_wait_and_cancel(scr, "wait-8")
    assert [m.status for m, _ in sent(scr)] == [200]
    scr.udp.out.clear()
    clock[0] += screening.MAX_WAIT
    release()
    got = sorted((m.get("cseq"), m.status or m.method) for m, _ in sent(scr))
    assert got == [("1 INVITE", "INVITE"), ("2 INVITE", 487)]


def test_a_cancelled_waiting_invite_is_answered_487_when_its_judging_fails(pipe):
    """Known gap of stop 35: when judging an INVITE that had waited failed (a bug of ours), it was answered 503 even
    when a CANCEL of it had been answered 200 already; RFC 3261 §9.2 has such an INVITE answered 487."""
    scr = screen(pipe)
    held, release = _slow_store(scr)
    _invite_wait_and_cancel(scr, "wait-bug")
    scr.udp.out.clear()

    def broken(msg, src, then, callee=None):
        raise RuntimeError("a bug")
    scr._screen = broken
    release()                                           # the first: forwarded; the cancelled one's judging fails
    got = sorted((m.get("cseq"), m.status or m.method) for m, _ in sent(scr))
    assert got == [("1 INVITE", "INVITE"), ("2 INVITE", 487)]
    assert scr.waiting_count == 0 and scr.stats["internal_errors"] == 1
