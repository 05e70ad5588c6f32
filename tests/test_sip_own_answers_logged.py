"""Every INVITE the SIP screen answers itself with a final, unjudged, leaves one line in the verdict log (kind call,
action refuse, the status and why: engine/sip_screen/calllog.py), as the drain's 503 always did: the 400/416/420/
482/483/505 of its RFC 3261 §16.3 checks and its parser, the 503 when too many INVITEs wait for a verdict. Once per
INVITE transaction (its retransmission, answered again, writes none), for INVITEs only, with what could be read of
an INVITE that did not parse, and never at the cost of the answer. `telfilter report` counts them under call/refuse.
Before, none of these wrote a line: a flood of them left no trace in the log the regulator's report is made from."""
import asyncio
from datetime import timezone

from engine.app import build
from engine.report import make_report
from engine.sip_screen import screening
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.verdictlog import VerdictLog

from .sip_transport_helpers import udp_sock
from .test_sip_drain import CALLER, Lines, screen  # noqa: F401  (screen: fixture)
from .test_sip_refused_transaction import _next_hop_gets_only, _request


def _answer(h, cli, data):
    cli.sendto(data, ("127.0.0.1", h.port))
    return parse_datagram(cli.recv(65535))


def test_an_invite_the_parser_refuses_is_logged_once_with_the_parsers_reason(screen):
    h, cli, uas = screen
    inv = _request("INVITE", cli, "p1", "bad-1", CALLER).replace(b"Content-Length: 0", b"Content-Length: zz")
    r = _answer(h, cli, inv)
    assert r.status == 400
    ((_, call_id, caller, callee, ingress, status, reason),) = h.vlog.refusals
    assert (call_id, caller, callee, status) == ("bad-1", CALLER, "0912345678", 400)
    assert ingress == f"127.0.0.1:{cli.getsockname()[1]}" and "Content-Length" in reason
    assert _answer(h, cli, inv).status == 400                       # its retransmission: refused again, no line
    assert len(h.vlog.refusals) == 1 and h.vlog.calls == []


def test_an_invite_the_checks_refuse_is_logged_with_its_status_and_reason(screen):
    h, cli, uas = screen
    hops = _request("INVITE", cli, "m1", "hops-1", CALLER).replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    ext = _request("INVITE", cli, "x1", "ext-1", CALLER).replace(b"Max-Forwards: 70",
                                                                 b"Max-Forwards: 70\r\nProxy-Require: foo")
    newer = _request("INVITE", cli, "v1", "ver-1", CALLER).replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1)
    assert [_answer(h, cli, m).status for m in (hops, ext, newer, hops)] == [483, 420, 505, 483]
    got = [(a[1], a[5], a[6]) for a in h.vlog.refusals]             # (the retransmission of the first: no line)
    assert got[:2] == [("hops-1", 483, "Too Many Hops"), ("ext-1", 420, "Bad Extension")]
    assert len(got) == 3 and got[2][:2] == ("ver-1", 505) and "version" in got[2][2]


def test_other_requests_the_screen_refuses_write_no_call_line(screen):
    h, cli, uas = screen
    for method in ("OPTIONS", "BYE", "REGISTER"):
        m = _request(method, cli, f"o-{method}", f"other-{method}", CALLER).replace(b"Max-Forwards: 70",
                                                                                    b"Max-Forwards: 0")
        assert _answer(h, cli, m).status == 483
    assert h.vlog.refusals == []


def test_a_refusal_line_names_a_version_it_does_not_carry_whole(screen):
    """The 505's reason quotes the version as the other parse errors quote a value: its first characters. A request
    line or Via of 30,000 digits of version wrote them all into the 505's verdict-log line (one such line per INVITE
    of a flood; the answer's Warning cut it to 80 already)."""
    h, cli, uas = screen
    line = _request("INVITE", cli, "l1", "long-1", CALLER).replace(b" SIP/2.0\r\n", b" SIP/2." + b"9" * 30000 + b"\r\n", 1)
    via = _request("INVITE", cli, "l2", "long-2", CALLER).replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2." + b"9" * 8000
                                                                     + b"/UDP", 1)
    assert [_answer(h, cli, m).status for m in (line, via)] == [505, 505]
    assert [len(a[6]) < 100 for a in h.vlog.refusals] == [True, True], [len(a[6]) for a in h.vlog.refusals]


def test_an_invite_without_call_id_or_from_is_logged_with_what_could_be_read(screen):
    h, cli, uas = screen
    inv = _request("INVITE", cli, "n1", "gone", CALLER)
    no_call_id = inv.replace(b"Call-ID: gone\r\n", b"")
    no_from = _request("INVITE", cli, "n2", "no-from-x", CALLER).replace(
        f"From: <sip:{CALLER}@127.0.0.1>;tag=from1\r\n".encode(), b"").replace(b"no-from-x", b"no-from-\xff")
    assert [_answer(h, cli, m).status for m in (no_call_id, no_from)] == [400, 400]
    (a, b) = h.vlog.refusals
    assert (a[1], a[2], a[5]) == (None, CALLER, 400) and "Call-Id" in a[6]
    assert (b[1], b[2], b[5]) == ("no-from-\\xff", "", 400) and "From" in b[6]   # (bytes not UTF-8: escaped)


