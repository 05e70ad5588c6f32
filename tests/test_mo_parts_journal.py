"""The parts of a 5656 message are on disk before they are acknowledged (engine/smpp_proxy/mo_journal.py):
a kill -9 or a clean stop between two parts loses none of them, a report is never counted twice, a part
whose record cannot be written is asked for again (ESME_RX_T_APPN)."""
import json
import shutil
import signal
import time

import pytest

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.heldjournal import HeldJournal
from engine.smpp_proxy.mo_restore import mo_origin
from tests.test_smpp_mo_concat import CONTENT, REPORT, REPORTER, answers, deliver, mo, reports, ucs2_parts
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)
from tests.test_smpp_receipts import ServeBeside


def _journalled(pipe, tmp_path, **settings):
    """A proxy (in this process) whose 5656 parts are journalled in tmp_path/smpp/mo_parts.journal."""
    path = tmp_path / "smpp" / "mo_parts.journal"
    h = ProxyHarness(pipe, accounts=("esme1:secret",), settings=SmppSettings(**settings) if settings else None).start()
    h.run(lambda: h.proxy.open_mo_parts(path, h.proxy.loop))
    return h, path


def _records(path):
    """[(owner fields, raw)] the journal holds live."""
    return [(json.loads(owner), raw) for owner, raw in HeldJournal(path, max_record=1 << 20).replay()]


def test_a_part_is_on_disk_when_it_is_acknowledged_and_gone_once_its_report_is(pipe, tmp_path):
    h, path = _journalled(pipe, tmp_path)
    p1, p2 = ucs2_parts(REPORT, ref=0x71)
    try:
        s1 = deliver(h, mo(p1))
        assert wait(lambda: answers(h) == {s1: [0]})
        crash = tmp_path / "at-the-ack.journal"
        shutil.copyfile(path, crash)                    # the disk as a kill -9 right now leaves it
        [(owner, raw)] = _records(crash)
        src, dst, ref, total, n, pid = owner[1:7]
        assert (src, dst, ref, total, n) == ("84911000001", "5656", 0x71, 2, 1) and len(pid) == 16
        s2 = deliver(h, mo(p2))
        assert wait(lambda: answers(h).get(s2) == [0])
        # the completing part is answered once the message is marked done and its parts' records are gone
        [(marker, raw)] = _records(path)
        assert marker[5] == 0 and marker[6] == pid and len(raw) == 2 * 9      # its two parts' digests
        h.run(lambda: h.proxy._mo_expire(h.proxy.loop.time() + 3600))     # MARKER_KEEP later: the marker goes
        assert wait(lambda: _records(path) == [])
        [rep] = reports(pipe)
        assert rep["content"] == CONTENT and rep["parts_id"] == pid
    finally:
        h.stop()


def test_a_part_whose_record_cannot_be_written_is_asked_for_again(pipe, tmp_path):
    h, path = _journalled(pipe, tmp_path)
    p1, p2 = ucs2_parts(REPORT, ref=0x72)
    try:
        path.unlink()
        path.mkdir()                                    # appends fail: the disk refuses
        s1 = deliver(h, mo(p1))
        assert wait(lambda: answers(h) == {s1: [C.ESME_RX_T_APPN]})
        assert h.proxy.stats["mo_parts_not_recorded"] == 1
        path.rmdir()
        h.run(lambda: h.proxy.mo_log.compact())        # (a torn journal is rewritten; here it only failed)
        s1b = deliver(h, mo(p1))                         # the SMSC delivers it again
        assert wait(lambda: answers(h).get(s1b) == [0])
        s2 = deliver(h, mo(p2))
        assert wait(lambda: answers(h).get(s2) == [0])
        [rep] = reports(pipe)
        assert rep["content"] == CONTENT
    finally:
        h.stop()


def test_a_part_sent_again_leaves_one_record(pipe, tmp_path):
    h, path = _journalled(pipe, tmp_path)
    p1, _ = ucs2_parts(REPORT, ref=0x73)
    try:
        a = deliver(h, mo(p1))
        b = deliver(h, mo(p1))
        assert wait(lambda: answers(h) == {a: [0], b: [0]})
        assert wait(lambda: len(_records(path)) == 1)
    finally:
        h.stop()


