"""A 5656 command the SMSC delivers again (engine/smpp_proxy/mo_redelivery.py): after a crash between its durable
line and its deliver_sm_resp, or an answer lost on the link, the copy (new sequence_number, maybe another bind) is
answered 0 and told what the first delivery was, and nothing is recorded or changed a second time. The SMSC is our
simulator; a restart is a new pipeline and proxy on the same data dir (as serve starts), or a real serve killed."""
import json
import time
from datetime import timezone

from engine.app import build
from engine.report.aggregate import Aggregator
from engine.report.reader import parse_ts
from engine.serve_journal import catch_up_journal
from engine.smpp_proxy.accounts import DEFAULT_REPLIES, SmppSettings
from engine.smpp_proxy.codec import Tlv
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.mo_redelivery import Redeliveries, digest
from engine.verdictlog import VerdictLog
from tests.test_smpp_mo_concat import confirmations, deliver, mo, reports
from tests.test_report_memory_bound import _NoRegistry
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)

SUB = "84911000201"
CANCELLED = DEFAULT_REPLIES["DNC_CANCELLED"].replace("{channel}", "tin nhan va cuoc goi")
REGISTERED = DEFAULT_REPLIES["DNC_REGISTERED"].replace("{channel}", "tin nhan va cuoc goi")
REPORT = b"S 0912345678 Vay tien nhanh lai suat 0%, bam vao link de nhan ngay"


def sms(text, src=SUB, **kw):
    return mo(text, src=src, dc=0, esm_class=0, **kw)


class Run:
    """Proxies one after another on one data dir, each with its own verdict log (`lines`)."""

    def __init__(self, pipe):
        self.dir, self.pipe, self.h, self.buf = pipe.store.dir, pipe, None, []

    def start(self):
        import io
        if self.h is not None:
            self.h.stop()
            self.pipe = build(data_dir=self.dir)
        self.buf.append(io.StringIO())
        self.h = ProxyHarness(self.pipe, accounts=("esme1:secret",), settings=SmppSettings(),
                              verdict_log=VerdictLog(self.buf[-1])).start()
        return self.h

    def lines(self):
        return [json.loads(x) for b in self.buf for x in b.getvalue().splitlines()]

    def stop(self):
        if self.h is not None:
            self.h.stop()


def command(h, pdu, src=SUB):
    """Deliver `pdu` (on the newest bind), wait for its answer, 0, and its reply; the reply."""
    n, a = len(confirmations(h, src)), len(h.sim.mo_responses)
    s = deliver(h, pdu)
    assert wait(lambda: [r.command_status for r in h.sim.mo_responses[a:] if r.sequence_number == s] == [0]
                and len(confirmations(h, src)) > n)
    return confirmations(h, src)[-1]


def dnc_lines(d):
    p = d / "lists" / "dnc.delta"
    return [json.loads(x) for x in p.read_text().splitlines() if "\"op\"" in x] if p.exists() else []


