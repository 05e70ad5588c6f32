"""A 5656 command's digest outlives the folds of the DNC journal (engine/lists/journal.py keep_recent): each fold that
takes a 5656 line out of `lists/dnc.delta` keeps its digest in `lists/dnc.delta.recent` for RECENT_KEEP seconds, so a
copy the SMSC delivers again within the window after two or more folds (offline `lists` edits while serve was down)
is still known (engine/smpp_proxy/mo_redelivery.py). Before, only `dnc.delta.prev` (the last fold's lines) was read:
the copy of a HUY DNC was applied again and answered DNC_NOT_REGISTERED."""
import json
import subprocess
import sys
import time

from engine.app import build
from engine.lists import ListStore
from engine.lists.journal import RECENT_KEEP, keep_recent, read_journal
from engine.smpp_proxy.mo_redelivery import WINDOW, Redeliveries
from tests.conftest import ROOT
from tests.test_shortcode_redelivery import CANCELLED, REGISTERED, SUB, Run, command, dnc_lines, sms
from tests.test_smpp_mo_concat import deliver
from tests.test_smpp_receipts import ServeBeside
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)


def _line(number, d, at, op="add"):
    return json.dumps({"op": op, "number": number, "channel": "SV", "mo_digest": f"{d:016x}", "at": at}) + "\n"


def test_a_huy_dnc_copy_after_a_crash_and_three_offline_folds_is_answered_as_the_first(pipe):
    """serve killed before the HUY DNC's answer left; three `lists add dnc` (three folds) before it starts again; the
    SMSC's copy is confirmed as the first (it was told DNC_NOT_REGISTERED, the list itself right)."""
    run = Run(pipe)
    try:
        h = run.start()
        assert command(h, sms(b"DK DNC")) == REGISTERED
        assert command(h, sms(b"HUY DNC")) == CANCELLED
        run.stop()                          # its answer lost with the process
        for n in ("84911000301", "84911000302", "84911000303"):
            ListStore(run.dir).add("dnc", n)          # each folds the journal into a new dnc snapshot
        assert not read_journal(run.dir / "lists" / "dnc.delta").ops
        run.h, run.pipe = None, build(data_dir=run.dir)      # (as serve starts)
        h = run.start()
        assert command(h, sms(b"HUY DNC")) == CANCELLED
        time.sleep(0.2)
        assert h.proxy.stats["shortcode_redelivered"] == 1
        assert not read_journal(run.dir / "lists" / "dnc.delta").ops          # nothing written again
        assert not run.pipe.lists.in_dnc(int(SUB), "S") and run.pipe.lists.in_dnc(84911000303, "S")
        assert run.lines()[-1]["redelivery"] is True
    finally:
        run.stop()


def test_a_real_serve_killed_then_two_cli_edits_the_copy_is_answered_as_the_first(tmp_path):
    """kill -9 of a real serve after the HUY DNC's line and before its answer (the SMSC deaf to it); two `telfilter
    lists add dnc` (two folds) before the next serve; the SMSC's copy is confirmed as the first and removes nothing."""
    run = ServeBeside(tmp_path)
    try:
        proc, _ = run.start(1)
        assert command(run.sim, sms(b"DK DNC")) == REGISTERED
        run.sim.sim.hang()
        deliver(run.sim, sms(b"HUY DNC"))
        assert wait(lambda: len(dnc_lines(run.data)) == 2, 10)
        proc.kill()                                     # kill -9
        proc.wait(10)
        for n in ("84911000311", "84911000312"):
            subprocess.run([sys.executable, "-m", "engine.cli", "lists", "add", "dnc", n, "--data-dir", run.data],
                           cwd=ROOT, check=True, capture_output=True, timeout=60)
        assert dnc_lines(run.data) == []                # (both folded: the HUY DNC's line in neither journal file)
        run.start(2)
        assert command(run.sim, sms(b"HUY DNC")) == CANCELLED
        time.sleep(0.3)
        assert dnc_lines(run.data) == []                # nothing written again
        assert wait(lambda: sum('"redelivery": true' in x for x in (tmp_path / "v.log").read_text().splitlines())
                    == 1, 5)
    finally:
        run.close()