def test_a_report_in_parts_survives_a_clean_stop_between_its_parts(tmp_path):
    """A stop used to judge the message with the parts it had (a report cut short) and the part after the
    restart as a message of its own (a second one): now the parts wait in the journal for the rest."""
    run = ServeBeside(tmp_path)
    p1, p2 = ucs2_parts(REPORT, ref=0x74)
    try:
        proc, _ = run.start(1)
        s1 = deliver(run.sim, mo(p1))
        assert wait(lambda: answers(run.sim) == {s1: [0]}, 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        rep = run.data / "reports.jsonl"
        assert not rep.exists() or not rep.read_text().strip()
        proc, _ = run.start(2)
        deliver(run.sim, mo(p2))
        # (sequence numbers start again on the new bind: the SMSC's answers are counted)
        assert wait(lambda: sorted(r.command_status for r in list(run.sim.sim.mo_responses)) == [0, 0], 10)
        [r] = [json.loads(line) for line in rep.read_text(encoding="utf-8").splitlines()]
        assert r["content"] == CONTENT
    finally:
        run.close()


@pytest.mark.parametrize("crashes", [1, 2])
def test_a_report_written_before_a_crash_is_not_counted_again(tmp_path, crashes):
    """The crash falls between the report's line and its parts' gone records: the next start finds the
    report's parts_id in reports.jsonl, does not put the parts back, and the completing part the SMSC
    delivers again (it had no answer) is acknowledged without a second report; so too after a second crash
    before that part comes (the first restart marked the message done on disk)."""
    run = ServeBeside(tmp_path)
    p1, p2 = ucs2_parts(REPORT, ref=0x75)
    try:
        proc, _ = run.start(1)
        s1 = deliver(run.sim, mo(p1))
        assert wait(lambda: answers(run.sim) == {s1: [0]}, 10)
        proc.kill()
        proc.wait(10)
        [(owner, _)] = _records(run.data / "smpp" / "mo_parts.journal")
        pid = owner[6]
        from datetime import datetime, timezone
        rep = run.data / "reports.jsonl"
        line = {"reporter": "+84911000001", "reported": "+84912345678", "content": CONTENT, "kind": "S",
                "time": datetime.now(timezone.utc).isoformat(), "label": None, "parts_id": pid}
        rep.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
        proc, _ = run.start(2)
        if crashes == 2:
            assert wait(lambda: [o[5] for o, _ in _records(run.data / "smpp" / "mo_parts.journal")] == [0], 5)
            proc.kill()
            proc.wait(10)
            proc, _ = run.start(3)
        deliver(run.sim, mo(p2))
        assert wait(lambda: sorted(r.command_status for r in list(run.sim.sim.mo_responses)) == [0, 0], 10)
        time.sleep(0.3)
        assert len(rep.read_text(encoding="utf-8").splitlines()) == 1
        # only the message's done marker is left (for an hour: the SMSC's retries)
        assert [o[5] for o, _ in _records(run.data / "smpp" / "mo_parts.journal")] == [0]
    finally:
        run.close()


def test_a_part_refused_for_its_record_is_not_used_and_its_copy_completes_the_report_once(pipe, tmp_path):
    """The part answered ESME_RX_T_APPN leaves its message (it used to stay, the report was judged with it,
    and the SMSC's copy, coming after the memory of that report, was judged again: counted twice)."""
    h, path = _journalled(pipe, tmp_path, concat_timeout=0.5)
    p1, p2 = ucs2_parts(REPORT, ref=0x76)
    try:
        path.unlink()
        path.mkdir()                                     # the disk refuses the part's record
        s1 = deliver(h, mo(p1))
        assert wait(lambda: answers(h) == {s1: [C.ESME_RX_T_APPN]})
        path.rmdir()
        h.run(lambda: h.proxy.mo_log.compact())
        s2 = deliver(h, mo(p2))                          # the SMSC goes on with part 2 first
        assert wait(lambda: answers(h).get(s2) == [0])
        time.sleep(0.2)
        assert reports(pipe) == []                       # part 2 waits for part 1's copy
        s1b = deliver(h, mo(p1))                         # the copy
        assert wait(lambda: answers(h).get(s1b) == [0])
        time.sleep(1.0)                                  # past concat_timeout: nothing more is judged
        [rep] = reports(pipe)
        assert rep["content"] == CONTENT
    finally:
        h.stop()


def test_a_crash_after_the_message_is_marked_done_before_its_answer_counts_it_once(pipe, tmp_path):
    """Parts out of order (2, then 1 completes it): the disk as a kill -9 leaves it just before part 1 is
    answered holds the report and the message's marker; after the restart the SMSC delivers part 1 again
    (no answer came) and it is acknowledged, not reported again."""
    from engine.app import build
    crash = tmp_path / "crash.journal"
    h, path = _journalled(pipe, tmp_path)          # (part 1 completes it: no timer needed before the restart)
    real, seen = h.proxy._mo_outcome, []

    def outcome(*a, **kw):                               # "kill -9 now"
        if not seen:
            shutil.copyfile(path, crash)
            seen.append(len(reports(pipe)))
        return real(*a, **kw)
    h.proxy._mo_outcome = outcome
    p1, p2 = ucs2_parts(REPORT, ref=0x77)
    try:
        s2 = deliver(h, mo(p2))
        assert wait(lambda: answers(h) == {s2: [0]})
        deliver(h, mo(p1))
        assert wait(lambda: len(answers(h)) == 2)
    finally:
        h.stop()
    assert seen == [1] and [o[5] for o, _ in _records(crash)] == [0]     # the report, and the marker alone
    path.unlink()
    shutil.copyfile(crash, path)
    pipe2 = build(data_dir=pipe.store.dir)
    h2 = ProxyHarness(pipe2, settings=SmppSettings(concat_timeout=0.5)).start()
    try:
        h2.run(lambda: h2.proxy.open_mo_parts(path, h2.proxy.loop))
        h2.run(h2.proxy._restore_mo_parts)
        s = deliver(h2, mo(p1))
        assert wait(lambda: answers(h2).get(s) == [0])
        time.sleep(1.0)
        assert len(reports(pipe2)) == 1
    finally:
        h2.stop()


def test_reports_are_searched_from_where_the_file_ended_not_by_time(tmp_path):
    """Replication appends other nodes' reports with their own (older) times: the search reads forward from
    the offset the parts recorded, whatever the times say."""
    from datetime import datetime, timedelta, timezone

    from engine.lists.reports import ReportStore
    st = ReportStore(tmp_path)
    now = datetime.now(timezone.utc)

    def line(t, pid=None):
        r = {"reporter": "+84911000001", "reported": "+84912345678", "content": "é x", "kind": "S",
             "time": t.isoformat(), "label": None}
        return json.dumps(dict(r, parts_id=pid) if pid else r, ensure_ascii=False) + "\n"
    head = line(now - timedelta(days=2), "old0000000000000")
    st.path.write_text(head + line(now, "aaaa000000000000") + line(now - timedelta(hours=3)) + '{"torn',
                       encoding="utf-8")
    off = len(head.encode())
    assert st.parts_recorded({"aaaa000000000000", "old0000000000000"}, off) == {"aaaa000000000000"}
    assert st.parts_recorded({"aaaa000000000000"}, off - 3) == {"aaaa000000000000"}   # mid-line: the next line
    assert st.parts_recorded({"old0000000000000"}, 10 ** 9) == {"old0000000000000"}  # shorter now: whole file


def test_a_done_marker_lasts_an_hour_from_when_it_was_written_across_restarts(pipe, tmp_path):
    """Restarts do not make a done message's marker live for ever: it goes NOT_RECORDED_KEEP after it was
    written; until then the message's completing part, delivered again, is acknowledged, not judged."""
    from engine.smpp_proxy.mo import NOT_RECORDED_KEEP
    path = tmp_path / "smpp" / "mo_parts.journal"
    p1, _ = ucs2_parts(REPORT, ref=0x78)
    h = ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.5)).start()
    try:
        addr = list(mo_origin(h.proxy.links[0]))
        old, fresh = time.time() - NOT_RECORDED_KEEP - 5, time.time() - 10
        HeldJournal(path).rewrite([
            (1, json.dumps([addr, "84911000001", "5656", 0x79, 2, 0, "a" * 16, 0, old]), b""),
            (2, json.dumps([addr, "84911000001", "5656", 0x78, 2, 0, "b" * 16, 0, fresh]), b"")])
        h.run(lambda: h.proxy.open_mo_parts(path, h.proxy.loop))
        h.run(h.proxy._restore_mo_parts)
        assert wait(lambda: [o[3] for o, _ in _records(path)] == [0x78])     # the old marker is gone
        s = deliver(h, mo(p1))                           # part 1 of the fresh one, delivered again
        assert wait(lambda: answers(h).get(s) == [0])
        time.sleep(1.0)
        assert reports(pipe) == []                       # acknowledged, not judged on its own
    finally:
        h.stop()


