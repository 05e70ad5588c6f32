"""A 5656 message in parts judged at `concat_timeout` with parts whose text made no command (a syntax error, nothing
in force) across a restart (engine/smpp_proxy/mo_journal.py, mo_restore.py): its late part, after a kill -9 or a
clean stop, has the whole text judged as without the restart (test_smpp_mo_concat_late_command). The journal kept
a done marker for it: after the restart the late part was acknowledged, not judged, and the report was lost."""
import shutil

import pytest

from engine.smpp_proxy.accounts import DEFAULT_REPLIES
from tests.test_mo_parts_journal import _journalled, _records
from tests.test_mo_parts_journal_restarts import _crash_at_marker, _left, _restarted
from tests.test_smpp_mo_concat import answers, confirmations, deliver, gsm_parts, mo, reports
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)

SYNTAX = DEFAULT_REPLIES["SHORTCODE_SYNTAX_ERROR"]
REPORTED = DEFAULT_REPLIES["SPAM_REPORTED"]
CHUNKS = ["S 0987000333 lua dao ", "vay tien nhanh lai suat thap"]


def _judged_then_restarted(pipe, tmp_path, how, ref):
    """Part 2 of a report alone, judged at the timeout (a syntax error, told), then a kill -9 (the journal as it
    is on disk then) or a clean stop; returns the restarted (pipe2, h2) and the parts."""
    p1, p2 = gsm_parts(CHUNKS, ref=ref)
    crash = tmp_path / "crash.journal"
    h, path = _journalled(pipe, tmp_path, concat_timeout=0.5)
    try:
        s2 = deliver(h, mo(p2, dc=0))
        assert wait(lambda: answers(h) == {s2: [0]})
        assert wait(lambda: confirmations(h) == [SYNTAX], 3)
        # its marker on disk (the judging's record: written once it is judged)
        assert wait(lambda: any(owner[5] == 0 for owner, _ in _records(path)), 3)
    finally:
        _left(h, path, crash, how)
    assert reports(pipe) == []
    return (*_restarted(pipe, crash, path), p1, p2)


@pytest.mark.parametrize("how", ["kill9", "clean_stop"])
def test_a_late_first_part_after_a_restart_completes_the_report(pipe, tmp_path, how):
    pipe2, h2, p1, _ = _judged_then_restarted(pipe, tmp_path, how, ref=0x65)
    try:
        s1 = deliver(h2, mo(p1, dc=0))
        assert wait(lambda: answers(h2).get(s1) == [0], 3)
        assert wait(lambda: confirmations(h2) == [REPORTED], 3)
        assert [(r["reported"], r["content"]) for r in reports(pipe2)] == \
            [("+84987000333", "lua dao vay tien nhanh lai suat thap")]
        assert h2.proxy.stats["mo_concat_late_shortcode"] == 0
    finally:
        h2.stop()


def test_the_late_part_sent_again_after_a_second_restart_is_counted_once(pipe, tmp_path):
    """The late part made the report (its done marker written); a second kill -9, and the SMSC delivers that part
    again (its answer lost): acknowledged, not a second report."""
    pipe2, h2, p1, _ = _judged_then_restarted(pipe, tmp_path, "kill9", ref=0x66)
    crash = tmp_path / "crash2.journal"
    try:
        deliver(h2, mo(p1, dc=0))
        assert wait(lambda: len(reports(pipe2)) == 1, 3)
        path = h2.proxy.mo_log.journal.path
        # the done marker replaced the parts (they are gone once the report is in force)
        assert wait(lambda: [owner[5] for owner, _ in _records(path)] in ([0], [0, 0]), 3)
        shutil.copyfile(path, crash)
    finally:
        h2.stop()
    pipe3, h3 = _restarted(pipe2, crash, path)
    try:
        s = deliver(h3, mo(p1, dc=0))
        assert wait(lambda: answers(h3).get(s) == [0], 3)
        assert len(reports(pipe3)) == 1 and confirmations(h3) == []
        assert h3.proxy.stats["mo_concat_late_shortcode"] == 1
    finally:
        h3.stop()