def test_a_huy_dnc_delivered_again_after_a_restart_is_confirmed_as_the_first_and_removes_once(pipe):
    """It was answered DNC_NOT_REGISTERED ("not on the list"), just after it had removed the subscriber."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        assert command(h, sms(b"HUY DNC")) == CANCELLED
        h = run.start()                     # its answer lost with the process: the SMSC delivers it again
        assert command(h, sms(b"HUY DNC")) == CANCELLED
        time.sleep(0.2)
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove"]
        assert not run.pipe.lists.in_dnc(int(SUB), "S")
        last = run.lines()[-1]
        assert last["redelivery"] is True and last["hits"][0]["symbol"] == "DNC_CANCELLED"
        assert h.proxy.stats["shortcode_redelivered"] == 1
    finally:
        run.stop()


def test_a_report_delivered_again_after_a_restart_is_stored_once(pipe):
    run = Run(pipe)
    try:
        h = run.start()
        thanks = command(h, sms(REPORT))
        h = run.start()
        assert command(h, sms(REPORT)) == thanks == DEFAULT_REPLIES["SPAM_REPORTED"]
        time.sleep(0.2)
        [rep] = reports(run.pipe)
        assert rep["reported"] == "+84912345678" and len(rep["mo_digest"]) == 16
        # the regulator's report (from the verdict logs): one report and one message; the copy's line apart
        first, copy = run.lines()
        assert "redelivery" not in first and copy["redelivery"] is True
        agg = Aggregator(timezone.utc, lists=_NoRegistry())
        for x in (first, copy):
            agg.add_verdict(parse_ts(x["ts"]), x)
        s = agg.summary()
        assert s["reports"]["S"] == 1 and s["totals"]["sms"]["allow"] == 1 and s["shortcode_redeliveries"] == 1
    finally:
        run.stop()


def test_a_copy_after_the_answer_was_lost_on_the_link_is_not_applied_again(pipe):
    """The SMSC never read the answer (its session deaf, then closed): it delivers the HUY DNC again on its new
    bind, without any restart of ours."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        h.sim.hang()
        s = deliver(h, sms(b"HUY DNC"))
        assert wait(lambda: len(dnc_lines(run.dir)) == 2)
        assert wait(lambda: any(getattr(e, "command_id", 0) == C.DELIVER_SM_RESP and e.sequence_number == s
                                for e in list(h.sim.ignored)))
        old = list(h.sim.sessions)
        h.run(lambda: [x.transport.close() for x in old])
        assert wait(lambda: any(x.bound and not any(x is o for o in old) for x in list(h.sim.sessions)), 10)
        assert command(h, sms(b"HUY DNC")) == CANCELLED
        time.sleep(0.2)
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove"]
    finally:
        run.stop()


