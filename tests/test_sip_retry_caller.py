"""A call tried again after a final that asks for it (a 401/407 challenge, a 3xx, a 5xx) gets its verdict replayed,
not judged and counted again -- but only when it is tried again by the caller it was judged as. Found by the SIP
counting probe (h_sipcount): a plain number's INVITE was challenged 407 by the next hop, and its retry asserted an
advertiser's number (P-Asserted-Identity) at 23:00: it rang the callee on the plain number's verdict, the
advertiser's call never judged (outside 08:00-17:00, DNC, the 1-a-day cap) nor counted."""
import re
from datetime import datetime, timezone

import pytest

from engine.sip_screen.codec import make_response
from engine.sip_screen.transport import Pump, make_pump

from .sip_helpers import AD_CALLER, ad_pipe, CallLines as Lines, invite, offline_screen, sent as _sent, UAC, UAS

PLAIN = "0901234567"


@pytest.fixture
def pipe(tmp_path):
    return ad_pipe(tmp_path)


def _screen(pipe, vlog, hanoi_hour, way):
    scr = offline_screen(pipe, vlog)
    scr.clock = lambda: datetime(2026, 3, 2, (hanoi_hour - 7) % 24, 0, tzinfo=timezone.utc)
    feed = scr.on_datagram
    if way == "full":
        scr.fast_path = False
    elif way == "pump":
        if Pump is None:
            pytest.skip("C extension not built")
        feed = make_pump(scr, -1, scr.udp.sendto).handle
    return scr, feed


def _challenged_then_retried(scr, feed, code, first_pai, retry_pai, call_id):
    """An INVITE asserting `first_pai`, answered `code` by the next hop, tried again (CSeq 2, a new branch, the same
    Call-ID, From and callee) asserting `retry_pai`: what the retry got."""
    inv = invite(caller=PLAIN, call_id=call_id, extra=[f"P-Asserted-Identity: <tel:{first_pai}>"])
    feed(inv, UAC)
    ((fwd, dest),) = _sent(scr)
    assert fwd.method == "INVITE" and dest == UAS
    feed(make_response(fwd, code, None, to_tag="uas1").to_bytes(), UAS)
    assert [m.status for m, _ in _sent(scr)] == [code]
    retry = re.sub(rb"branch=[^;]+", b"branch=z9hG4bK-retry", inv, count=1)
    retry = retry.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE")
    retry = retry.replace(f"<tel:{first_pai}>".encode(), f"<tel:{retry_pai}>".encode())    # (From as it was)
    assert retry.count(b"From: ") == 1 and retry.split(b"From: ")[1][:60] == inv.split(b"From: ")[1][:60]
    feed(retry, UAC)
    ((m, _),) = _sent(scr)
    return m


@pytest.mark.parametrize("way", ["full", "fast", "pump"])
@pytest.mark.parametrize("code", [407, 302, 503])
def test_a_retry_asserting_another_caller_is_judged_as_that_caller(pipe, code, way):
    vlog = Lines()
    scr, feed = _screen(pipe, vlog, 23, way)                    # 23:00 in Hanoi: no ad calls
    m = _challenged_then_retried(scr, feed, code, PLAIN, AD_CALLER, f"who-{code}-{way}")
    assert m.status == 608 and "AD_CALL_OUTSIDE_HOURS" in m.get("reason")
    assert scr.stats["screened"] == 2 and [c[2] for c in vlog.calls] == [PLAIN, AD_CALLER]


@pytest.mark.parametrize("way", ["full", "pump"])
def test_a_retry_by_the_same_caller_however_written_is_replayed_not_counted_again(pipe, way):
    vlog = Lines()
    scr, feed = _screen(pipe, vlog, 10, way)                    # ad hours: the advertiser's one call a day
    m = _challenged_then_retried(scr, feed, 407, AD_CALLER, "+84" + AD_CALLER[1:], f"same-{way}")
    assert m.method == "INVITE"                                 # its own count did not refuse it
    assert scr.stats["screened"] == 1 and scr.stats["replayed"] == 1 and len(vlog.calls) == 1
    assert scr.stats["call_id_reused"] == 0


@pytest.mark.parametrize("code", [401, 503, 302])
def test_a_retry_the_screen_cannot_forward_may_come_again_not_refused_by_its_own_count(pipe, code):
    """Found by the same probe: an ad call challenged 401 (or failed over, or redirected) whose retry the screen could
    not forward (answered 503 by the screen: its next hop unreachable a moment) had its caller's next try judged as
    a new call and refused AD_CALL_FREQUENCY_CAP by the call's own count: a call that never rang used up the day.
    The screen's 503 asks for a retry as a next hop's does: the next try gets the call's verdict again."""
    from engine.sip_screen.settings import permitted_ranges
    vlog = Lines()
    scr, feed = _screen(pipe, vlog, 10, "full")
    inv = invite(caller=AD_CALLER, call_id=f"unsent-{code}")
    feed(inv, UAC)
    ((fwd, _),) = _sent(scr)
    feed(make_response(fwd, code, None, to_tag="uas1").to_bytes(), UAS)
    assert [m.status for m, _ in _sent(scr)] == [code]

    def retry(n):
        data = re.sub(rb"branch=[^;]+", b"branch=z9hG4bK-r%d" % n, inv, count=1)
        feed(data.replace(b"CSeq: 1 INVITE", b"CSeq: %d INVITE" % n), UAC)
        ((m, _),) = _sent(scr)
        return m
    ranges, hop = scr.ranges, scr.s.next_hop
    scr.ranges, scr.s.next_hop = permitted_ranges(["127.0.0.1/32"]), "127.0.0.2:5070"    # the next hop unreachable
    assert retry(2).status == 503
    scr.ranges, scr.s.next_hop = ranges, hop
    m = retry(3)
    assert m.method == "INVITE"                                 # the same call, its verdict replayed
    assert scr.stats["screened"] == 1 and len(vlog.calls) == 1 and scr.stats["call_id_reused"] == 0
    m = invite(caller=AD_CALLER, call_id=f"unsent-{code}-2")    # the cap still holds for another call
    feed(m, UAC)
    ((m, _),) = _sent(scr)
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in m.get("reason")