def test_a_part_refused_after_its_message_used_it_is_not_counted_again_when_it_comes_late(pipe, tmp_path):
    """The SMSC sends parts 1 and 2 together; part 1's record fails while the message (completed by part 2) is
    written: part 1 is answered ESME_RX_T_APPN and its message remembered for NOT_RECORDED_KEEP, so the copy,
    coming after concat_timeout, is acknowledged as a late part (it was judged alone: a second report)."""
    from engine.smpp_proxy.codec import pdu as P
    p1, p2 = ucs2_parts(REPORT, ref=0x42)
    h, path = _journalled(pipe, tmp_path, concat_timeout=0.5)
    w = h.proxy.mo_log.writer
    real_parts, real_cmds = w.write, h.proxy.commands.write

    def failing(items):                                  # the parts journal refuses, after 0.1 s
        time.sleep(0.1)
        return [OSError(5, "EIO")] * len(items)

    def slow(items):                                     # the command's write takes 0.5 s
        time.sleep(0.5)
        return real_cmds(items)
    w.write, h.proxy.commands.write = failing, slow
    try:
        def both():
            s = [s for s in h.sim.sessions if s.bound][-1]
            out = []
            for p in (p1, p2):
                seq = s.conn.next_sequence()
                s.send(P.replace(mo(p), sequence_number=seq))
                out.append(seq)
            return out
        s1, s2 = h.run(both)
        assert wait(lambda: answers(h).get(s1) == [C.ESME_RX_T_APPN] and answers(h).get(s2) == [0], 5)
        w.write, h.proxy.commands.write = real_parts, real_cmds
        assert len(reports(pipe)) == 1
        time.sleep(1.0)                                  # the SMSC's retry, after concat_timeout
        s1b = deliver(h, mo(p1))
        assert wait(lambda: answers(h).get(s1b) == [0])
        time.sleep(1.0)
        assert len(reports(pipe)) == 1
    finally:
        h.stop()