def test_the_subscribers_own_commands_stay_commands(pipe):
    """A copy is a copy only while it is its number's latest DNC command (DK DNC, HUY DNC, DK DNC leaves the
    subscriber registered), and a repeat answered in time on a link still open is a command of its own."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        h = run.start()
        assert command(h, sms(b"HUY DNC")) == CANCELLED
        assert command(h, sms(b"DK DNC")) == REGISTERED
        time.sleep(0.2)
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove", "add"]
        assert run.pipe.lists.in_dnc(int(SUB), "S")
        assert command(h, sms(b"HUY DNC V")).startswith("Ban da huy")
        assert command(h, sms(b"HUY DNC V")).startswith("So cua ban khong co")        # its own: nothing to remove
        assert not any(x.get("redelivery") for x in run.lines())
    finally:
        run.stop()


def test_the_digest_keeps_what_a_redelivery_keeps():
    a = sms(b"DK DNC", sequence_number=1)
    assert digest((a,)) == digest((P.replace(a, sequence_number=77),))
    # (user_message_reference: the handset's TP-MR, another for each message it sends)
    umr = (Tlv(C.TAG_USER_MESSAGE_REFERENCE, b"\x00\x07"),)
    for other in (sms(b"DK DNC", src="84911000202"), sms(b"DK DNC V"), P.replace(a, data_coding=8),
                  P.replace(a, source_addr_ton=0), P.replace(a, tlvs=umr)):
        assert digest((other,)) != digest((a,))


def test_the_window_is_bounded_in_time_and_entries(tmp_path):
    r = Redeliveries(window=600, bound=3)
    for d in (1, 2, 3, 4):
        r.writing(d, None, 1000.0 + d)
        r.written(d, None, 0.0)
    assert len(r) == 3 and r.seen(1, None, 1010) is None and r.seen(2, None, 1010) == (None, None, False)
    assert r.seen(4, None, 1603.9) == (None, None, False) and r.seen(4, None, 1604.0) is None and len(r) == 0
    # rebuilt from the lines the commands were written in; lines without a digest (older, `check`) are none
    (tmp_path / "dnc.delta").write_text(
        '{"gen": "x"}\n{"op": "add", "number": 84911000201, "channel": "SV"}\n'
        '{"op": "add", "number": 84911000201, "channel": "SV", "mo_digest": "00000000000000aa", "at": 1000.5}\n'
        '{"op": "add", "number": 84911000202, "channel": "SV", "mo_digest": "00000000000000bb", "at": 100.0}\n')
    (tmp_path / "reports.jsonl").write_text(
        '{"reporter": "+84911000201", "time": "1970-01-01T00:16:40+00:00", "mo_digest": "00000000000000cc"}\n'
        '{"reporter": "+84911000201", "time": "1970-01-01T00:16:41+00:00"}\n')
    r = Redeliveries(window=600)
    assert r.restore(tmp_path / "reports.jsonl", (tmp_path / "dnc.delta.prev", tmp_path / "dnc.delta"), 1100.0) == 2
    assert r.seen(0xaa, 84911000201, 1100.0) == (None, None, False) and r.seen(0xcc, None, 1100.0) == (None, None, False)
    assert r.seen(0xbb, 84911000202, 1100.0) is None


def test_commands_on_disk_when_serve_is_killed_before_their_answers_are_applied_once(tmp_path):
    """A real serve, kill -9 after a HUY DNC and a report are written and before the SMSC had their answers (its
    session deaf to them): the next serve answers the SMSC's copies 0, confirms them as the first delivery was
    confirmed, and neither removes nor stores anything a second time."""
    from tests.test_smpp_receipts import ServeBeside
    run = ServeBeside(tmp_path)
    try:
        proc, _ = run.start(1)
        assert command(run.sim, sms(b"DK DNC")) == REGISTERED
        run.sim.sim.hang()
        deliver(run.sim, sms(b"HUY DNC"))
        deliver(run.sim, sms(REPORT))
        assert wait(lambda: len(dnc_lines(run.data)) == 2 and (run.data / "reports.jsonl").exists(), 10)
        proc.kill()                                     # kill -9
        proc.wait(10)
        run.start(2)
        assert command(run.sim, sms(b"HUY DNC")) == CANCELLED
        assert command(run.sim, sms(REPORT)) == DEFAULT_REPLIES["SPAM_REPORTED"]
        time.sleep(0.3)
        assert [x["op"] for x in dnc_lines(run.data)] == ["add", "remove"]
        assert len((run.data / "reports.jsonl").read_text(encoding="utf-8").splitlines()) == 1
        assert wait(lambda: sum('"redelivery": true' in x for x in (tmp_path / "v.log").read_text().splitlines())
                    == 2, 5)
    finally:
        run.close()


def test_a_copy_while_the_first_is_being_written_is_asked_for_again_and_the_next_is_a_copy(pipe):
    """The SMSC's response timeout is shorter than a slow disk: its copy, while the first delivery's line is being
    written, is answered ESME_RX_T_APPN (nothing of it known yet); the copy after that is answered 0, not applied."""
    real = pipe.write_commands

    def slow(cmds):
        time.sleep(0.5)
        return real(cmds)
    pipe.write_commands = slow                  # (the proxy's writer thread calls it: GroupCommit)
    run = Run(pipe)
    try:
        h = run.start()
        a = len(h.sim.mo_responses)
        s1 = deliver(h, sms(REPORT))
        s2 = deliver(h, sms(REPORT))
        assert wait(lambda: len(h.sim.mo_responses) - a == 2)
        got = {r.sequence_number: r.command_status for r in h.sim.mo_responses[a:]}
        assert got == {s1: 0, s2: C.ESME_RX_T_APPN}
        assert command(h, sms(REPORT)) == DEFAULT_REPLIES["SPAM_REPORTED"]
        time.sleep(0.7)
        assert len(reports(run.pipe)) == 1
        # the copy asked for again and the copy answered say so: the regulator's report counts the message once
        assert [(x["action"], x.get("redelivery")) for x in run.lines()] == \
            [("refuse", True), ("allow", None), ("allow", True)]
    finally:
        run.stop()


def test_a_huy_dnc_in_parts_caught_between_its_journal_line_and_its_done_marker_removes_once(pipe, tmp_path):
    """The parts journal (mo_journal.py) puts part 1 back after the crash; the SMSC's copy of part 2 completes the
    message again: it is known by its digest, confirmed as the first time (it removed the subscriber a second time,
    told "not registered")."""
    import shutil
    from tests.test_mo_parts_journal import _journalled
    from tests.test_mo_parts_journal_restarts import _restarted
    from tests.test_smpp_mo_concat import gsm_parts
    crash = tmp_path / "crash.journal"
    p1, p2 = gsm_parts(["HUY ", "DNC"], ref=0x31)
    h, path = _journalled(pipe, tmp_path, concat_timeout=0.5)
    try:
        assert command(h, sms(b"DK DNC")) == REGISTERED
        s = deliver(h, mo(p1, src=SUB, dc=0))
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses if r.sequence_number == s] == [0])
        shutil.copyfile(path, crash)            # the disk as a kill -9 after the command's line leaves it (below)
        assert command(h, mo(p2, src=SUB, dc=0)) == CANCELLED
    finally:
        h.stop()
    pipe2, h2 = _restarted(pipe, crash, path)
    try:
        assert command(h2, mo(p2, src=SUB, dc=0)) == CANCELLED
        time.sleep(0.3)
        assert [x["op"] for x in dnc_lines(pipe2.store.dir)] == ["add", "remove"]
        assert h2.proxy.stats["shortcode_redelivered"] == 1
    finally:
        h2.stop()


def test_a_copy_reaching_another_worker_is_known_there(pipe):
    """Two processes on one data dir, as `serve --workers 2`: the SMSC's copy of a HUY DNC and a report the first
    wrote (then killed before its answers) comes on the other's bind. That one reads what the other wrote (within a
    second) and answers the copies as their first delivery was, applying nothing again."""
    one = Run(pipe)
    two = Run(build(data_dir=pipe.store.dir))
    try:
        h1, h2 = one.start(), two.start()
        assert command(h1, sms(b"DK DNC")) == REGISTERED
        assert command(h1, sms(b"HUY DNC")) == CANCELLED
        command(h1, sms(REPORT))
        wait(lambda: len(h2.proxy.redeliveries) == 3)      # (its next look at the files)
        h1.stop()
        one.h = None
        assert command(h2, sms(b"HUY DNC")) == CANCELLED
        assert command(h2, sms(REPORT)) == DEFAULT_REPLIES["SPAM_REPORTED"]
        time.sleep(0.2)
        assert [x["op"] for x in dnc_lines(two.dir)] == ["add", "remove"]
        assert len(reports(two.pipe)) == 1
        assert h2.proxy.stats["shortcode_redelivered"] == 2
    finally:
        one.stop()
        two.stop()


def test_a_dk_dnc_again_after_the_operator_removed_the_number_registers_it_again(pipe):
    """DK DNC, then the operator takes the number off the list (`ctl lists remove dnc`), then the subscriber sends DK
    DNC again within the window, after a restart: the same text, the same digest, but no copy while the number is
    not on the list. It was answered "registered" and left off the list (a confirmed registration not in force)."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        h = run.start()

        def operator_removes():
            run.pipe.store.append_delta("remove", int(SUB), "SV")
            run.pipe.lists.remove_dnc(int(SUB), "SV")
        h.run(operator_removes)
        assert not run.pipe.lists.in_dnc(int(SUB), "S")
        assert command(h, sms(b"DK DNC")) == REGISTERED
        assert wait(lambda: run.pipe.lists.in_dnc(int(SUB), "S") and run.pipe.lists.in_dnc(int(SUB), "V"), 5)
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove", "add"]
        assert not any(x.get("redelivery") for x in run.lines())
    finally:
        run.stop()


