"""`telfilter verdicts` reads its logs merged by time (engine/report/logmerge.py): an offline list change in
DATA/lists/changes.jsonl shows among the verdict log's lines. Rotated logs, one after another in time, are opened one
or two at a time, not all at once: each open .xz holds its ~9 MB dictionary (90 days of them were ~800 MB)."""
import json
import lzma
from datetime import datetime, timedelta, timezone

import engine.report.logmerge as logmerge
from engine.report.reader import Malformed, read_verdicts

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _rec(t, **kw):
    return json.dumps({"ts": t.isoformat(), "kind": "sms", "action": "allow", "hits": [], **kw}) + "\n"


def test_rotated_logs_are_read_merged_with_two_open_at_most(tmp_path, monkeypatch):
    paths = []
    for day in range(30):
        p = tmp_path / f"verdicts.log.{30 - day}.xz"
        p.write_bytes(lzma.compress("".join(_rec(T0 + timedelta(days=day, minutes=m), n=day * 100 + m)
                                            for m in range(100)).encode()))
        paths.append(str(p))
    changes = tmp_path / "changes.jsonl"
    changes.write_text("".join(json.dumps({"ts": (T0 + timedelta(days=d, hours=1, seconds=30)).isoformat(),
                                           "kind": "list", "op": "add", "list": "dnc", "value": "0912000001",
                                           "by": "cli uid 0"}) + "\n" for d in (0, 3, 29)))
    open_now, most = [0], [0]
    read_log = logmerge._read_log

    def counted(p, bad, bar, fd=None):
        open_now[0] += 1
        most[0] = max(most[0], open_now[0])
        try:
            yield from read_log(p, bad, bar, fd)
        finally:
            open_now[0] -= 1
    monkeypatch.setattr(logmerge, "_read_log", counted)
    got = list(read_verdicts(list(reversed(paths)) + [str(changes)], Malformed(), progress=False, merged=True))
    assert len(got) == 3003
    assert [t for t, _ in got] == sorted(t for t, _ in got)
    kinds = [r["kind"] for _, r in got]
    assert kinds[61] == "list" and kinds[60] == kinds[62] == "sms"         # day 0, 01:00:30, between 01:00 and 01:01
    assert most[0] <= 2, most[0]


def test_each_logs_own_lines_keep_their_order_and_stdin_or_unreadable_heads_open_at_once(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text(_rec(T0, n=1) + _rec(T0 - timedelta(seconds=5), n=2) + _rec(T0 + timedelta(seconds=10), n=3))
    b = tmp_path / "b.jsonl"
    b.write_text("not json\n" * 1001 + _rec(T0 + timedelta(seconds=1), n=4))      # no time in its first 1,000 lines
    bad = Malformed()
    got = [r["n"] for _, r in read_verdicts([str(a), str(b)], bad, progress=False, merged=True)]
    assert got == [1, 2, 4, 3]
    assert bad.count == 1001


def test_a_log_whose_first_line_is_no_record_opens_at_its_first_records_time(tmp_path):
    # (its first line has a time but is refused: the log was opened at 10:00 and its 08:00 line came after 09:00)
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps({"ts": (T0 + timedelta(hours=10)).isoformat(), "kind": "sms", "action": "BOGUS"}) + "\n"
                 + _rec(T0 + timedelta(hours=8), n=1))
    b = tmp_path / "b.jsonl"
    b.write_text(_rec(T0 + timedelta(hours=8, minutes=30), n=2) + _rec(T0 + timedelta(hours=9), n=3))
    bad = Malformed()
    assert [r["n"] for _, r in read_verdicts([str(a), str(b)], bad, progress=False, merged=True)] == [1, 2, 3]
    assert bad.count == 1


def test_a_pipe_is_read_once_whole(tmp_path):
    """A log given as a pipe (`--log <(zcat …)`, a FIFO) is read once: a first look at it (its first time, the
    damage check) took a buffer of its lines away (lost lines, and malformed ones where the cut fell)."""
    import os
    import threading
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    body = "".join(_rec(T0 + timedelta(seconds=i), n=i) for i in range(20000)).encode()
    w = threading.Thread(target=lambda: fifo.write_bytes(body), daemon=True)
    w.start()
    other = tmp_path / "b.jsonl"
    other.write_text(_rec(T0 + timedelta(seconds=5, milliseconds=500), n=-1))
    bad = Malformed()
    got = [r["n"] for _, r in read_verdicts([str(fifo), str(other)], bad, progress=False, merged=True)]
    w.join(10)
    assert bad.count == 0 and len(got) == 20001 and got[:8] == [0, 1, 2, 3, 4, 5, -1, 6], (bad.shown, got[:8])