def test_a_fold_between_two_looks_of_another_worker_loses_it_no_command(pipe):
    """Two processes on one data dir (`serve --workers 2`): the first writes a HUY DNC, and the journal is folded (a
    `lists add dnc`) before the second's next look at it. That look reads the folded lines from dnc.delta.recent, so
    the SMSC's copy on the second's bind is known there (before: read from the new journal's start, never seen)."""
    one, two = Run(pipe), Run(build(data_dir=pipe.store.dir))
    try:
        h1, h2 = one.start(), two.start()
        assert command(h1, sms(b"DK DNC")) == REGISTERED
        assert wait(lambda: len(h2.proxy.redeliveries) == 1)
        h2.proxy._follow_at = float("inf")              # (its looks held back until the fold is done)
        assert command(h1, sms(b"HUY DNC")) == CANCELLED
        ListStore(one.dir).add("dnc", "84911000321")
        h2.proxy._follow_at = 0.0
        assert wait(lambda: len(h2.proxy.redeliveries) == 2)
        h1.stop()
        one.h = None
        assert command(h2, sms(b"HUY DNC")) == CANCELLED
        assert h2.proxy.stats["shortcode_redelivered"] == 1
    finally:
        one.stop()
        two.stop()


def test_the_recent_file_keeps_the_window_and_the_bound_and_is_no_journal(tmp_path):
    assert RECENT_KEEP >= WINDOW
    j, recent = tmp_path / "dnc.delta", tmp_path / "dnc.delta.recent"
    # a fold at 1000: the old command (outside the window) and a line without a digest are not kept
    j.write_text('{"gen": "g1"}\n{"op": "add", "number": 84911000401, "channel": "SV"}\n'
                 + _line(84911000402, 0xa1, 300.0) + _line(84911000403, 0xa2, 900.0))
    keep_recent(j, j.stat().st_size, 1000.0)
    # a second fold at 1300: the first fold's line within the window stays, the new one joins it
    # (a line written otherwise than append_lines writes it is read too; a damaged one is not)
    j.write_text('{"gen": "g2"}\n' + _line(84911000404, 0xa3, 1250.0, "remove")
                 + '{"at": 1260, "mo_digest": "00000000000000b1", "number": 84911000408, "op": "add", "channel": "S"}\n'
                 + '{"op": "add", "number": "x", "channel": "S", "mo_digest": "00000000000000b2", "at": 1270}\n')
    keep_recent(j, j.stat().st_size, 1300.0)
    assert [json.loads(x)["mo_digest"] for x in recent.read_text().splitlines()] == [
        "00000000000000a2", "00000000000000a3", "00000000000000b1"]
    assert read_journal(recent).ops == []           # (no op: a fall-back load replaying it would change nothing)
    r = Redeliveries(window=600)
    assert r.restore(tmp_path / "reports.jsonl", (recent, tmp_path / "dnc.delta.prev", j), 1300.0) == 3
    assert r.seen(0xa2, 84911000403, 1300.0) == (None, None, False)
    assert r.seen(0xa3, 84911000404, 1300.0) == (None, None, False)
    # a third fold past the window of both: the file keeps nothing of them
    j.write_text('{"gen": "g3"}\n' + _line(84911000405, 0xa4, 2000.0))
    keep_recent(j, j.stat().st_size, 2000.0, most=1)
    assert [json.loads(x)["mo_digest"] for x in recent.read_text().splitlines()] == ["00000000000000a4"]
    # at most `most` lines, the newest
    j.write_text('{"gen": "g4"}\n' + _line(84911000406, 0xa5, 2001.0) + _line(84911000407, 0xa6, 2002.0))
    keep_recent(j, j.stat().st_size, 2003.0, most=2)
    assert [json.loads(x)["mo_digest"] for x in recent.read_text().splitlines()] == ["00000000000000a5",
                                                                                     "00000000000000a6"]


def test_a_fold_without_5656_lines_leaves_no_file(tmp_path):
    j = tmp_path / "dnc.delta"
    j.write_text('{"gen": "g1"}\n{"op": "add", "number": 84911000401, "channel": "SV"}\n')
    keep_recent(j, j.stat().st_size, 1000.0)
    assert not (tmp_path / "dnc.delta.recent").exists()