def test_lines_whose_digest_or_number_cannot_be_kept_are_ignored(tmp_path):
    """A line of dnc.delta or reports.jsonl (edited by hand, another version's, damaged) whose "mo_digest" is no 64-bit
    digest, whose number is beyond 64 bits or whose "at" is not finite: skipped. Its OverflowError escaped the start's
    read-back (serve did not start) and a housekeeping tick's follow of the files."""
    (tmp_path / "dnc.delta").write_text(
        '{"op": "add", "number": 84911000201, "channel": "SV", "mo_digest": "-1", "at": 1000.5}\n'
        '{"op": "add", "number": 84911000201, "channel": "SV", "mo_digest": "1ffffffffffffffff", "at": 1000.5}\n'
        '{"op": "add", "number": 99999999999999999999, "channel": "SV", "mo_digest": "00000000000000aa", "at": 1000}\n'
        '{"op": "add", "number": 84911000201, "channel": "SV", "mo_digest": "00000000000000ab", "at": 1e999}\n'
        '{"op": "add", "number": 84911000201, "channel": "SV", "mo_digest": "00000000000000ac", "at": 1000.5}\n')
    (tmp_path / "reports.jsonl").write_text(
        '{"reporter": "+84911000201", "time": "1970-01-01T00:16:40+00:00", "mo_digest": "-0cc"}\n'
        '{"reporter": "+84911000201", "time": "1970-01-01T00:16:40+00:00", "mo_digest": "100000000000000cc"}\n'
        '{"reporter": "+84911000201", "time": "1970-01-01T00:16:40+00:00", "mo_digest": "00000000000000cd"}\n')
    r = Redeliveries(window=600)
    assert r.restore(tmp_path / "reports.jsonl", (tmp_path / "dnc.delta",), 1100.0) == 2
    assert len(r) == 2 and r.seen(0xac, 84911000201, 1100.0) == (None, None, False) and r.seen(0xab, None, 1100.0) is None


