"""A 5656 command on disk whose putting in force raises (engine/smpp_proxy/mo.py `_command_written`): its MO is
answered ESME_RX_T_APPN (the SMSC delivers it again), counted `shortcode_apply_failed`, logged, and its copy is
processed: put in force from the command already on disk (not written a second time), answered 0 and confirmed.
Before, the MO was never answered and the command stayed WRITING in mo_redelivery.py's window for 600 s: every copy
was answered ESME_RX_T_APPN ("still being written") until then; one in parts, for an hour (NOT_RECORDED_KEEP)."""
import logging
import time

from engine.app import build
from engine.smpp_proxy.accounts import DEFAULT_REPLIES
from engine.smpp_proxy.codec import constants as C
from tests.test_shortcode_redelivery import CANCELLED, REGISTERED, REPORT, SUB, Run, command, dnc_lines, sms
from tests.test_smpp_mo_concat import confirmations, deliver, gsm_parts, mo, reports
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)


def _raising_once(pipe):
    real, calls = pipe.apply_command, []

    def apply(cmd, v=None):
        calls.append(cmd)
        if len(calls) == 1:
            raise RuntimeError("replication queue broken")
        return real(cmd, v)
    pipe.apply_command = apply
    return calls


def _refused(h, pdu, src=SUB):
    """Deliver `pdu`: answered ESME_RX_T_APPN, and nothing confirmed."""
    n, a = len(confirmations(h, src)), len(h.sim.mo_responses)
    s = deliver(h, pdu)
    assert wait(lambda: [r.command_status for r in h.sim.mo_responses[a:] if r.sequence_number == s]
                == [C.ESME_RX_T_APPN], 5)
    time.sleep(0.1)
    assert len(confirmations(h, src)) == n


def test_a_huy_dnc_whose_apply_raises_is_asked_for_again_and_its_copy_removes_once(pipe, caplog):
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        calls = _raising_once(run.pipe)
        with caplog.at_level(logging.ERROR, "telfilter.smpp"):
            _refused(h, sms(b"HUY DNC"))
        assert h.proxy.stats["shortcode_apply_failed"] == 1
        assert any("could not be put in force" in r.getMessage() for r in caplog.records)
        assert command(h, sms(b"HUY DNC")) == CANCELLED          # the SMSC's copy
        time.sleep(0.2)
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove"]     # on disk once
        assert len(calls) == 2 and calls[0] is calls[1]           # the command on disk, put in force by the copy
        assert not run.pipe.lists.in_dnc(int(SUB), "S")
        assert [(x["action"], x.get("redelivery")) for x in run.lines()] == \
            [("allow", None), ("refuse", None), ("allow", None)]
        assert run.lines()[-1]["mo_digest"] == dnc_lines(run.dir)[-1]["mo_digest"]
    finally:
        run.stop()


def test_a_report_whose_apply_raises_is_stored_once(pipe):
    run = Run(pipe)
    try:
        h = run.start()
        _raising_once(run.pipe)
        _refused(h, sms(REPORT))
        assert command(h, sms(REPORT)) == DEFAULT_REPLIES["SPAM_REPORTED"]
        time.sleep(0.2)
        assert len(reports(run.pipe)) == 1
    finally:
        run.stop()