def test_a_look_after_a_fold_reads_the_recent_files_lines_since_it_as_a_start_reads_them(tmp_path):
    from engine.smpp_proxy.mo_redelivery_files import _journal_digests, _recent_digests
    j, recent = tmp_path / "dnc.delta", tmp_path / "dnc.delta.recent"
    j.write_text('{"gen": "g1"}\n' + "".join(_line(84911000500 + i, 0xc0 + i, 1000.0 + i * 0.25) for i in range(40))
                 + '{"at": 1009.9, "mo_digest": "00000000000000b1", "number": 84911000408, "op": "add"}\n')
    keep_recent(j, j.stat().st_size, 1010.0)
    for since in (0.0, 1004.0, 1009.8, 1011.0):
        assert sorted(_recent_digests(recent, since)) == sorted(_journal_digests(recent, since))
    assert len(_recent_digests(recent, 1005.0)) == 21 and _recent_digests(tmp_path / "none", 0.0) == []


def test_a_fold_again_after_a_writer_killed_before_the_journals_rewrite_keeps_each_line_once(tmp_path):
    """A writer killed after dnc.delta.recent's rename and before the journal's rewrite (its snapshot in, naming the
    old generation and its mark) leaves the folded lines in the journal: the next fold takes them out again. Each is
    kept once (fails before the fix: twice, a copy of every line, RECENT_MOST then evicting real digests)."""
    j, recent = tmp_path / "dnc.delta", tmp_path / "dnc.delta.recent"
    j.write_text('{"gen": "g1"}\n' + _line(84911000601, 0xd1, 990.0) + _line(84911000602, 0xd2, 995.0))
    keep_recent(j, j.stat().st_size, 1000.0)                  # ... killed here: the journal not rewritten
    with open(j, "a") as f:
        f.write(_line(84911000603, 0xd3, 1001.0))
    keep_recent(j, j.stat().st_size, 1002.0)                  # the next writer's fold, from the journal's start
    assert [json.loads(x)["mo_digest"][-2:] for x in recent.read_text().splitlines()] == ["d1", "d2", "d3"]


def test_a_look_after_a_fold_reads_a_line_written_late_as_the_fold_kept_it(tmp_path):
    """A 5656 command judged 30 s before a worker's look, its line appended just after it (a disk stall held its
    fsync), then folded into the snapshot before the next look: the fold keeps lines up to lists/journal.py's
    _REORDERED (60 s) out of time order, and the look reads dnc.delta.recent as far back (fails before: 10 s, the
    line missed, a copy of that command on this worker's bind applied again)."""
    from datetime import datetime, timezone
    from engine.lists.journal import replace_with_tail
    from engine.smpp_proxy.filetail import Tail
    from engine.smpp_proxy.mo_redelivery_path import MoRedeliveryPath

    class Worker(MoRedeliveryPath):
        now = 1000.0

        def clock(self):
            return datetime.fromtimestamp(self.now, timezone.utc)

    j = tmp_path / "dnc.delta"
    j.write_text('{"gen": "g1"}\n')
    w = Worker()
    w.redeliveries, w._tails, w._looked = Redeliveries(), (Tail(tmp_path / "reports.jsonl"), Tail(j)), 1000.0
    with open(j, "a") as f:
        f.write(_line(84911000701, 0xe1, 970.0))            # judged at 970, appended after the look at 1000
    keep_recent(j, j.stat().st_size, 1000.5)
    replace_with_tail(j, j.stat().st_size, "g2")
    w.now = 1001.0
    w._follow_redeliveries(0.0)
    assert w.redeliveries.seen(0xe1, 84911000701, 1001.0) == (None, None, False)


def test_a_fold_builds_the_recent_file_without_the_journal_lock(tmp_path, monkeypatch):
    """Every 5656 command's append waits on journal.lock (lists/journal.py: held for a few system calls, never while
    a snapshot is built). dnc.delta.recent's lines (0.4 s at RECENT_MOST lines and a 4.5 MB fold, measured) are
    parsed, sorted and written before it is taken; only the rename happens under it (fails before: held throughout)."""
    import engine.lists.journal as journal
    from engine.lists.journal import flocked
    store = ListStore(tmp_path)
    store.journal([("add", 84911000801, "SV", {"mo_digest": "00000000000000f1", "at": round(time.time(), 3)})])
    real, free = journal._recent_lines, []

    def lines(*a):
        with flocked(store.journal_lock, wait=False) as got:
            free.append(got)
        return real(*a)
    monkeypatch.setattr(journal, "_recent_lines", lines)
    store.add("dnc", "84911000802")                     # a fold
    assert free == [True]
    assert [json.loads(x)["mo_digest"] for x in (tmp_path / "lists" / "dnc.delta.recent").read_text().splitlines()] \
        == ["00000000000000f1"]
    assert not [p.name for p in (tmp_path / "lists").iterdir() if ".tmp" in p.name]
