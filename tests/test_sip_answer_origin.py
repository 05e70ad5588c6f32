"""Only where a call's INVITE went can answer it (responses._invite_final): a final response to the
INVITE is relayed whoever sends it (RFC 3261 §16.7), but it starts the call (the duration reported at
BYE, which feeds `short_call_share`), lets the dialog's re-INVITEs through unjudged and is counted in
`final_codes` only when it comes from the address the INVITE was sent to (any port). A caller that
forges the callee's 200 gets it relayed back and nothing else. Each case on every path a datagram
can take: the full parse, the Python fast path (its C helpers off), the fast path with them, the C
pump; and over TCP and through the pump's own socket reads on loopback."""
import socket
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.sip_screen import fastpath
from engine.sip_screen.codec import make_response, parse_datagram
from engine.sip_screen.forwarding import same_host
from engine.sip_screen.framing import StreamParser
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.recent import dialog_digest
from engine.sip_screen.server import SipSettings
from engine.sip_screen.transport import Pump, make_pump

from .sip_helpers import UAS, invite, offline_screen

CALLER = ("127.0.0.2", 5080)                     # the caller's address: not the next hop's (UAS, 127.0.0.1)
T0 = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
TO = b"To: <sip:0912345678@127.0.0.1>"


@pytest.fixture
def pipe(tmp_path):
    return build(data_dir=tmp_path, with_model=False, persist=False)


class Way:
    """An offline screen fed one way, with a clock the test moves, the call durations it reports
    and the datagrams that reached its Python path."""

    def __init__(self, pipe, way, monkeypatch):
        self.scr = scr = offline_screen(pipe)
        self.now = T0
        scr.clock = lambda: self.now
        self.durations = []
        monkeypatch.setattr(pipe, "call_ended", lambda caller, t, d: self.durations.append((caller, d)))
        self.handed = []
        real = scr.on_datagram
        scr.on_datagram = lambda d, a: (self.handed.append(d[:4]), real(d, a))
        self.feed = scr.on_datagram
        if way == "full":
            scr.fast_path = False
        elif way == "fast-python":
            monkeypatch.setattr(fastpath, "_c_relay_response", None)
            monkeypatch.setattr(fastpath, "_c_in_dialog", None)
        elif way == "pump":
            if Pump is None:
                pytest.skip("C extension not built")
            self.feed = make_pump(scr, -1, scr.udp.sendto).handle
        self.way = way

    def sent(self):
        out = [(parse_datagram(d), a) for d, a in self.scr.udp.out]
        self.scr.udp.out.clear()
        return out

    def call(self, call_id):
        """The caller's INVITE, let through to the next hop: what the next hop received."""
        self.feed(invite(call_id=call_id), CALLER)
        ((fwd, dest),) = self.sent()
        assert fwd.method == "INVITE" and dest == UAS
        return fwd

    def respond(self, fwd, status, src):
        """`status` to the forwarded INVITE, sent to the screen from `src`: relayed to the caller."""
        self.feed(make_response(fwd, status, None, to_tag="uas1").to_bytes(), src)
        ((r, dest),) = self.sent()
        assert r.status == status and dest == CALLER

    def in_dialog(self, method, call_id, cseq):
        """A request of the call's dialog from the caller, a new transaction (RFC 3261 §8.1.1.7)."""
        data = invite(call_id=call_id, cseq=f"{cseq} {method}").replace(TO, TO + b";tag=uas1") \
            .replace(b"z9hG4bK-", f"z9hG4bK-{method}{cseq}-".encode())
        if method != "INVITE":
            data = data.replace(b"INVITE sip:0912345678@127.0.0.1 SIP/2.0",
                                f"{method} sip:0912345678@127.0.0.1:5070 SIP/2.0".encode())
        self.feed(data, CALLER)
        return self.sent()


WAYS = ["full", "fast-python", "fast", "pump"]