def test_a_workers_own_command_again_after_another_worker_repeated_an_earlier_one_is_applied(pipe):
    """`serve --workers 2`: DK DNC on one worker, HUY DNC then DK DNC on the other (its DK the same text as the first:
    the same digest), then HUY DNC on the first. The first worker skipped the other's DK line as its own (known
    digest), kept HUY DNC as the number's latest and took the subscriber's HUY DNC for a copy: told "cancelled" and
    left on the list."""
    one = Run(pipe)
    two = Run(build(data_dir=pipe.store.dir))
    try:
        h1, h2 = one.start(), two.start()
        assert command(h1, sms(b"DK DNC")) == REGISTERED
        h2.run(lambda: catch_up_journal(two.pipe))      # (serve's file watcher: the other's lines in force)
        assert command(h2, sms(b"HUY DNC")) == CANCELLED
        assert command(h2, sms(b"DK DNC")) == REGISTERED
        h1.run(lambda: catch_up_journal(one.pipe))
        assert one.pipe.lists.in_dnc(int(SUB), "S")
        h1.run(lambda: h1.proxy._follow_redeliveries(h1.proxy._follow_at))     # (its look at the files, now)
        assert command(h1, sms(b"HUY DNC")) == CANCELLED
        assert wait(lambda: not one.pipe.lists.in_dnc(int(SUB), "S"), 5)
        assert [x["op"] for x in dnc_lines(one.dir)] == ["add", "remove", "add", "remove"]
    finally:
        one.stop()
        two.stop()


def test_a_copy_is_answered_when_serve_counts_its_verdicts_for_metrics(pipe):
    """serve --metrics-listen writes its verdict log through MeteredVerdictLog, whose write_sms took no `redelivery`:
    every copy raised TypeError before its answer (the SMSC had none and delivered it again, for ever)."""
    import io

    from engine.metrics import MeteredVerdictLog, Metrics
    m = Metrics(None)
    out = io.StringIO()
    h = ProxyHarness(pipe, accounts=("esme1:secret",), settings=SmppSettings(),
                     verdict_log=MeteredVerdictLog(out, None, m)).start()
    try:
        h.sim.hang()                                    # its answer lost on the link: the SMSC delivers it again
        deliver(h, sms(REPORT))
        assert wait(lambda: len(reports(pipe)) == 1 and out.getvalue().count("\n") == 1, 5)
        old = list(h.sim.sessions)
        h.run(lambda: [x.transport.close() for x in old])
        assert wait(lambda: any(x.bound and not any(x is o for o in old) for x in list(h.sim.sessions)), 10)
        assert command(h, sms(REPORT)) == DEFAULT_REPLIES["SPAM_REPORTED"]
        assert len(reports(pipe)) == 1 and '"redelivery": true' in out.getvalue().splitlines()[-1]
    finally:
        h.stop()


