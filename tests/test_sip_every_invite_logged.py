"""Every INVITE the SIP screen answers, or lets through, has exactly one verdict-log line naming why
(engine/sip_screen/calllog.py), once per INVITE transaction: the answers the screen gave itself that wrote none --
the 487 of an INVITE cancelled while it waited for another's verdict, the 503 when no destination can be used, the
500 of an internal error --, a refusal reusing another transaction's branch and Call-ID with its own CSeq number
(it was taken for that transaction's retransmission: no line), and a call judged and let through that never left
(its forward failed: 503; cancelled while judged: 487): its verdict line stays and a `call_unsent` line follows it,
naming it by Call-ID and time. Through `telfilter serve` with sipp: tests/test_sip_unsent_serve.py."""
import errno
import os
import time

import pytest

from engine.sip_screen import screening

from .sip_helpers import UAC, invite
from .test_sip_transactions_cancel_waiting import _invite_wait_and_cancel, _slow_store
from .test_sip_transactions_routing import AD_CALLER, pipe, screen, sent  # noqa: F401  (pipe: fixture)


WAITED_CANCELLED = "cancelled while waiting for a verdict"      # (the reasons as the lines say them)


class Lines:
    """A verdict log that keeps the call lines written: verdicts, refusals and call_unsent lines."""

    def __init__(self):
        self.calls, self.refusals, self.unsent = [], [], []

    def write_call(self, *a):
        self.calls.append(a)

    def write_call_refusal(self, *a):
        self.refusals.append(a)

    def write_call_unsent(self, *a):
        self.unsent.append(a)


def _statuses(scr):
    got = sorted((m.get("cseq"), m.status or m.method) for m, _ in sent(scr))
    scr.udp.out.clear()
    return got


def _waited(call_id):
    """The INVITE that waits in _invite_wait_and_cancel (CSeq 2, a branch of its own)."""
    return invite(call_id=call_id).replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-2-")


def _refused(vlog):
    """(Call-ID, status, reason) of each refusal line."""
    return [(a[1], a[5], a[6]) for a in vlog.refusals]


def test_an_invite_cancelled_while_it_waited_past_timer_b_is_logged_487(pipe, monkeypatch):
    clock = [time.monotonic()]
    monkeypatch.setattr(screening.time, "monotonic", lambda: clock[0])
    vlog = Lines()
    scr = screen(pipe, vlog)
    held, release = _slow_store(scr)
    _invite_wait_and_cancel(scr, "wait-487")
    assert _statuses(scr) == [("2 CANCEL", 200)]
    clock[0] += screening.MAX_WAIT
    release()
    assert _statuses(scr) == [("1 INVITE", "INVITE"), ("2 INVITE", 487)]
    assert _refused(vlog) == [("wait-487", 487, WAITED_CANCELLED)] and len(vlog.calls) == 1
    scr.on_datagram(_waited("wait-487"), UAC)           # its retransmission (the 487 lost): 487 again, no line
    assert _statuses(scr) == [("2 INVITE", 487)] and len(vlog.refusals) == 1 and len(vlog.calls) == 1


def _judging_fails(scr):
    def broken(msg, src, then, *callee):
        raise RuntimeError("a bug")
    scr._screen = broken


def _drain_begins(scr):
    scr.draining = True


@pytest.mark.parametrize("meanwhile", [_judging_fails, _drain_begins])
def test_an_invite_cancelled_while_it_waited_then_not_judged_is_logged_487(pipe, meanwhile):
    """Its judging fails (a bug of ours), or the drain began while it waited: 487 all the same, and its line."""
    vlog = Lines()
    scr = screen(pipe, vlog)
    held, release = _slow_store(scr)
    _invite_wait_and_cancel(scr, "wait-then")
    meanwhile(scr)
    release()
    assert _statuses(scr) == [("1 INVITE", "INVITE"), ("2 CANCEL", 200), ("2 INVITE", 487)]
    assert _refused(vlog) == [("wait-then", 487, WAITED_CANCELLED)]
    scr.on_datagram(_waited("wait-then"), UAC)          # its retransmission (the 487 lost): 487 again, no line
    assert _statuses(scr) == [("2 INVITE", 487)] and len(vlog.refusals) == 1 and len(vlog.calls) == 1


