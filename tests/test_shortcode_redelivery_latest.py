"""A 5656 DNC number's latest command (engine/smpp_proxy/mo_redelivery.py) as the SMSC's copies are judged against it:
a later command whose write failed supersedes nothing and leaves the latest what the earlier confirmed command made
it ("a confirmed DNC registration is never lost"); a copy with the TP-MR of a command since followed by another is
a superseded copy even when its first delivery was answered in time on a link still open."""
import time

from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.mo_redelivery import Redeliveries
from tests.test_shortcode_redelivery import CANCELLED, REGISTERED, SUB, Run, _lost, _tp_mr, command, dnc_lines, sms
from tests.test_smpp_mo_concat import confirmations, deliver
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)

N = int(SUB)


def _written(r, d, t, mr):
    r.writing(d, N, t, mr=mr)
    r.written(d, None, 0.0)


def test_a_later_command_that_failed_leaves_the_earlier_one_the_numbers_latest():
    """DK DNC (0xa1), HUY DNC (0xb2) confirmed, then a DK DNC (0xc3) whose write failed: the SMSC's copy of the first
    DK DNC is still superseded by the HUY DNC (it was a command again: it registered them over their HUY DNC)."""
    r = Redeliveries()
    _written(r, 0xa1, 100.0, 1)
    _written(r, 0xb2, 101.0, 2)
    r.writing(0xc3, N, 102.0, mr=3)
    assert r.seen(0xa1, N, 102.5, mr=1) == (None, None, True)         # (superseded by the one being written too)
    r.failed(0xc3)
    assert r.seen(0xa1, N, 103.0, mr=1) == (None, None, True)
    assert r.seen(0xb2, N, 103.0, mr=2) == (None, None, False)        # a copy of the HUY DNC: a copy
    assert r.seen(0xc3, N, 103.0, mr=3) is None                       # the failed one's copy: a command again


def test_failures_in_any_order_leave_the_last_confirmed_command_the_latest():
    for order in ((0xc3, 0xd4), (0xd4, 0xc3)):
        r = Redeliveries()
        _written(r, 0xa1, 100.0, 1)
        _written(r, 0xb2, 101.0, 2)
        r.writing(0xc3, N, 102.0, mr=3)
        r.writing(0xd4, N, 102.1, mr=4)                               # (both waiting for one fsync)
        for d in order:
            r.failed(d)
        assert r.seen(0xa1, N, 103.0, mr=1) == (None, None, True), order
        assert r.seen(0xb2, N, 103.0, mr=2) == (None, None, False), order
    # and one written after another failed is the latest
    r = Redeliveries()
    _written(r, 0xa1, 100.0, 1)
    r.writing(0xc3, N, 102.0, mr=3)
    r.writing(0xd4, N, 102.1, mr=4)
    r.failed(0xc3)
    r.written(0xd4, None, 0.0)
    assert r.seen(0xa1, N, 103.0, mr=1) == (None, None, True)
    assert r.seen(0xd4, N, 103.0, mr=4) == (None, None, False)


def _refused(h, run, pdu):
    """Deliver `pdu` while the DNC journal cannot be written: answered ESME_RX_T_APPN, nothing written."""
    store, lines = run.pipe.store, len(dnc_lines(run.dir))

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    store.journal = full
    try:
        a = len(h.sim.mo_responses)
        s = deliver(h, pdu)
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses[a:] if r.sequence_number == s]
                    == [C.ESME_RX_T_APPN])
    finally:
        del store.journal
    assert len(dnc_lines(run.dir)) == lines


def _copy_answered(h, pdu):
    n, a = len(confirmations(h, SUB)), len(h.sim.mo_responses)
    s = deliver(h, pdu)
    assert wait(lambda: [r.command_status for r in h.sim.mo_responses[a:] if r.sequence_number == s] == [0])
    time.sleep(0.3)
    assert len(confirmations(h, SUB)) == n                             # no reply to it