def test_a_crash_between_the_late_parts_report_and_its_marker_counts_it_once(pipe, tmp_path):
    """A kill -9 after the late part's report line and before its done marker: the line names the parts' id, so
    the next start finds the message done (the no-command marker notwithstanding) and the late part sent again is
    acknowledged, not a second report."""
    pipe2, h2, p1, _ = _judged_then_restarted(pipe, tmp_path, "kill9", ref=0x67)
    crash = tmp_path / "crash2.journal"
    path = h2.proxy.mo_log.journal.path
    _crash_at_marker(h2, crash)
    try:
        deliver(h2, mo(p1, dc=0))
        assert wait(lambda: len(reports(pipe2)) == 1 and crash.exists(), 3)
    finally:
        h2.stop()
    assert sorted(owner[5] for owner, _ in _records(crash)) == [0, 2]       # its no-command marker and part 2
    pipe3, h3 = _restarted(pipe2, crash, path)
    try:
        s = deliver(h3, mo(p1, dc=0))
        assert wait(lambda: answers(h3).get(s) == [0], 3)
        assert len(reports(pipe3)) == 1 and confirmations(h3) == []
    finally:
        h3.stop()


def test_the_parts_judged_with_no_command_are_forgotten_after_the_hour_across_a_restart(pipe, tmp_path, monkeypatch):
    """The same bound as without a restart (NOT_RECORDED_KEEP after it was judged, here 0.5 s): a start after it
    drops the marker and the parts' records (nothing waits, nothing is judged again)."""
    import time

    import engine.smpp_proxy.mo_restore as R
    monkeypatch.setattr(R, "NOT_RECORDED_KEEP", 0.5)
    p1, p2 = gsm_parts(CHUNKS, ref=0x68)
    crash = tmp_path / "crash.journal"
    h, path = _journalled(pipe, tmp_path, concat_timeout=0.5)
    try:
        deliver(h, mo(p2, dc=0))
        assert wait(lambda: sorted(owner[5] for owner, _ in _records(path)) == [0, 2], 3)
    finally:
        _left(h, path, crash, "kill9")
    time.sleep(0.6)                                     # past the (patched) hour
    pipe2, h2 = _restarted(pipe, crash, path)
    try:
        assert wait(lambda: _records(path) == [], 3)
        assert h2.proxy.mo_concat.judged == {} and h2.proxy.mo_concat.pending == {}
    finally:
        h2.stop()
    assert confirmations(h2) == []


def test_a_no_command_marker_whose_parts_are_gone_is_dropped(pipe, tmp_path):
    """The late part made it a report, and its done marker (MARKER_KEEP) went before the no-command marker (an
    hour): a start finds that marker alone, names no parts, and drops it (nothing remembered as waiting)."""
    pipe2, h2, p1, _ = _judged_then_restarted(pipe, tmp_path, "kill9", ref=0x69)
    crash = tmp_path / "crash2.journal"
    path = h2.proxy.mo_log.journal.path
    try:
        deliver(h2, mo(p1, dc=0))
        assert wait(lambda: len(reports(pipe2)) == 1, 3)
        assert wait(lambda: sorted(owner[5] for owner, _ in _records(path)) == [0, 0], 3)
        h2.run(lambda: h2.proxy._mo_expire(h2.proxy.loop.time() + 600))     # the done marker's MARKER_KEEP passed
        assert wait(lambda: [owner[5] for owner, _ in _records(path)] == [0], 3)
    finally:
        _left(h2, path, crash, "kill9")
    pipe3, h3 = _restarted(pipe2, crash, path)
    try:
        assert wait(lambda: _records(path) == [], 3)
        assert h3.proxy.mo_concat.judged == {}
    finally:
        h3.stop()