def test_a_call_cancelled_while_judged_keeps_its_verdict_line_and_gets_a_call_unsent_line(pipe):
    vlog = Lines()
    scr = screen(pipe, vlog)
    held, release = _slow_store(scr)
    inv = invite(caller=AD_CALLER, call_id="judged-487")
    scr.on_datagram(inv, UAC)
    scr.on_datagram(inv.replace(b"INVITE sip", b"CANCEL sip").replace(b"CSeq: 1 INVITE", b"CSeq: 1 CANCEL"), UAC)
    release()
    assert _statuses(scr) == [("1 CANCEL", 200), ("1 INVITE", 487)]
    ((when, call_id, caller, callee, ingress, v, _),) = vlog.calls
    ((_, u_call_id, u_caller, u_callee, u_ingress, judged, status, reason),) = vlog.unsent
    assert (u_call_id, u_caller, u_callee, u_ingress, judged) == (call_id, caller, callee, ingress, when)
    assert (status, reason) == (487, "cancelled while judged") and vlog.refusals == []
    scr.on_datagram(inv, UAC)                           # its retransmission: 487 again, no line
    assert _statuses(scr) == [("1 INVITE", 487)] and len(vlog.unsent) == 1 and len(vlog.calls) == 1


def test_an_invite_with_no_usable_destination_is_logged_503_once(pipe):
    vlog = Lines()
    scr = screen(pipe, vlog)
    inv = invite(call_id="no-dest", extra=["Route: <sip:127.0.0.9;transport=sctp;lr>"])
    for _ in range(2):                                  # its retransmission: 503 again, no line
        scr.on_datagram(inv, UAC)
        assert _statuses(scr) == [("1 INVITE", 503)]
    assert _refused(vlog) == [("no-dest", 503, "no usable destination")] and vlog.calls == []
    scr.on_datagram(inv.replace(b"INVITE sip", b"CANCEL sip").replace(b"CSeq: 1 INVITE", b"CSeq: 1 CANCEL"), UAC)
    assert _statuses(scr) == [("1 CANCEL", 200)]         # its CANCEL answered here: the INVITE went nowhere


def test_an_invite_answered_500_for_an_internal_error_is_logged_once(pipe):
    vlog = Lines()
    scr = screen(pipe, vlog)

    def broken(msg, to_tag):
        raise RuntimeError("a bug")
    scr._destination = broken
    inv = invite(call_id="bug-500")
    for _ in range(2):                                  # its retransmission: 500 again, no line
        scr.on_datagram(inv, UAC)
        assert _statuses(scr) == [("1 INVITE", 500)]
    assert _refused(vlog) == [("bug-500", 500, "internal error")] and scr.stats["internal_errors"] == 2


def test_an_internal_error_after_an_invite_was_judged_writes_no_second_line(pipe):
    vlog = Lines()
    scr = screen(pipe, vlog)

    def broken(*a, **k):
        raise RuntimeError("a bug")
    scr._forward = broken
    scr.on_datagram(invite(call_id="bug-judged"), UAC)
    assert _statuses(scr) == [("1 INVITE", 500)]
    assert len(vlog.calls) == 1 and vlog.refusals == []


def test_refusals_sharing_a_branch_and_call_id_with_another_cseq_are_one_line_each(pipe):
    """RFC 3261 §8.1.1.7: a new request has a new branch; a UA reusing one with a new CSeq number sends another
    transaction (the screen judges and forwards such an INVITE as one), refused and logged on its own."""
    vlog = Lines()
    scr = screen(pipe, vlog)
    first = invite(call_id="same-branch", max_forwards="0")
    second = first.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE")
    for inv in (first, second, first, second):          # each, then a retransmission of each
        scr.on_datagram(inv, UAC)
    assert _statuses(scr) == [("1 INVITE", 483)] * 2 + [("2 INVITE", 483)] * 2
    assert [(c, s) for c, s, _ in _refused(vlog)] == [("same-branch", 483), ("same-branch", 483)]