def test_a_dk_dnc_copy_after_a_confirmed_huy_dnc_and_a_failed_command_does_not_register_again(pipe):
    """DK DNC (its answer lost), HUY DNC (confirmed), a DK DNC the disk refused, then the SMSC's copy of the first DK
    DNC: superseded, so the subscriber stays off the list as their HUY DNC was confirmed."""
    run = Run(pipe)
    try:
        h = run.start()
        _lost(h, run, sms(b"DK DNC", tlvs=_tp_mr(1)), 1)
        assert command(h, sms(b"HUY DNC", tlvs=_tp_mr(2))) == CANCELLED
        _refused(h, run, sms(b"DK DNC", tlvs=_tp_mr(3)))
        _copy_answered(h, sms(b"DK DNC", tlvs=_tp_mr(1)))               # the SMSC's copy
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove"]
        assert not run.pipe.lists.in_dnc(N, "S")
        assert h.proxy.stats["shortcode_redelivered_superseded"] == 1
    finally:
        run.stop()


def test_a_copy_on_the_open_link_after_a_later_command_is_superseded_not_the_subscribers_repeat(pipe):
    """HUY DNC (TP-MR 1) answered in time on a link still open, then the subscriber's DK DNC (TP-MR 2, confirmed),
    then a message with the HUY DNC's octets and TP-MR 1 on that link: the subscriber's own repeat would carry another
    TP-MR, so it is a copy, superseded: the confirmed registration is not removed (it was: the copy taken for the
    subscriber's own repeat because its first answer went out in time). And the same for a DK DNC copy after a later
    HUY DNC."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"HUY DNC", tlvs=_tp_mr(1))).startswith("So cua ban khong co")
        assert command(h, sms(b"DK DNC", tlvs=_tp_mr(2))) == REGISTERED
        _copy_answered(h, sms(b"HUY DNC", tlvs=_tp_mr(1)))
        assert [x["op"] for x in dnc_lines(run.dir)] == ["remove", "add"]
        assert run.pipe.lists.in_dnc(N, "S") and run.pipe.lists.in_dnc(N, "V")
        assert h.proxy.stats["shortcode_redelivered_superseded"] == 1
        assert command(h, sms(b"HUY DNC", tlvs=_tp_mr(3))) == CANCELLED
        _copy_answered(h, sms(b"DK DNC", tlvs=_tp_mr(2)))
        assert [x["op"] for x in dnc_lines(run.dir)] == ["remove", "add", "remove"]
        assert not run.pipe.lists.in_dnc(N, "S")
        assert h.proxy.stats["shortcode_redelivered_superseded"] == 2
        # without a later command, the same octets answered in time on the open link are the subscriber's own repeat
        assert command(h, sms(b"HUY DNC", tlvs=_tp_mr(3))).startswith("So cua ban khong co")
    finally:
        run.stop()


def test_a_huy_dnc_copy_after_a_confirmed_dk_dnc_and_a_failed_command_is_not_confirmed_again(pipe):
    """HUY DNC (its answer lost), DK DNC (confirmed), a HUY DNC the disk refused, then the SMSC's copy of the first
    HUY DNC: superseded (it was answered as its first delivery, "cancelled" sent again against the registration)."""
    run = Run(pipe)
    try:
        h = run.start()
        _lost(h, run, sms(b"HUY DNC", tlvs=_tp_mr(1)), 1)
        assert command(h, sms(b"DK DNC", tlvs=_tp_mr(2))) == REGISTERED
        _refused(h, run, sms(b"HUY DNC", tlvs=_tp_mr(3)))
        _copy_answered(h, sms(b"HUY DNC", tlvs=_tp_mr(1)))
        assert [x["op"] for x in dnc_lines(run.dir)] == ["remove", "add"]
        assert run.pipe.lists.in_dnc(N, "S") and run.pipe.lists.in_dnc(N, "V")
        assert h.proxy.stats["shortcode_redelivered_superseded"] == 1
    finally:
        run.stop()