@pytest.mark.parametrize("way", WAYS)
def test_a_200_from_the_caller_is_relayed_but_answers_nothing(pipe, way, monkeypatch):
    w = Way(pipe, way, monkeypatch)
    st = w.scr.stats
    fwd = w.call("forged-1")
    w.respond(fwd, 200, CALLER)                                  # relayed, as any response with our Via
    assert w.scr.final_codes == {}                               # not counted either
    w.now += timedelta(seconds=40)
    ((bye, _),) = w.in_dialog("BYE", "forged-1", 2)
    assert bye.method == "BYE" and w.durations == []             # never answered: no duration
    # another call: after a forged 200 its re-INVITE is judged like a new call, not passed
    fwd = w.call("forged-2")
    w.respond(fwd, 200, CALLER)
    replayed, screened = st["replayed"], st["screened"]
    ((re_inv, _),) = w.in_dialog("INVITE", "forged-2", 2)
    assert re_inv.method == "INVITE"                             # judged again (a new branch): this caller is fine
    assert st["reinvite_unknown_dialog"] == 1 and st["replayed"] == replayed and st["screened"] == screened + 1
    assert st["call_id_reused"] == 1
    assert st["final_wrong_origin"] == 2
    if way == "pump":                                            # the pump relayed the 200s itself
        assert [h for h in w.handed if h[:3] != b"INV"] == []


@pytest.mark.parametrize("way", WAYS)
def test_the_next_hops_200_answers_the_call(pipe, way, monkeypatch):
    w = Way(pipe, way, monkeypatch)
    st = w.scr.stats
    fast = st["fast_path"]
    fwd = w.call("real-1")
    w.respond(fwd, 200, CALLER)                                  # forged first: the clock does not start
    w.now += timedelta(seconds=20)
    w.respond(fwd, 200, ("127.0.0.1", 5071))                     # the next hop's IP, another port: its answer
    w.now += timedelta(seconds=5)
    screened, replayed = st["screened"], st["replayed"]
    ((re_inv, _),) = w.in_dialog("INVITE", "real-1", 2)
    assert re_inv.method == "INVITE" and st["reinvite_unknown_dialog"] == 0     # the dialog's: not judged
    assert (st["screened"], st["replayed"]) == (screened, replayed)
    ((bye, _),) = w.in_dialog("BYE", "real-1", 3)
    assert bye.method == "BYE" and w.durations == [("0901234567", 5.0)]  # 25 s had the forged 200 counted
    assert w.scr.final_codes == {"200": 1} and st["final_wrong_origin"] == 1
    if way == "pump":
        assert [h for h in w.handed if h[:3] != b"INV"] == []
    elif way != "full":
        assert st["fast_path"] - fast == 3                       # the two 200s and the BYE
    else:
        assert st["fast_path"] == 0


@pytest.mark.parametrize("way", WAYS)
def test_only_the_next_hops_final_is_counted(pipe, way, monkeypatch):
    w = Way(pipe, way, monkeypatch)
    fwd = w.call("busy-1")
    w.respond(fwd, 486, CALLER)                                  # would hide the real final (counted once)
    assert w.scr.final_codes == {}
    w.respond(fwd, 486, UAS)
    w.respond(fwd, 486, UAS)                                     # its retransmission: counted once
    assert w.scr.final_codes == {"486": 1} and w.scr.stats["final_wrong_origin"] == 1


def test_the_same_address_however_it_is_written():
    assert same_host("127.0.0.1", "127.0.0.1") and not same_host("127.0.0.1", "127.0.0.2")
    assert same_host("::1", "0:0::1") and same_host("2001:db8::1", "2001:DB8:0::1")
    assert same_host("192.0.2.7", "::ffff:192.0.2.7")            # a dual-stack socket's source
    assert not same_host("192.0.2.7", "::ffff:192.0.2.70") and not same_host("192.0.2.7", "::ffff:c000:207x")
    assert same_host("fe80::1", "fe80::1%eth0") and not same_host("fe80::1", "fe80::2")
    assert not same_host("sbc.example", "192.0.2.7")


# ---------------------------------------------------------------- on loopback: pump reads, TCP

def _answered_at(scr, call_id):
    ent = scr.answered.get(dialog_digest(scr.dialog_key, call_id))
    return ent[1] if ent else "forgotten"


