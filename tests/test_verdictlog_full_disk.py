"""The verdict log on a disk that is full for a while (found by the ops probe: `serve --log` on a 3 MB tmpfs filled
by dd, 1,500 submit_sm answered, the filler removed 2 s later): every line judged while the disk was full was lost
(999 of 1,500 lines, counted in telfilter_verdict_log_lost_lines_total), although the writer went on with the next
lines as soon as the disk had room. The regulator's report and the analysts read that log: a transient full disk
(a rotation's compression, another process's burst) took those messages out of it for good.

Now the writer holds what the disk refused (in its buffer, bounded as before: past FileOut.MAX new lines are
refused and counted) and tries again every RETRY_S until the disk takes it: every line once, in order. A stop
while the disk is still full gives up at once (counted lost) and leaves the lines in the crash spool, which the
next writer of the log appends."""
import errno
import json
import os
import threading
import time

from engine import logwriters
from engine.disktrouble import trouble
from engine.logwriters import FileOut
from engine.verdictlog import VerdictLog
from tests.test_smpp_proxy import wait


class _Disk:
    """os.write of the verdict log's writer on a disk that is full while `full` is set: ENOSPC, after taking
    `room` bytes of the first write that meets it (a nearly full disk takes part of a write)."""

    def __init__(self, monkeypatch, room: int = 0):
        self.real, self.full, self.room, self.refused = os.write, threading.Event(), room, 0
        monkeypatch.setattr(logwriters.os, "write", self.write)

    def write(self, fd, data):
        if not self.full.is_set():
            return self.real(fd, data)
        if self.room:
            n, self.room = self.real(fd, bytes(data[:self.room])), 0
            return n
        self.refused += 1
        raise OSError(errno.ENOSPC, "No space left on device")


def _lines(n0, n, pad=True):
    return "".join(json.dumps({"kind": "sms", "n": i, "pad": "x" * (i % 13 * 7 if pad else 0)}) + "\n"
                   for i in range(n0, n0 + n))


def _read(path):
    raw = path.read_bytes()
    assert raw.endswith(b"\n") or not raw
    return [json.loads(x)["n"] for x in raw.split(b"\n")[:-1]]          # every line parses: none torn, none glued


def test_lines_the_full_disk_refused_are_written_once_it_has_room(tmp_path, monkeypatch):
    monkeypatch.setattr(FileOut, "RETRY_S", 0.05, raising=False)
    disk = _Disk(monkeypatch, room=301)             # the first write that meets the full disk takes 301 bytes
    path = tmp_path / "verdicts.jsonl"
    f = FileOut(str(path), spool=True)
    try:
        f.write(_lines(0, 20))
        f.flush()
        assert wait(lambda: len(_read(path)) == 20)
        disk.full.set()
        for k in range(3):                          # three flushes' lines while the disk is full
            f.write(_lines(20 + 25 * k, 25))
            f.flush()
        assert wait(lambda: disk.refused >= 3)      # tried again, and refused again: nothing given up
        assert trouble("verdict_log").failing
        assert f.lost_lines == 0 and len(_read(path)) < 95
        disk.full.clear()                           # room again: what was held lands, then the next lines
        f.write(_lines(95, 5))
        f.flush()
        assert wait(lambda: len(_read(path)) == 100)
        assert _read(path) == list(range(100))      # each line once, in order
        assert f.lost_lines == 0 and not trouble("verdict_log").failing
    finally:
        disk.full.clear()
        f.drain()
    assert not list(tmp_path.glob(".verdicts.jsonl.spool.*"))           # all written: the spool is gone


def test_a_stop_on_a_full_disk_is_not_held_up_and_the_next_writer_appends_the_held_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(FileOut, "RETRY_S", 30.0, raising=False)   # a stop does not wait for the next try
    disk = _Disk(monkeypatch)
    path = tmp_path / "verdicts.jsonl"
    f = FileOut(str(path), spool=True)
    f.write(_lines(0, 10))
    f.flush()
    assert wait(lambda: len(_read(path)) == 10)
    disk.full.set()
    f.write(_lines(10, 40))
    f.flush()
    assert wait(lambda: disk.refused >= 1)
    t0 = time.monotonic()
    f.drain()
    assert time.monotonic() - t0 < 2.0
    assert f.lost_lines == 40                       # lost to this writer: counted ...
    vl = VerdictLog(str(tmp_path / "other.jsonl"))  # ... as /metrics reads every writer's losses
    vl.retired.append(f)
    assert vl.lost_lines == 40
    vl.close()
    assert len(list(tmp_path.glob(".verdicts.jsonl.spool.*"))) == 1     # but kept in its spool
    disk.full.clear()
    g = FileOut(str(path), spool=True)              # the next start (or reopen) appends them
    try:
        assert g.recovered == 40
        assert _read(path) == list(range(50))
    finally:
        g.drain()


