"""5656 reports in parts whose record fails (engine/smpp_proxy/mo.py, the parts journal): the completing part is
asked for again (ESME_RX_T_APPN) and the report recorded whole, once, when it comes again -- also after
concat_timeout, while the journal fails (the bound holds, a drain leaves no timer), a part sent again after the whole
report is not a second one, and a report whose first part was acknowledged survives a kill -9. The set-up is
test_smpp_mo_concat.py's (its `proxy` fixture and part builders)."""
import json
import time

from engine.smpp_proxy.accounts import DEFAULT_REPLIES
from engine.smpp_proxy.codec import constants as C
from tests.test_smpp_mo_concat import (CONTENT, REPORT, answers, confirmations, deliver, mo, proxy,  # noqa: F401
                                       reports, ucs2_parts, verdicts)
from tests.test_smpp_proxy import pipe, wait  # noqa: F401 (pipe: fixture)


def test_a_report_not_recorded_is_asked_again_and_recorded_whole(proxy, pipe):
    real = pipe.reports.append_many

    def full(rec):
        raise OSError(28, "No space left on device")
    pipe.reports.append_many = full
    h, buf = proxy()
    p1, p2 = ucs2_parts(REPORT, ref=0x55)
    s1 = deliver(h, mo(p1))
    assert wait(lambda: answers(h) == {s1: [0]})               # acknowledged as it came
    s2 = deliver(h, mo(p2))
    assert wait(lambda: answers(h) == {s1: [0], s2: [C.ESME_RX_T_APPN]})    # the completing part: again later
    time.sleep(0.2)
    assert confirmations(h) == [] and reports(pipe) == []
    [line] = verdicts(buf, "5656")
    assert line["action"] == "refuse" and line["status"] == C.ESME_RX_T_APPN
    assert len(h.proxy.mo_concat.judged) == 1                   # its text kept for the part asked again
    pipe.reports.append_many = real                             # the disk has room again; the SMSC redelivers
    s3 = deliver(h, mo(p2))
    assert wait(lambda: answers(h).get(s3) == [0])
    assert wait(lambda: confirmations(h) == [DEFAULT_REPLIES["SPAM_REPORTED"]])
    assert [r["content"] for r in reports(pipe)] == [CONTENT]


def _journal_full(pipe):
    real = pipe.reports.append_many

    def full(rec):
        raise OSError(28, "No space left on device")
    pipe.reports.append_many = full
    return real


def test_a_report_asked_again_after_concat_timeout_is_still_recorded_whole(proxy, pipe):
    """SMSCs retry a temporary error after minutes, not within concat_timeout."""
    real = _journal_full(pipe)
    h, buf = proxy(concat_timeout=0.5)
    p1, p2 = ucs2_parts(REPORT, ref=0x71)
    s1 = deliver(h, mo(p1))
    assert wait(lambda: answers(h) == {s1: [0]})
    s2 = deliver(h, mo(p2))
    assert wait(lambda: answers(h).get(s2) == [C.ESME_RX_T_APPN])
    pipe.reports.append_many = real
    time.sleep(1.0)
    s3 = deliver(h, mo(p2))
    assert wait(lambda: answers(h).get(s3) == [0])
    assert wait(lambda: confirmations(h) == [DEFAULT_REPLIES["SPAM_REPORTED"]])
    assert [r["content"] for r in reports(pipe)] == [CONTENT]
    assert [l["pdu"] for l in verdicts(buf, "5656")] == ["DeliverSm MO x2/2", "DeliverSm MO part 2/2 late"]


def test_while_the_journal_fails_the_bound_holds(proxy, pipe):
    _journal_full(pipe)
    h, buf = proxy(concat_timeout=30, max_pending_concat=2)
    for ref in range(40):
        deliver(h, mo(ucs2_parts(REPORT, ref=ref)[0]))
    assert wait(lambda: len(h.sim.mo_responses) == 40)
    # each pushed-out message judged once (its line written once the writer has answered)
    assert wait(lambda: len(verdicts(buf, "5656")) == 38)
    time.sleep(0.2)
    assert len(h.proxy.mo_concat) <= 2 and len(h.proxy.mo_concat.judged) <= 2
    assert len(verdicts(buf, "5656")) == 38


def test_a_part_sent_again_after_the_whole_report_is_not_a_second_report(proxy, pipe):
    h, buf = proxy(concat_timeout=0.5)
    p1, p2 = ucs2_parts(REPORT, ref=0x73)
    s1 = deliver(h, mo(p1))
    assert wait(lambda: answers(h) == {s1: [0]})
    deliver(h, mo(p2))
    # recorded, put in force and confirmed (a copy that comes while it is being written is asked for again)
    assert wait(lambda: len(reports(pipe)) == 1 and len(confirmations(h)) == 1)
    s3 = deliver(h, mo(p1))                                     # the SMSC did not see our answer to part 1
    assert wait(lambda: answers(h).get(s3) == [0])
    time.sleep(1.0)
    assert len(reports(pipe)) == 1 and len(confirmations(h)) == 1
    assert len(h.proxy.mo_concat) == 0


def test_a_drain_while_the_journal_fails_leaves_no_timer(proxy, pipe):
    _journal_full(pipe)
    h, buf = proxy(concat_timeout=30)
    s1 = deliver(h, mo(ucs2_parts(REPORT, ref=0x72)[0]))
    assert wait(lambda: answers(h) == {s1: [0]})
    h.call(h.proxy.drain(timeout=1.0, unbind_wait=0.2))
    assert len(h.proxy.mo_concat) == 0
    assert len(verdicts(buf, "5656")) == 1


def test_a_report_whose_first_part_was_acknowledged_survives_a_kill_9(tmp_path):
    """Part 1 of a 5656 report is acknowledged as it comes, once on disk (mo_journal.py); serve is killed
    before part 2; the SMSC delivers only part 2 after the restart: the report is recorded whole, once."""
    from tests.test_smpp_receipts import ServeBeside
    run = ServeBeside(tmp_path)
    p1, p2 = ucs2_parts(REPORT, ref=0x61)
    try:
        proc, _ = run.start(1)
        s1 = deliver(run.sim, mo(p1))
        assert wait(lambda: answers(run.sim) == {s1: [0]}, 10)
        proc.kill()                                               # SIGKILL between the two parts
        proc.wait(10)
        proc, _ = run.start(2)
        deliver(run.sim, mo(p2))
        rep = run.data / "reports.jsonl"
        assert wait(lambda: rep.exists() and rep.read_text().strip(), 5)
        [r] = [json.loads(line) for line in rep.read_text(encoding="utf-8").splitlines()]
        assert r["content"] == CONTENT
    finally:
        run.close()