def test_an_invite_refused_while_too_many_wait_for_a_verdict_is_logged_once(screen, monkeypatch):
    """A shared state store slow to confirm: the first call is held being judged; another INVITE on its Call-ID,
    From and callee would wait, but none may (MAX_WAITING 0): 503, its line naming why, once."""
    h, cli, uas = screen
    monkeypatch.setattr(screening, "MAX_WAITING", 0)
    held = []
    h.screen._screen = lambda msg, src, then, *callee: held.append(msg)
    cli.sendto(_request("INVITE", cli, "w1", "wait-1", CALLER), ("127.0.0.1", h.port))
    other = _request("INVITE", cli, "w2", "wait-1", CALLER, cseq=2)
    r = _answer(h, cli, other)
    assert (r.status, r.get("retry-after"), r.get("cseq")) == (503, "1", "2 INVITE") and len(held) == 1
    ((_, call_id, caller, callee, _, status, reason),) = h.vlog.refusals
    assert (call_id, caller, callee, status, reason) == ("wait-1", CALLER, "0912345678", 503,
                                                         screening.TOO_MANY_WAITING)
    assert _answer(h, cli, other).status == 503                     # its retransmission (the 503 lost): no line
    assert len(h.vlog.refusals) == 1 and h.screen.stats["waiting_refused"] == 2


def test_an_invite_that_waited_too_long_for_a_verdict_is_logged(screen, monkeypatch):
    """The first call's verdict comes after the other waited MAX_WAIT (0 here): the first goes on, the other is
    answered 503, its line naming the wait."""
    h, cli, uas = screen
    monkeypatch.setattr(screening, "MAX_WAIT", 0.0)
    held, real = [], h.screen._screen
    h.screen._screen = lambda msg, src, then, *callee: held.append((msg, src, then, *callee))
    cli.sendto(_request("INVITE", cli, "t1", "late-1", CALLER), ("127.0.0.1", h.port))
    cli.sendto(_request("INVITE", cli, "t2", "late-1", CALLER, cseq=2), ("127.0.0.1", h.port))
    assert _next_hop_gets_only(h, cli, uas, "mk").method == "OPTIONS"   # both read: one held, one waiting
    h.screen._screen = real

    async def release():
        real(*held.pop())
    h.call(release())
    assert parse_datagram(uas.recv(65535)).get("cseq") == "1 INVITE"
    r = parse_datagram(cli.recv(65535))
    assert (r.status, r.get("cseq")) == (503, "2 INVITE")
    ((_, call_id, _, _, _, status, reason),) = h.vlog.refusals
    assert (call_id, status, reason) == ("late-1", 503, screening.WAITED_TOO_LONG) and len(h.vlog.calls) == 1


class Broken(Lines):
    def write_call_refusal(self, *a):
        raise OSError("disk full")


def test_a_log_that_cannot_be_written_never_changes_the_answer(tmp_path):
    cli, uas = udp_sock(), udp_sock()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    h = SipHarness(build(data_dir=tmp_path / "data", with_model=False, persist=False), s, Broken()).start()
    try:
        inv = _request("INVITE", cli, "f1", "fail-1", CALLER).replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
        assert _answer(h, cli, inv).status == 483
        assert h.screen.stats["log_failed"] == 1
    finally:
        h.stop()
        cli.close()
        uas.close()


def test_the_report_counts_the_screens_own_answers_under_call_refuse(tmp_path):
    cli, uas = udp_sock(), udp_sock()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    vlog = VerdictLog(str(tmp_path / "verdicts.log"))
    h = SipHarness(build(data_dir=tmp_path / "data", with_model=False, persist=False), s, vlog).start()
    try:
        hops = _request("INVITE", cli, "r1", "rep-1", CALLER).replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
        bad = _request("INVITE", cli, "r2", "rep-2", CALLER).replace(b"Content-Length: 0", b"Content-Length: zz")
        assert [_answer(h, cli, m).status for m in (hops, bad, hops)] == [483, 400, 483]
        h.call(asyncio.sleep(0))
    finally:
        h.stop()
        cli.close()
        uas.close()
    vlog.close()
    summary = make_report([tmp_path / "verdicts.log"], tmp_path / "out", timezone.utc, progress=False, with_plots=False)
    assert summary["totals"]["call"] == {"allow": 0, "tag": 0, "drop": 0, "refuse": 2}
    assert summary["inputs"]["malformed"] == 0



def test_a_retransmitted_invite_with_no_via_branch_is_logged_once(screen):
    """An RFC 2543 INVITE (no branch on its top Via; RFC 3261 §17.2.3 names its transaction by Request-URI, From
    tag, Call-ID, CSeq and top Via) or one with no Via at all, refused by the checks, and its retransmission: two
    answers, one line. Each retransmission wrote a line of its own (the refusal was remembered by branch only): a
    caller retransmitting for its Timer B left up to 7 refusals in the log for one INVITE."""
    h, cli, uas = screen
    no_branch = _request("INVITE", cli, "nb", "no-branch-1", CALLER).replace(b";branch=z9hG4bKnb", b"").replace(
        b"Max-Forwards: 70", b"Max-Forwards: 0")
    no_via = b"".join(line for line in _request("INVITE", cli, "nv", "no-via-1", CALLER).splitlines(True)
                      if not line.startswith(b"Via:"))
    assert [_answer(h, cli, m).status for m in (no_branch, no_branch, no_via, no_via)] == [483, 483, 400, 400]
    assert [(a[1], a[5]) for a in h.vlog.refusals] == [("no-branch-1", 483), ("no-via-1", 400)]
    # another INVITE on that Call-ID (a new CSeq number: another transaction) has its own line
    other = no_branch.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE")
    assert _answer(h, cli, other).status == 483
    assert [(a[1], a[5]) for a in h.vlog.refusals][2:] == [("no-branch-1", 483)]