def test_past_the_buffer_bound_a_line_is_refused_naming_the_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(FileOut, "RETRY_S", 30.0)
    monkeypatch.setattr(FileOut, "MAX", 4096)
    disk = _Disk(monkeypatch)
    disk.full.set()
    f = FileOut(str(tmp_path / "verdicts.jsonl"))
    try:
        f.write(_lines(0, 20))
        f.flush()
        assert wait(lambda: disk.refused >= 1)
        try:
            f.write(_lines(20, 80))                 # more than the bound holds besides what is held
        except OSError as e:
            assert "disk is not taking its lines" in str(e)
        else:
            raise AssertionError("a line past the bound was taken")
    finally:
        f.drain()


def test_a_start_with_no_room_for_its_own_spool_still_appends_a_dead_writers(tmp_path, monkeypatch):
    """The probe's next start on the small disk: the stop's spool (8 MiB) left no room for the new writer's own, and
    a writer without a spool did not recover the dead one: its 299 lines stayed in it, taking the room that the new
    spool needed, start after start. Now the dead spool is appended (and deleted) all the same, then the writer's
    own spool is made again."""
    from tests.test_verdictlog_spool import _dead_spool
    path = tmp_path / "v.jsonl"
    _dead_spool(path, [b'{"n": 0}\n', b'{"n": 1}\n', b'{"n": 2}\n'], written=1)
    path.write_bytes(b'{"n": 0}\n')
    made, real = [], logwriters.Spool

    def spool(p):
        made.append(p)
        if len(made) == 1:                          # the dead spool still takes the room
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(p)
    monkeypatch.setattr(logwriters, "Spool", spool)
    f = FileOut(str(path), spool=True)
    try:
        assert f.recovered == 2 and _read(path) == [0, 1, 2]
        assert f.spool is not None                  # made once the dead one was gone
        assert len(list(tmp_path.glob(".v.jsonl.spool.*"))) == 1
    finally:
        f.drain()


def _rotated_while_full(tmp_path, monkeypatch, retry_s, retire_s, before=0):
    """A verdict log with `before` lines written, then 10 more the full disk refused, renamed to verdicts.jsonl.1 and
    reopened (logrotate, SIGUSR2) while the disk is still full: (the VerdictLog, its old writer, the disk, the path)."""
    from engine.servicelog import reopen_verdict_log
    monkeypatch.setattr(FileOut, "RETRY_S", retry_s)
    monkeypatch.setattr(FileOut, "RETIRE_S", retire_s)
    disk = _Disk(monkeypatch)
    path = tmp_path / "verdicts.jsonl"
    vl = VerdictLog(str(path))
    old = vl.f
    if before:
        vl.f.write(_lines(0, before))
        vl.flush()
        assert wait(lambda: len(_read(path)) == before)
    disk.full.set()
    vl.f.write(_lines(before, 10))
    vl.flush()
    assert wait(lambda: disk.refused >= 1)
    path.rename(tmp_path / "verdicts.jsonl.1")
    assert reopen_verdict_log(vl, str(path))
    return vl, old, disk, path


def test_a_writer_reopened_away_from_on_a_full_disk_keeps_trying_for_a_while(tmp_path, monkeypatch):
    """logrotate's SIGUSR2 while the disk is full (its compression wants room too): the old writer was let go at
    its next failed try, its held lines left in its spool until the next start. Now it keeps trying for RETIRE_S,
    and the lines judged before the rotation land in the rotated file once the disk has room."""
    vl, old, disk, path = _rotated_while_full(tmp_path, monkeypatch, 0.05, 30.0, before=10)
    n = disk.refused
    assert wait(lambda: disk.refused >= n + 3)      # still trying
    disk.full.clear()
    assert wait(lambda: _read(tmp_path / "verdicts.jsonl.1") == list(range(20)))
    vl.f.write(_lines(20, 5))
    vl.close()
    assert _read(path) == list(range(20, 25)) and old.lost_lines == 0 and vl.lost_lines == 0


def test_a_stop_gives_up_what_a_writer_reopened_away_from_holds(tmp_path, monkeypatch):
    vl, _, _, _ = _rotated_while_full(tmp_path, monkeypatch, 30.0, 30.0)
    t0 = time.monotonic()
    vl.close()
    assert time.monotonic() - t0 < 2.0 and vl.lost_lines == 10