def test_a_judged_refusal_then_a_checks_refusal_on_its_branch_with_another_cseq_is_logged(pipe):
    vlog = Lines()
    scr = screen(pipe, vlog)
    first = invite(caller="0987000666", call_id="after-608")         # blacklisted: judged, refused 608
    second = first.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    for inv in (first, second, second):
        scr.on_datagram(inv, UAC)
    assert _statuses(scr) == [("1 INVITE", 608), ("2 INVITE", 483), ("2 INVITE", 483)]
    assert len(vlog.calls) == 1 and [(c, s) for c, s, _ in _refused(vlog)] == [("after-608", 483)]


def test_a_call_let_through_whose_forward_fails_gets_a_call_unsent_line(pipe):
    """Its destination (a Route) outside allow_networks: answered 503 by the screen, its counts given back."""
    vlog = Lines()
    scr = screen(pipe, vlog)
    inv = invite(caller=AD_CALLER, call_id="unsent-1", extra=["Route: <sip:10.9.9.9;lr>"])
    scr.on_datagram(inv, UAC)
    assert _statuses(scr) == [("1 INVITE", 503)] and scr.stats["uncounted_unsent"] == 1
    ((when, call_id, caller, callee, ingress, v, _),) = vlog.calls
    ((_, u_call_id, u_caller, u_callee, u_ingress, judged, status, reason),) = vlog.unsent
    assert (u_call_id, u_caller, u_callee, u_ingress, judged) == (call_id, caller, callee, ingress, when)
    assert status == 503 and "permitted" in reason and vlog.refusals == []


def test_a_retransmission_after_a_send_that_failed_gets_the_503_again_and_no_second_call_unsent_line(pipe):
    """The first copy's sendto fails at once (ENOBUFS), answered 503, its call_unsent line written; the caller's
    retransmission (the 503 lost) was forwarded with that copy's verdict-line call in the ICMP watch, and an ICMP
    error about it wrote a second call_unsent line for the one call (and had it reached the next hop, the call left)."""
    vlog = Lines()
    scr = screen(pipe, vlog)
    real, failed = scr.udp.sendto, []

    def sendto(data, addr):
        if not failed and data.startswith(b"INVITE "):
            failed.append(addr)
            raise OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))
        real(data, addr)
    scr.udp.sendto = sendto
    inv = invite(call_id="send-failed")
    scr.on_datagram(inv, UAC)
    assert _statuses(scr) == [("1 INVITE", 503)] and len(vlog.unsent) == 1
    scr.on_datagram(inv, UAC)
    out = list(scr.udp.out)
    assert _statuses(scr) == [("1 INVITE", 503)]        # not forwarded
    for data, _ in out:                                 # (an ICMP error about whatever it sent: none is the INVITE)
        scr.on_icmp_error(data, failed[0], errno.ECONNREFUSED)
    assert len(vlog.calls) == 1 and len(vlog.unsent) == 1 and vlog.refusals == []


def test_an_internal_error_at_a_retransmission_of_a_call_let_through_writes_no_second_line(pipe):
    """The call judged, logged and forwarded; a bug at its retransmission (answered 500): its transaction has its
    line (it wrote a refusal line too: one call counted twice by the report)."""
    vlog = Lines()
    scr = screen(pipe, vlog)
    inv = invite(call_id="bug-retransmitted")
    scr.on_datagram(inv, UAC)
    assert _statuses(scr) == [("1 INVITE", "INVITE")]

    def broken(*a, **k):
        raise RuntimeError("a bug")
    scr._forward = broken
    scr.on_datagram(inv, UAC)
    assert _statuses(scr) == [("1 INVITE", 500)]
    assert len(vlog.calls) == 1 and vlog.refusals == [] and vlog.unsent == []