@pytest.mark.skipif(Pump is None, reason="C extension not built")
def test_the_pump_reading_its_socket_checks_where_the_200_came_from(tmp_path):
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", 0))
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.2", 0))
    for s in (uas, cli):
        s.settimeout(2)
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    with SipHarness(build(data_dir=tmp_path, with_model=False, persist=False), s) as h:
        assert h.screen.udp.pump is not None
        screen = ("127.0.0.1", h.port)
        cli.sendto(invite(call_id="loop-1", via_port=cli.getsockname()[1]), screen)
        fwd = uas.recv(65535)
        ok = make_response(parse_datagram(fwd), 200, None, to_tag="uas1").to_bytes()
        cli.sendto(ok, screen)                                   # the caller forges the callee's 200
        assert parse_datagram(cli.recv(65535)).status == 200     # relayed back (after it was judged)
        assert _answered_at(h.screen, "loop-1") is None and h.screen.final_codes == {}
        uas.sendto(ok, screen)
        assert parse_datagram(cli.recv(65535)).status == 200
        assert _answered_at(h.screen, "loop-1") is not None and h.screen.final_codes == {"200": 1}
        assert h.screen.stats["final_wrong_origin"] == 1
    uas.close()
    cli.close()


def test_over_tcp_the_answer_counts_from_the_next_hop_only(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(2)
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.2", 0))
    cli.settimeout(2)
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{srv.getsockname()[1]};transport=tcp",
                    allow_networks=["127.0.0.0/8"])
    with SipHarness(build(data_dir=tmp_path, with_model=False, persist=False), s) as h:
        cli.sendto(invite(call_id="tcp-1", via_port=cli.getsockname()[1]), ("127.0.0.1", h.port))
        c, _ = srv.accept()                                      # the screen's connection to the next hop
        c.settimeout(2)
        p = StreamParser()
        while (fwd := p.next()) is None:
            p.feed(c.recv(65535))
        ok = make_response(fwd, 200, None, to_tag="uas1").to_bytes()
        forger = socket.create_connection(("127.0.0.1", h.port), source_address=("127.0.0.2", 0))
        forger.sendall(ok)                                       # the caller's own TCP connection
        assert parse_datagram(cli.recv(65535)).status == 200     # relayed to the caller (by UDP, its Via)
        assert _answered_at(h.screen, "tcp-1") is None and h.screen.final_codes == {}
        c.sendall(ok)                                            # on the connection the INVITE went out on
        assert parse_datagram(cli.recv(65535)).status == 200
        assert _answered_at(h.screen, "tcp-1") is not None and h.screen.final_codes == {"200": 1}
        assert h.screen.stats["final_wrong_origin"] == 1
        forger.close()
        c.close()
    srv.close()
    cli.close()


@pytest.mark.parametrize("way", WAYS)
def test_answer_networks_name_where_else_an_answer_may_come_from(pipe, way, monkeypatch):
    """A next hop answering from other addresses (an SBC pair, a VIP's backends): sip.toml's answer_networks."""
    w = Way(pipe, way, monkeypatch)
    backend = ("127.0.0.9", 5060)
    fwd = w.call("sbc-1")
    w.respond(fwd, 200, backend)                                 # not listed: relayed, answers nothing
    assert w.scr.stats["final_wrong_origin"] == 1 and w.scr.final_codes == {}
    w.scr.s.answer_networks = ["127.0.0.8/30"]                   # a reload puts a new list in force
    fwd = w.call("sbc-2")
    w.respond(fwd, 200, backend)
    assert w.scr.final_codes == {"200": 1}
    w.now += timedelta(seconds=25)
    w.in_dialog("BYE", "sbc-2", 2)
    assert [d for _, d in w.durations] == [25.0]
    fwd = w.call("sbc-3")
    w.respond(fwd, 200, CALLER)                                  # the caller is still not the callee
    assert w.scr.stats["final_wrong_origin"] == 2


def test_answer_networks_are_checked_at_their_line(tmp_path):
    from engine.sip_screen.settings import load_sip_settings
    (tmp_path / "sip.toml").write_text('[sip]\nlisten = "127.0.0.1:5060"\nanswer_networks = ["10.0.0.0/33"]\n')
    with pytest.raises(ValueError, match=r"sip.toml:3:1: \[sip\] answer_networks '10.0.0.0/33' is not an IP network"):
        load_sip_settings(tmp_path)


