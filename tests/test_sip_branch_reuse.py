"""An INVITE's retransmission is the same request (RFC 3261 §17.1.1.2): same top Via branch and same CSeq. Found by
the SIP counting probe (h_sipcount): an INVITE on the same Call-ID, From, callee and branch with a new CSeq number,
within 32 s of the call's verdict, was taken for a retransmission: an advertiser's second call to one callee (after
its first was answered and ended, or refused busy) was forwarded on the first call's verdict, neither judged nor
counted. A UA gives every new request a new branch (§8.1.1.7); reusing one is no way past the cap."""
from datetime import datetime, timezone

import pytest

from engine.sip_screen.codec import make_response
from engine.sip_screen.grammar import parse_via

from .sip_helpers import AD_CALLER, ad_pipe, CallLines as Lines, invite, offline_screen, sent as _sent, UAC, UAS


@pytest.fixture
def pipe(tmp_path):
    return ad_pipe(tmp_path)


@pytest.mark.parametrize("final", [200, 486, 487])
def test_an_invite_reusing_a_judged_calls_branch_with_a_new_cseq_is_a_new_call(pipe, final):
    vlog = Lines()
    scr = offline_screen(pipe, vlog)
    scr.clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)     # 10:00 in Hanoi: ad hours
    inv = invite(caller=AD_CALLER, call_id=f"branch-{final}")
    scr.on_datagram(inv, UAC)
    ((fwd, dest),) = _sent(scr)
    assert fwd.method == "INVITE" and dest == UAS
    scr.on_datagram(inv, UAC)                                   # its retransmission: the same answer, not judged
    ((m, _),) = _sent(scr)
    assert m.method == "INVITE" and scr.stats["screened"] == 1 and scr.stats["replayed"] == 1
    scr.on_datagram(make_response(fwd, final, None, to_tag="uas1").to_bytes(), UAS)
    assert [m.status for m, _ in _sent(scr)] == [final]
    again = inv.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE")   # the same branch, a new request
    for _ in range(2):                                          # (and its own retransmission)
        scr.on_datagram(again, UAC)
        ((m, _),) = _sent(scr)
        assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in m.get("reason")
    assert scr.stats["screened"] == 2 and len(vlog.calls) == 2 and scr.stats["replayed"] == 2


@pytest.mark.parametrize("final", [200, 486])
def test_a_new_call_on_a_reused_branch_leaves_as_a_new_transaction(pipe, final):
    """Judged as the new call it is, it went out with the first call's branch (the forwarded-INVITE memory is kept by
    the caller's branch): the next hop takes it for a retransmission of that transaction (§17.2.3) and absorbs it,
    the call counted and never ringing. It leaves with a branch of its own; the first call's copies keep theirs."""
    scr = offline_screen(pipe, Lines())
    scr.clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
    inv = invite(caller="0912000111", call_id=f"reuse-{final}")
    scr.on_datagram(inv, UAC)
    ((fwd, _),) = _sent(scr)
    scr.on_datagram(make_response(fwd, final, None, to_tag="uas1").to_bytes(), UAS)
    _sent(scr)
    scr.on_datagram(inv.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE"), UAC)
    ((fwd2, dest),) = _sent(scr)
    assert fwd2.method == "INVITE" and dest == UAS and scr.stats["screened"] == 2
    assert _top_branch(fwd2) != _top_branch(fwd)
    scr.on_datagram(inv.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE"), UAC)     # its retransmission: its own branch
    ((fwd3, _),) = _sent(scr)
    assert _top_branch(fwd3) == _top_branch(fwd2) and scr.stats["screened"] == 2


def _top_branch(m):
    return parse_via(m.get("via")).params["branch"]