def test_a_writer_reopened_away_from_gives_up_after_retire_s_and_its_spool_keeps_the_lines(tmp_path, monkeypatch):
    """The rotated file's disk stays full (or is gone for good): the old writer stops trying after RETIRE_S (a node
    whose log moved on is not kept 503 for ever), and the next writer of the log appends what it held."""
    vl, old, disk, path = _rotated_while_full(tmp_path, monkeypatch, 0.05, 0.3)
    assert wait(lambda: not old.thread.is_alive()) and old.lost_lines == 10
    disk.full.clear()
    vl.close()
    g = FileOut(str(path), spool=True)              # the next start
    try:
        assert g.recovered == 10 and _read(path) == list(range(10))
    finally:
        g.drain()


def test_lines_that_come_while_a_stops_last_write_fails_are_counted_lost_too(tmp_path, monkeypatch):
    """At a stop the writer gives up what the disk refuses: the lines the loop added while that last write was
    failing are dropped with it, and counted with it (they were dropped uncounted: the metric said fewer lost than
    the log missed)."""
    monkeypatch.setattr(FileOut, "RETRY_S", 30.0, raising=False)
    disk = _Disk(monkeypatch)
    path = tmp_path / "verdicts.jsonl"
    f = FileOut(str(path), spool=True)
    disk.full.set()
    f.write(_lines(0, 5))
    f.flush()
    assert wait(lambda: disk.refused == 1)          # held, tried again in 30 s or at the stop
    refuse = disk.write

    def judged_meanwhile(fd, data):
        if disk.refused == 1:
            with f.cv:
                f.buf += _lines(100, 3).encode()    # as write() appends them, under the lock
        return refuse(fd, data)
    monkeypatch.setattr(logwriters.os, "write", judged_meanwhile)
    f.drain()                                       # the stop: the held lines tried once more, refused, given up
    assert disk.refused == 2 and f.lost_lines == 5 + 3


def _reopened_with_lines_waiting(tmp_path, monkeypatch, refuse):
    """A verdict log reopened (SIGUSR2) while its old writer holds lines not yet written, its retire not yet started
    (the thread that runs it not yet scheduled): (the VerdictLog, the old writer, the release of the retire, the
    writes refused). `refuse(fd, old, new)`: whether the disk refuses a write to `fd`."""
    from engine.servicelog import reopen_verdict_log
    monkeypatch.setattr(FileOut, "RETRY_S", 30.0)
    go, refused, real = threading.Event(), [], os.write
    retire = FileOut.retire
    monkeypatch.setattr(FileOut, "retire", lambda self: (go.wait(10), retire(self)))
    path = tmp_path / "verdicts.jsonl"
    vl = VerdictLog(str(path))
    old = vl.f
    old.write(_lines(0, 3))                         # judged before the swap; its writer not woken yet
    path.rename(tmp_path / "verdicts.jsonl.1")
    new = FileOut(str(path))                        # (opened off the loop, then swapped in)

    def write(fd, data):
        if refuse(fd, old, new):
            refused.append(fd)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)
    monkeypatch.setattr(logwriters.os, "write", write)
    assert reopen_verdict_log(vl, str(path), opened=new) and vl.f is new
    return vl, old, go, refused


def test_a_failure_of_the_writer_reopened_away_from_is_not_the_logs(tmp_path, monkeypatch):
    """Between the reopen (DiskTrouble.fresh) and its retire, the old writer's failed write set `failing` again:
    /healthz 503 (and the disk trouble said) for a rotated file, though the log in use wrote every line."""
    vl, old, go, refused = _reopened_with_lines_waiting(tmp_path, monkeypatch, lambda fd, old, new: fd == old.fd)
    t = trouble("verdict_log")
    try:
        old.flush()                                  # its write fails before the retire marks it closing
        assert wait(lambda: refused)
        time.sleep(0.05)
        vl.f.write(_lines(3, 2))
        vl.flush()
        assert wait(lambda: _read(tmp_path / "verdicts.jsonl") == [3, 4])
        assert not t.failing and not t.troubled() and t.errors == 0, (t.failing, t.errors)
    finally:
        go.set()
        vl.close()


def test_a_write_that_works_on_the_file_reopened_away_from_does_not_end_the_new_files_trouble(tmp_path, monkeypatch):
    vl, old, go, refused = _reopened_with_lines_waiting(tmp_path, monkeypatch, lambda fd, old, new: fd == new.fd)
    t = trouble("verdict_log")
    try:
        vl.f.write(_lines(3, 2))
        vl.flush()
        assert wait(lambda: refused) and wait(lambda: t.failing)
        old.flush()                                  # the rotated file takes the old writer's lines
        assert wait(lambda: _read(tmp_path / "verdicts.jsonl.1") == [0, 1, 2])
        time.sleep(0.05)
        assert t.failing and t.troubled()
    finally:
        go.set()
        vl.close()