@pytest.mark.parametrize("way", WAYS)
def test_calls_that_fail_never_push_an_established_call_out_of_the_answered_memory(pipe, way, monkeypatch):
    """Probe round 2: a call ended by a 3xx-6xx (busy, no answer, CANCEL's 487) kept its entry for ever, so
    ANSWERED failed calls pushed out the calls in progress: their session refresh was judged like a new
    call and their BYE recorded no duration."""
    import engine.sip_screen.server as S
    monkeypatch.setattr(S, "ANSWERED", 8)
    w = Way(pipe, way, monkeypatch)
    fwd = w.call("long-1")
    w.respond(fwd, 200, UAS)                                     # answered: the call is up
    for n in range(20):                                          # then 20 calls that fail downstream
        w.respond(w.call(f"busy-{n}"), (486, 480, 487)[n % 3], UAS)
    assert len(w.scr.answered) == 8 and len(w.scr.answered.low) == 7     # the failed ones, forgotten first
    w.now += timedelta(minutes=20)
    ((re_inv, _),) = w.in_dialog("INVITE", "long-1", 2)
    assert re_inv.method == "INVITE" and w.scr.stats["reinvite_unknown_dialog"] == 0     # not judged again
    ((bye, _),) = w.in_dialog("BYE", "long-1", 3)
    assert bye.method == "BYE" and [d for _c, d in w.durations] == [1200.0]


@pytest.mark.parametrize("way", WAYS)
def test_a_call_challenged_then_sent_again_with_credentials_is_answered(pipe, way, monkeypatch):
    """A 407 (or a 3xx) is no end of the call: it comes again with the same Call-ID and From tag (RFC 3261
    §22.2, §8.1.3.4), its verdict replayed; its 200 still answers it (review of the fix above)."""
    w = Way(pipe, way, monkeypatch)
    fwd = w.call("auth-1")
    w.respond(fwd, 407, UAS)
    data = invite(call_id="auth-1", cseq="2 INVITE", extra=["Proxy-Authorization: Digest x"]) \
        .replace(b"z9hG4bK-", b"z9hG4bK-auth2-")
    w.feed(data, CALLER)
    ((fwd2, _d),) = w.sent()
    assert fwd2.method == "INVITE"
    w.respond(fwd2, 200, UAS)
    w.now += timedelta(minutes=10)
    ((re_inv, _),) = w.in_dialog("INVITE", "auth-1", 3)
    ((bye, _),) = w.in_dialog("BYE", "auth-1", 4)
    assert (w.scr.stats["reinvite_unknown_dialog"], [d for _c, d in w.durations]) == (0, [600.0])


@pytest.mark.parametrize("way", WAYS)
def test_a_2xx_after_a_final_from_another_fork_still_answers_the_call(pipe, way, monkeypatch):
    """RFC 3261 §16.7 step 10: a forking proxy downstream forwards a 2xx even after a final non-2xx."""
    w = Way(pipe, way, monkeypatch)
    fwd = w.call("fork-1")
    w.respond(fwd, 603, UAS)
    w.feed(make_response(fwd, 200, None, to_tag="uas1").to_bytes(), UAS)
    w.sent()
    w.now += timedelta(minutes=10)
    ((bye, _),) = w.in_dialog("BYE", "fork-1", 2)
    assert [d for _c, d in w.durations] == [600.0]


@pytest.mark.parametrize("way", WAYS)
def test_a_challenged_call_outlives_older_failed_calls_when_the_memory_is_full(pipe, way, monkeypatch):
    """Review: demoted entries were evicted newest first, so with the memory full of failed calls the call just
    challenged (407) went first and its retry's 200 answered nothing."""
    import engine.sip_screen.server as S
    monkeypatch.setattr(S, "ANSWERED", 8)
    w = Way(pipe, way, monkeypatch)
    for n in range(10):
        w.respond(w.call(f"old-busy-{n}"), 486, UAS)
    fwd = w.call("auth-2")
    w.respond(fwd, 407, UAS)
    w.respond(w.call("other-1"), 200, UAS)                       # another call between the 407 and the retry
    data = invite(call_id="auth-2", cseq="2 INVITE", extra=["Proxy-Authorization: Digest x"]) \
        .replace(b"z9hG4bK-", b"z9hG4bK-auth2-")
    w.feed(data, CALLER)
    ((fwd2, _d),) = w.sent()
    w.respond(fwd2, 200, UAS)
    w.now += timedelta(minutes=10)
    w.in_dialog("INVITE", "auth-2", 3)
    w.in_dialog("BYE", "auth-2", 4)
    assert (w.scr.stats["reinvite_unknown_dialog"], [d for _c, d in w.durations]) == (0, [600.0])