def test_the_live_log_rotated_while_older_ones_are_read_is_read_whole(tmp_path):
    """`--log verdicts.log*`: the live log, newest, is read last, minutes later for 90 days of .xz; it was opened by
    name then, so a rotation meanwhile (logrotate's `create`: renamed, a new empty file made) lost every line of it,
    unsaid. It is read from the file looked at first."""
    import os
    old = tmp_path / "verdicts.log.1.xz"
    old.write_bytes(lzma.compress("".join(_rec(T0 + timedelta(seconds=s), n=s) for s in range(5)).encode()))
    live = tmp_path / "verdicts.log"
    live.write_text("".join(_rec(T0 + timedelta(days=1, seconds=s), n=100 + s) for s in range(5)))
    got = []
    for ts, rec in read_verdicts([str(live), str(old)], Malformed(), progress=False, merged=True):
        got.append(rec["n"])
        if len(got) == 1:           # (logrotate runs now)
            os.rename(live, tmp_path / "verdicts.log.0")
            live.write_text("")
    assert got == [0, 1, 2, 3, 4, 100, 101, 102, 103, 104], got


def test_a_held_log_that_fails_its_first_pass_is_said_unreadable_not_a_traceback(tmp_path, monkeypatch):
    """A log held open from its first look is checked (reader._damage: a .gz/.xz decompressed whole) before its
    lines; an I/O error there (EIO on a failing disk) ended `verdicts` with a traceback and left its descriptor open,
    where a log opened by name says `unreadable from here on` and the others are still read."""
    import os

    import engine.report.reader as reader
    bad_log = tmp_path / "verdicts.log.1.xz"
    bad_log.write_bytes(lzma.compress(_rec(T0, n=0).encode()))
    good = tmp_path / "verdicts.log"
    good.write_text(_rec(T0 + timedelta(days=1), n=1))
    damage = reader._damage

    def failing(path):
        if isinstance(path, int) and os.readlink(f"/proc/self/fd/{path}") == str(bad_log):
            os.close(path)
            raise OSError(5, "Input/output error")
        return damage(path)
    monkeypatch.setattr(reader, "_damage", failing)
    fds = len(os.listdir("/proc/self/fd"))
    bad = Malformed()
    got = [r["n"] for _, r in read_verdicts([str(good), str(bad_log)], bad, progress=False, merged=True)]
    assert got == [1] and bad.count == 1 and "unreadable from here on" in bad.shown[0], bad.shown
    assert len(os.listdir("/proc/self/fd")) == fds


def test_logs_read_one_after_another_across_a_rotation_are_read_as_they_were_named(tmp_path):
    """`report --log verdicts.log*` reads the logs one after another, the live one first (the glob's order); each was
    opened by name when reached, so a rotation meanwhile (logrotate: the live log renamed .1, the .1 renamed .2 ...)
    made `verdicts.log.1` the live log just read: its lines counted twice in the regulator's report, and the old .1's
    not at all. Each regular log is read from the file it named when the reading began, as `verdicts` does."""
    import os
    live, one = tmp_path / "verdicts.log", tmp_path / "verdicts.log.1"
    live.write_text("".join(_rec(T0 + timedelta(days=1, seconds=s), n=100 + s) for s in range(3)))
    one.write_text("".join(_rec(T0 + timedelta(seconds=s), n=s) for s in range(3)))
    got = []
    for ts, rec in read_verdicts([str(live), str(one)], Malformed(), progress=False):
        got.append(rec["n"])
        if len(got) == 1:           # (logrotate runs now)
            os.rename(one, tmp_path / "verdicts.log.2")
            os.rename(live, one)
            live.write_text("")
    assert got == [100, 101, 102, 0, 1, 2], got


def test_no_descriptor_left_for_a_first_look_is_no_traceback_and_leaks_none(tmp_path, monkeypatch):
    """The open-files limit reached at a held log's first look (os.dup: EMFILE): it raised out of `verdicts` with the
    log's descriptor left open; now that log is read when reached, as one that could not be opened."""
    import errno
    import os
    logs = []
    for day in range(3):
        p = tmp_path / f"verdicts.log.{3 - day}"
        p.write_text(_rec(T0 + timedelta(days=day), n=day))
        logs.append(str(p))
    real, calls = os.dup, [0]

    def dup(fd):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.EMFILE, "Too many open files")
        return real(fd)
    monkeypatch.setattr(logmerge.os, "dup", dup)
    fds = len(os.listdir("/proc/self/fd"))
    got = [r["n"] for _, r in read_verdicts(logs, Malformed(), progress=False, merged=True)]
    assert sorted(got) == [0, 1, 2] and calls[0] >= 2
    assert len(os.listdir("/proc/self/fd")) == fds
