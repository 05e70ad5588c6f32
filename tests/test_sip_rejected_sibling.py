"""Two INVITEs on one Call-ID and From tag at once (a forking proxy upstream sending the call to two gateways, or to
two numbers, through the screen), one let through and one rejected: the rejected one must not take the let-through
call's place in the answered-call memory. Found by the SIP counting probe (h_sipcount): the rejected sibling erased
the call's entry (and over-wrote where its INVITE went), so the call's 200 was no answer, its session refresh was
judged as a new call and refused AD_CALL_FREQUENCY_CAP by the call's own count (3 verdict lines for 2 INVITEs), and
its BYE recorded no duration."""
import re
from datetime import datetime, timezone

import pytest

from engine.sip_screen.codec import make_response

from .sip_helpers import AD_CALLER, ad_pipe, CallLines as Lines, invite, offline_screen, sent as _sent, UAC, UAS

CALLEE, DNC_CALLEE = "0912345678", "0912000002"


@pytest.fixture
def pipe(tmp_path):
    return ad_pipe(tmp_path, dnc_v=["0912000002"])


def _with_branch(data, b):
    return re.sub(rb"branch=[^;]+", b"branch=z9hG4bK-" + b, data, count=1)


@pytest.mark.parametrize("sibling,symbol", [(CALLEE, "AD_CALL_FREQUENCY_CAP"), (DNC_CALLEE, "AD_CALL_TO_DNC")])
def test_a_rejected_sibling_invite_leaves_the_let_through_call_answered_and_refreshable(pipe, sibling, symbol):
    vlog = Lines()
    scr = offline_screen(pipe, vlog)
    t = [datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)]      # 10:00 in Hanoi: ad hours
    scr.clock = lambda: t[0]
    a = invite(caller=AD_CALLER, callee=CALLEE, call_id="sib-1")
    scr.on_datagram(_with_branch(a, b"A"), UAC)
    ((fwd, dest),) = _sent(scr)
    assert fwd.method == "INVITE" and dest == UAS
    scr.on_datagram(_with_branch(invite(caller=AD_CALLER, callee=sibling, call_id="sib-1"), b"B"), UAC)
    ((m, _),) = _sent(scr)
    assert m.status == 608 and symbol in m.get("reason")
    scr.on_datagram(make_response(fwd, 200, None, to_tag="uas-a").to_bytes(), UAS)
    assert [m.status for m, _ in _sent(scr)] == [200]
    assert scr.stats["final_wrong_origin"] == 0                 # the call's answer, from where its INVITE went
    refresh = _with_branch(a, b"R").replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE") \
        .replace(b"To: <sip:%s@127.0.0.1>" % CALLEE.encode(), b"To: <sip:%s@127.0.0.1>;tag=uas-a" % CALLEE.encode())
    scr.on_datagram(refresh, UAC)
    ((m, dest),) = _sent(scr)
    assert m.method == "INVITE" and dest == UAS                 # in the dialog: not judged
    assert scr.stats["screened"] == 2 and len(vlog.calls) == 2 and scr.stats["reinvite_unknown_dialog"] == 0
    t[0] = datetime(2026, 3, 2, 3, 2, tzinfo=timezone.utc)      # two minutes later the caller hangs up
    bye = _with_branch(refresh, b"E").replace(b"INVITE sip", b"BYE sip").replace(b"CSeq: 2 INVITE", b"CSeq: 3 BYE")
    scr.on_datagram(bye, UAC)
    assert [m.method for m, _ in _sent(scr)] == ["BYE"]
    assert [d for _, d in pipe.state.calls.recent(int("84" + AD_CALLER[1:]))] == [120.0]


def test_an_invite_whose_judging_raises_gives_the_siblings_entry_back(pipe, monkeypatch):
    """The judge raising on a sibling INVITE (answered 500 by the screen) must not leave that INVITE's entry in the
    answered-call memory in place of the let-through call's: the call's 200 stays its answer (a review found the
    entry put before judging and given back only after a verdict)."""
    vlog = Lines()
    scr = offline_screen(pipe, vlog)
    scr.clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
    a = invite(caller=AD_CALLER, callee=CALLEE, call_id="sib-2")
    scr.on_datagram(_with_branch(a, b"A"), UAC)
    ((fwd, _),) = _sent(scr)
    from engine.sip_screen.recent import dialog_digest
    k = dialog_digest(scr.dialog_key, "sib-2")
    before = scr.answered.get(k)
    assert before is not None
    judge = pipe.judge

    def broken(call, *a, **kw):
        raise RuntimeError("a judge that fails")
    monkeypatch.setattr(pipe, "judge", broken)
    scr.on_datagram(_with_branch(invite(caller=AD_CALLER, callee=DNC_CALLEE, call_id="sib-2"), b"B"), UAC)
    assert [m.status for m, _ in _sent(scr)] == [500]
    assert scr.answered.get(k) is before
    monkeypatch.setattr(pipe, "judge", judge)
    scr.on_datagram(make_response(fwd, 200, None, to_tag="uas-a").to_bytes(), UAS)
    assert [m.status for m, _ in _sent(scr)] == [200] and scr.stats["final_wrong_origin"] == 0