def test_a_copy_after_a_crash_before_the_first_line_was_logged_is_counted_by_the_report(pipe, monkeypatch):
    """serve killed -9 between a command's fsync and the callback that logs and answers it: no first line. The
    copy's line said `"redelivery": true` and the regulator's report counted no message, DNC change or report for a
    command in force. Now both lines carry "mo_digest"; a copy tied to no first line is counted as the message, and
    one whose first line is read (before or after it) as a copy only."""
    from engine.smpp_proxy.mo import MoPath
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(REPORT, src="84911000202"), "84911000202") == DEFAULT_REPLIES["SPAM_REPORTED"]
        real = MoPath._command_written
        monkeypatch.setattr(MoPath, "_command_written", lambda self, *a: None)     # killed after the fsync
        deliver(h, sms(b"DK DNC"))
        deliver(h, sms(REPORT))
        assert wait(lambda: len(dnc_lines(run.dir)) == 1 and len(reports(run.pipe)) == 2, 5)
        monkeypatch.setattr(MoPath, "_command_written", real)
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        assert command(h, sms(REPORT)) == DEFAULT_REPLIES["SPAM_REPORTED"]
        assert command(h, sms(REPORT, src="84911000202"), "84911000202") == DEFAULT_REPLIES["SPAM_REPORTED"]
        time.sleep(0.2)
        lines = run.lines()
        assert [x.get("redelivery") for x in lines] == [None, True, True, True] and all("mo_digest" in x for x in lines)
        for order in (lines, lines[::-1]):                          # (logs given oldest or newest first)
            agg = Aggregator(timezone.utc, lists=_NoRegistry())
            for x in order:
                agg.add_verdict(parse_ts(x["ts"]), x)
            s = agg.summary()
            assert s["reports"]["S"] == 2 and s["dnc"] == {"registered": 1, "cancelled": 0} and \
                s["totals"]["sms"]["allow"] == 3 and s["shortcode_redeliveries"] == 1
    finally:
        run.stop()


def _tp_mr(n):
    return (Tlv(C.TAG_USER_MESSAGE_REFERENCE, n.to_bytes(2, "big")),)


def _lost(h, run, pdu, lines):
    """Deliver `pdu` with the SMSC deaf (its answer never read), once its DNC line is the `lines`th, then close the
    SMSC's sessions and wait for the proxy's new bind."""
    h.sim.hang()
    s = deliver(h, pdu)
    assert wait(lambda: len(dnc_lines(run.dir)) == lines)
    assert wait(lambda: any(getattr(e, "command_id", 0) == C.DELIVER_SM_RESP and e.sequence_number == s
                            for e in list(h.sim.ignored)))
    old = list(h.sim.sessions)
    h.run(lambda: [x.transport.close() for x in old])
    assert wait(lambda: any(x.bound and not any(x is o for o in old) for x in list(h.sim.sessions)), 10)


