"""What a stateless screen must still get right about transactions (review of the SIP screen):
a call's retransmitted or re-challenged INVITE is not judged again, and each INVITE transaction of a call keeps
its own verdict; the ACK of a non-2xx final goes where its INVITE went with its branch; only the ACK of our own
answer is absorbed; our answers go to the sent-by port; TCP peers are framed, timed and connected to correctly;
and what the screen remembers is bounded in bytes, whatever the Call-ID's or branch's length. The shared
fixtures and helpers of the test_sip_transactions_* files are here. Dialogs (To tags, reused Call-IDs) are in
test_sip_transactions_dialogs.py; INVITEs waiting for a verdict and their CANCELs in
test_sip_transactions_cancel_waiting.py."""
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