def test_a_part_longer_than_a_held_receipt_is_journalled_and_read_back(pipe, tmp_path):
    """A part carried in message_payload (SAR TLVs) may be as long as max_pdu: its record is read back, not
    taken for damage (the held receipts' 8 KB bound on a record is theirs)."""
    from engine.smpp_proxy.codec import Tlv
    h, path = _journalled(pipe, tmp_path)
    long_part = ("S 0912345678 " + "tin nhắn rác " * 900).encode("utf-16-be")         # ~23 KB
    tlvs = (Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x01\x07"), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
            Tlv(C.TAG_SAR_SEGMENT_SEQNUM, b"\x01"), Tlv(C.TAG_MESSAGE_PAYLOAD, long_part))
    try:
        s = deliver(h, mo(b"", esm_class=0, tlvs=tlvs))
        assert wait(lambda: answers(h).get(s) == [0])
        assert wait(lambda: len(_records(path)) == 1)
        [(owner, raw)] = h.proxy.mo_log.journal.replay()          # as the next start reads it
        assert json.loads(owner)[5] == 1 and len(raw) > 20_000
        assert not (path.parent / "mo_parts.journal.unreadable").exists()
    finally:
        h.stop()


@pytest.mark.parametrize("same_port", [True, False])
def test_a_part_journalled_by_a_version_before_stop_57_joins_its_rest_after_the_upgrade(pipe, tmp_path, same_port):
    """Before stop 57 a part's key began with the address of the SMSC link it came on ([host, port]), not the
    SMSC's origin (mo_origin): read back as it was, the part journalled before the upgrade and the one after it
    were two messages, judged at concat_timeout as a cut report and a syntax error. An address the SMSC links
    have, or any with one SMSC (one id_space: its port may have changed), is that SMSC's origin."""
    path = tmp_path / "smpp" / "mo_parts.journal"
    p1, p2 = ucs2_parts(REPORT, ref=0x7A)
    h = ProxyHarness(pipe, settings=SmppSettings(concat_timeout=60)).start()
    try:
        addr = list(h.proxy.links[0].addr) if same_port else ["127.0.0.1", 1]
        HeldJournal(path).rewrite([(1, json.dumps([addr, REPORTER, "5656", 0x7A, 2, 1, "c" * 16, 0, time.time() - 5]),
                                    encode(P.replace(mo(p1), sequence_number=7)))])
        h.run(lambda: h.proxy.open_mo_parts(path, h.proxy.loop))
        h.run(h.proxy._restore_mo_parts)
        s2 = deliver(h, mo(p2))
        assert wait(lambda: answers(h).get(s2) == [0])
        assert wait(lambda: len(reports(pipe)) == 1), "the report was not put together from its two parts"
        assert reports(pipe)[0]["content"] == CONTENT
    finally:
        h.stop()