def test_a_huy_dnc_copy_after_the_subscribers_later_dk_dnc_keeps_them_registered(pipe):
    """HUY DNC, its answer lost on the link, then the subscriber's DK DNC (confirmed), then the SMSC's copy of the
    HUY DNC: with the handset's TP-MR (user_message_reference) in the digest, a subscriber's new HUY DNC would carry
    another, so this one is a copy: a confirmed registration is never lost to it (it removed it), and it is not
    confirmed again ("cancelled" would contradict the registration). Without a TP-MR the two cannot be told apart:
    a command of its own (test_the_subscribers_own_commands_stay_commands)."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC", tlvs=_tp_mr(1))) == REGISTERED
        _lost(h, run, sms(b"HUY DNC", tlvs=_tp_mr(2)), 2)
        assert command(h, sms(b"DK DNC", tlvs=_tp_mr(3))) == REGISTERED
        n, a = len(confirmations(h, SUB)), len(h.sim.mo_responses)
        s = deliver(h, sms(b"HUY DNC", tlvs=_tp_mr(2)))                    # the SMSC's copy
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses[a:] if r.sequence_number == s] == [0])
        time.sleep(0.3)
        assert len(confirmations(h, SUB)) == n                              # no reply to it
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove", "add"]
        assert run.pipe.lists.in_dnc(int(SUB), "S") and run.pipe.lists.in_dnc(int(SUB), "V")
        last = run.lines()[-1]
        assert last.get("redelivery") is True and last.get("mo_digest"), last
        assert h.proxy.stats["shortcode_redelivered_superseded"] == 1
        # and a DK DNC copy (its answer lost too) after the subscriber's later HUY DNC does not register them again
        assert command(h, sms(b"HUY DNC", tlvs=_tp_mr(4))) == CANCELLED
        _lost(h, run, sms(b"DK DNC", tlvs=_tp_mr(5)), 5)
        assert command(h, sms(b"HUY DNC", tlvs=_tp_mr(6))) == CANCELLED
        a = len(h.sim.mo_responses)
        s = deliver(h, sms(b"DK DNC", tlvs=_tp_mr(5)))
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses[a:] if r.sequence_number == s] == [0])
        time.sleep(0.3)
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove", "add", "remove", "add", "remove"]
        assert not run.pipe.lists.in_dnc(int(SUB), "S")
        assert h.proxy.stats["shortcode_redelivered_superseded"] == 2
    finally:
        run.stop()


N = 84911000201


def test_a_later_command_learned_late_from_another_worker_is_not_the_numbers_latest():
    """`serve --workers 2`: this worker's HUY DNC at 100.4, then the other worker's DK DNC line of 100.0 read (up to
    FOLLOW_EVERY late): the HUY DNC stays the number's latest, so the SMSC's copy of the DK DNC is superseded (it
    re-registered the subscriber against their later HUY DNC) and a copy of the HUY DNC is a copy."""
    r = Redeliveries()
    r.writing(0xb2, N, 100.4, mr=7)
    r.written(0xb2, None, 0.0)
    r.learn(0xa1, 100.0, N, 100.5)
    assert r.seen(0xa1, N, 101.0, mr=3) == (None, None, True)
    assert r.seen(0xb2, N, 101.0, mr=7) == (None, None, False)


def test_a_constant_tp_mr_proves_nothing():
    """An SMSC that fills user_message_reference with a constant: the subscriber's own DK DNC after HUY DNC has the
    first DK DNC's digest; the later command's TP-MR is the same, so it is a command again, not a superseded copy."""
    r = Redeliveries()
    for d, t in ((0xa1, 100.0), (0xb2, 101.0)):
        r.writing(d, N, t, mr=0)
        r.written(d, None, 0.0)
    assert r.seen(0xa1, N, 102.0, mr=0) is None
    assert r.seen(0xa1, N, 102.0, mr=-1) is None            # (no TP-MR on the copy: the same)


def test_a_later_command_that_failed_to_be_written_supersedes_nothing():
    r = Redeliveries()
    r.writing(0xa1, N, 100.0, mr=1)
    r.written(0xa1, None, 0.0)
    r.writing(0xb2, N, 101.0, mr=2)
    r.failed(0xb2)                                          # (not in force: the SMSC delivers it again)
    assert r.seen(0xa1, N, 102.0, mr=1) == (None, None, False)


def test_a_constant_tp_mr_leaves_the_subscribers_own_dk_dnc_a_command_after_a_restart(pipe):
    """DK DNC, HUY DNC, a restart, DK DNC, each with user_message_reference 0: the third is the subscriber's own (it
    was answered 0, unconfirmed and not registered: a superseded copy)."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC", tlvs=_tp_mr(0))) == REGISTERED
        assert command(h, sms(b"HUY DNC", tlvs=_tp_mr(0))) == CANCELLED
        h = run.start()
        assert command(h, sms(b"DK DNC", tlvs=_tp_mr(0))) == REGISTERED
        time.sleep(0.2)
        assert [x["op"] for x in dnc_lines(run.dir)] == ["add", "remove", "add"]
        assert run.pipe.lists.in_dnc(int(SUB), "S")
    finally:
        run.stop()