def test_after_a_restart_the_copy_of_a_command_whose_apply_raised_is_a_copy(pipe):
    """The start read the HUY DNC's line (the list loaded without the number): its copy is answered as one."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        _raising_once(run.pipe)
        _refused(h, sms(b"HUY DNC"))
        run.stop()
        run.h, run.pipe = None, build(data_dir=run.dir)
        h = run.start()
        assert not run.pipe.lists.in_dnc(int(SUB), "S")
        assert command(h, sms(b"HUY DNC")) == CANCELLED
        assert h.proxy.stats["shortcode_redelivered"] == 1
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove"]
    finally:
        run.stop()


def test_a_command_in_parts_whose_apply_raises_is_taken_again_when_its_part_comes_again(pipe):
    """Its completing part is answered ESME_RX_T_APPN; the SMSC's copy of that part puts the command on disk in force,
    not written again, and it is confirmed (before: answered ESME_RX_T_APPN for an hour, the message remembered as
    being written)."""
    run = Run(pipe)
    try:
        h = run.start()
        _raising_once(run.pipe)
        p1, p2 = gsm_parts(["DK ", "DNC"], ref=0x41)
        s = deliver(h, mo(p1, src=SUB, dc=0))
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses if r.sequence_number == s] == [0])
        _refused(h, mo(p2, src=SUB, dc=0))
        assert command(h, mo(p2, src=SUB, dc=0)) == REGISTERED
        assert run.pipe.lists.in_dnc(int(SUB), "S")
        time.sleep(0.2)
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add"]              # on disk once
        assert h.proxy.stats["shortcode_applied_on_copy"] == 1
    finally:
        run.stop()


def test_a_report_in_parts_whose_apply_raises_is_stored_once(pipe):
    run = Run(pipe)
    try:
        h = run.start()
        _raising_once(run.pipe)
        p1, p2 = gsm_parts(["S 0912345678 Vay tien nhanh ", "lai suat 0%"], ref=0x42)
        s = deliver(h, mo(p1, src=SUB, dc=0))
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses if r.sequence_number == s] == [0])
        _refused(h, mo(p2, src=SUB, dc=0))
        assert command(h, mo(p2, src=SUB, dc=0)) == DEFAULT_REPLIES["SPAM_REPORTED"]
        time.sleep(0.2)
        [rep] = reports(run.pipe)
        assert rep["content"].endswith("lai suat 0%")
    finally:
        run.stop()


def test_a_copied_part_of_a_huy_dnc_whose_apply_raised_undoes_no_later_dk_dnc(pipe):
    """A HUY DNC in parts whose apply raised (its line on disk: in force from the catch-up or the next start), then
    the subscriber's DK DNC, confirmed; then the SMSC's copy of the HUY DNC's last part. That copy is the message's
    (the same concatenation key: a subscriber's new message takes a new reference), superseded by the DK DNC: it is
    answered 0 and neither written again nor put in force over the registration, as a copy of one part is (mo.py
    `_redelivered`, superseded). Fails before the fix: the late part was looked up with no TP-MR, taken for a new
    command, the HUY DNC written a second time and the confirmed registration removed."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        _raising_once(run.pipe)
        p1, p2 = gsm_parts(["HUY ", "DNC"], ref=0x43)
        s = deliver(h, mo(p1, src=SUB, dc=0))
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses if r.sequence_number == s] == [0])
        _refused(h, mo(p2, src=SUB, dc=0))
        assert command(h, sms(b"DK DNC")) == REGISTERED          # the subscriber's own, later
        n = len(confirmations(h, SUB))
        s = deliver(h, mo(p2, src=SUB, dc=0))                                       # the SMSC's copy of the part
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses if r.sequence_number == s] == [0])
        time.sleep(0.3)
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove", "add"]    # the HUY DNC on disk once
        assert run.pipe.lists.in_dnc(int(SUB), "S")
        assert len(confirmations(h, SUB)) == n                                      # nothing contradicts it
        assert h.proxy.stats["shortcode_redelivered_superseded"] == 1
    finally:
        run.stop()


def test_a_copy_whose_apply_raises_again_is_asked_for_again_and_the_next_copy_confirms_once(pipe):
    """Putting the held command in force raises on its copy too: asked for again, held still, not written again; the
    next copy puts it in force and is the one confirmation the subscriber gets."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        real, calls = run.pipe.apply_command, []

        def apply(cmd, v=None):
            calls.append(cmd)
            if len(calls) <= 2:
                raise RuntimeError("replication queue broken")
            return real(cmd, v)
        run.pipe.apply_command = apply
        n = len(confirmations(h, SUB))
        _refused(h, sms(b"HUY DNC"))
        _refused(h, sms(b"HUY DNC"))                    # the SMSC's copy: raises again
        assert command(h, sms(b"HUY DNC")) == CANCELLED
        time.sleep(0.2)
        assert len(confirmations(h, SUB)) == n + 1
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove"]
        assert calls[0] is calls[1] is calls[2] and h.proxy.stats["shortcode_apply_failed"] == 2
    finally:
        run.stop()
