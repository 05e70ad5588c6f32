"""The verdict log on a pipe whose reader stops, or a file on a disk that stalls: writing never blocks
(the event loop, and every message with it, would stall); what is not written yet waits in a bounded
buffer, a line beyond it is counted as a write error; whole lines reach the reader once it reads again."""
import json
import os
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from engine.logwriters import PipeOut
from engine.verdictlog import VerdictLog


def test_a_stalled_pipe_reader_never_blocks_the_writer(monkeypatch):
    r, w = os.pipe()
    out = os.fdopen(w, "w")
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(PipeOut, "MAX", 1 << 20)
    log = VerdictLog("-")
    assert isinstance(log.f, PipeOut)
    when = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
    t0 = time.monotonic()
    n = 30000                                        # ~4 MB: far more than the pipe and the buffer hold
    for i in range(n):
        log.write_refusal(when, "SubmitSm", "esme1", "84901234567", f"849123{i:05d}", 0x58, "test line")
        if i % 1000 == 0:
            log.flush()
    assert time.monotonic() - t0 < 10                # it did not wait for a reader
    assert os.get_blocking(w)                        # the descriptor (shared with stderr, other processes) untouched
    assert log.errors > 0                            # the lines over the buffer were counted, not hidden
    got = []
    reader = threading.Thread(target=lambda: got.append(b"".join(iter(lambda: os.read(r, 1 << 16), b""))))
    reader.start()
    log.close()
    out.close()
    reader.join(10)
    lines = got[0].decode().splitlines()
    assert len(lines) + log.errors == n
    assert all(x.startswith('{"ts"') and x.endswith("}") for x in lines)     # whole lines only
    os.close(r)


def test_a_pipe_someone_else_set_non_blocking_still_gets_every_line(monkeypatch):
    r, w = os.pipe()
    os.set_blocking(w, False)                    # another process on the same pipe did this
    out = os.fdopen(w, "w")
    monkeypatch.setattr(sys, "stdout", out)
    log = VerdictLog("-")
    when = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
    got = []
    reader = threading.Thread(target=lambda: got.append(b"".join(iter(lambda: os.read(r, 1 << 16), b""))))
    for i in range(3000):                        # ~400 KB: more than the pipe holds at once
        log.write_refusal(when, "SubmitSm", "esme1", "84901234567", f"849123{i:05d}", 0x58, "test line")
    log.flush()
    time.sleep(0.2)
    reader.start()
    log.close()
    with pytest.raises(OSError):                 # after close: an error (counted), never a silent loss
        log.f.write("x\n")
    out.close()
    reader.join(10)
    assert len(got[0].decode().splitlines()) == 3000 and log.errors == 0
    os.close(r)


def test_a_stalled_disk_never_blocks_the_writer_and_loses_no_line(tmp_path, monkeypatch):
    """A regular file (`--log FILE`) whose writes block for a while (dirty-page throttling, a slow
    disk): verdicts keep being written at once; every line reaches the file once the disk moves."""
    from engine.logwriters import FileOut
    gate = threading.Event()
    real_write = os.write

    def slow_write(fd, data):
        if threading.current_thread().name == "verdict-log":
            gate.wait(10)                            # the disk is stuck until the test lets it go
        return real_write(fd, data)
    monkeypatch.setattr(os, "write", slow_write)
    path = tmp_path / "verdicts.jsonl"
    log = VerdictLog(str(path))
    assert isinstance(log.f, FileOut)
    when = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
    t0 = time.monotonic()
    n = 20000
    for i in range(n):
        log.write_refusal(when, "SubmitSm", "esme1", "84901234567", f"849123{i:05d}", 0x58, "test line")
        if i % 1000 == 0:
            log.flush()
    assert time.monotonic() - t0 < 5 and not gate.is_set()      # never waited for the disk
    gate.set()
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == n and log.errors == 0


def test_a_full_disk_holds_the_lines_of_that_moment_and_the_log_goes_on(tmp_path, monkeypatch):
    """One ENOSPC: the lines of that write are held and written with the next ones when the disk has room
    again (a review found one failed write stopped `--log FILE` for good; they were lost until the ops probe)."""
    import errno

    import engine.logwriters as vl
    path = str(tmp_path / "v.log")
    v = VerdictLog(path)
    real, n = os.write, [0]

    def once_full(fd, b):
        n[0] += 1
        if n[0] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, b)
    monkeypatch.setattr(vl.os, "write", once_full)
    v.write({"n": 1})
    v.flush()
    time.sleep(0.2)
    for i in range(2, 5):                   # the disk has room again
        v.write({"n": i})
        v.flush()
        time.sleep(0.05)
    v.close()
    text = open(path).read()
    assert [json.loads(x)["n"] for x in text.splitlines()] == [1, 2, 3, 4] and v.f.lost_bytes == 0, text


def test_a_reopened_file_on_a_stalled_disk_is_closed_once_its_writer_is_done(tmp_path):
    """A FIFO stands for a stalled disk: the old writer is still in write(2) when drain times out; when the
    write completes later, the writer closes its descriptor (a review found it leaked one per SIGUSR2)."""
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    from engine.logwriters import FileOut
    old = FileOut(path)
    old.write("x" * (1 << 20) + "\n")      # more than the pipe holds: the writer blocks
    old.flush()
    time.sleep(0.2)
    old.drain(0.2)
    assert old.thread.is_alive()
    while True:                              # the "disk" recovers
        try:
            if not os.read(rfd, 1 << 16):
                break
        except BlockingIOError:
            if not old.thread.is_alive():
                break
            time.sleep(0.01)
    old.thread.join(2)
    assert not old.thread.is_alive()
    try:
        os.fstat(old.fd)
        leaked = True
    except OSError:
        leaked = False
    os.close(rfd)
    assert not leaked, f"fd {old.fd} of the old verdict log is never closed"


def test_a_stop_right_after_a_reopen_writes_the_old_files_lines(tmp_path, monkeypatch):
    """close() drains the writers of files reopened away from, not only the current one."""
    import engine.logwriters as vl
    from engine.servicelog import reopen_verdict_log
    path = str(tmp_path / "v.log")
    v = VerdictLog(path)
    old = v.f
    real = os.write
    def slow(fd, b):
        if fd == old.fd:
            time.sleep(0.5)
        return real(fd, b)
    monkeypatch.setattr(vl.os, "write", slow)
    v.f.write("old-line\n")
    os.rename(path, path + ".1")
    reopen_verdict_log(v, path)
    v.close()                                # stop: returns at once, old still pending
    pending = old.thread.is_alive()
    assert not pending, "close() returned while the old file's lines were still unwritten (daemon thread)"
    assert (tmp_path / "v.log.1").read_text() == "old-line\n"


def test_a_pipe_whose_reader_is_gone_is_the_verdict_logs_trouble_and_drains_the_node():
    """stdout to a log shipper that died: every verdict line from then on is lost (EPIPE; stdout cannot be opened
    again). Counted before, but /healthz stayed 200 and telfilter_disk_failing empty: the node took traffic it
    could no longer log."""
    from engine.disktrouble import trouble
    from engine.metrics import Metrics
    r, w = os.pipe()
    os.close(r)
    out = PipeOut(w)
    try:
        out.write("a verdict line\n")
        out.flush()
        out.thread.join(5)
        assert not out.thread.is_alive() and out.failed
        assert trouble("verdict_log").failing
        ok, why = Metrics(None).health()
        assert not ok and "disk writes failing: verdict_log" in why, why
    finally:
        os.close(w)


def test_sigusr2s_reopen_opens_the_new_file_off_the_loop(tmp_path, monkeypatch):
    """Opening the new file makes its crash spool (an 8 MiB ring allocated whole: ~10 ms on a loaded host) and
    appends a dead writer's lines (up to ~20,000): SIGUSR2's handler ran all of it on the event loop, a stall of
    every message and call at each rotation. Now a worker thread opens it and the loop only swaps it in."""
    import asyncio

    import engine.servicelog as sl
    path = str(tmp_path / "v.log")
    v = VerdictLog(path)
    v.f.write("before\n")
    os.rename(path, path + ".1")
    real, seen = sl.open_verdict_file, []

    def slow(p):
        seen.append(threading.current_thread() is threading.main_thread())
        time.sleep(0.3)
        return real(p)
    monkeypatch.setattr(sl, "open_verdict_file", slow)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        t = asyncio.ensure_future(ticker())
        assert await sl.reopen_verdict_log_soon(v, path)
        t.cancel()
        return ticks
    ticks = asyncio.run(main())
    assert seen == [False], "the new file was opened on the loop's thread"
    assert ticks >= 10, f"the loop ran {ticks} times in the 0.3 s the open took"
    v.f.write("after\n")
    v.close()
    assert (tmp_path / "v.log.1").read_text() == "before\n"
    assert (tmp_path / "v.log").read_text() == "after\n"
    assert not [n for n in os.listdir(tmp_path) if ".spool." in n], "a clean stop leaves no spool"


def test_a_reopen_whose_file_comes_after_the_stop_closes_it(tmp_path):
    """The open runs in a thread: when the stop closed the log meanwhile, the new file is not swapped in (nothing
    would write or close it: its spool would be left for the next start to recover)."""
    from engine.servicelog import open_verdict_file, reopen_verdict_log
    path = str(tmp_path / "v.log")
    v = VerdictLog(path)
    first = v.f
    late = open_verdict_file(path)
    v.close()
    assert reopen_verdict_log(v, path, late) is False and v.f is first
    assert not late.thread.is_alive()
    assert not [n for n in os.listdir(tmp_path) if ".spool." in n]


def test_a_reopen_the_stop_cancels_closes_the_file_it_was_opening(tmp_path, monkeypatch):
    """A SIGUSR2 just before serve's end: asyncio.run cancels the reopen still awaiting its thread (`run_serve` has
    returned), the thread finishes opening anyway, and nothing closed what it opened: its writer thread outlived the
    stop and its crash spool (8 MiB) was left beside the log (serve with a SIGUSR2 every 0.5 ms through the stop left
    26-240 of them a run). The thread closes it itself once nobody will take it."""
    import asyncio

    import engine.servicelog as sl
    path = str(tmp_path / "v.log")
    v = VerdictLog(path)
    real = sl.open_verdict_file

    def slow(p):
        time.sleep(0.3)
        return real(p)
    monkeypatch.setattr(sl, "open_verdict_file", slow)
    before = set(threading.enumerate())

    async def main():
        main.reopen = asyncio.ensure_future(sl.reopen_verdict_log_soon(v, path))
        await asyncio.sleep(0.05)                    # its thread is opening the file
        v.close()                                    # the stop; returning, asyncio.run cancels the reopen
    asyncio.run(main())
    assert main.reopen.cancelled()
    assert not [n for n in os.listdir(tmp_path) if ".spool." in n], "the reopen's crash spool was left behind"
    assert not [t for t in threading.enumerate() if t not in before and t.name == "verdict-log" and t.is_alive()]


def test_a_burst_of_sigusr2_opens_the_new_file_twice_not_once_each(tmp_path, monkeypatch):
    """Each SIGUSR2 queued an open of its own in the executor (a file and an 8 MiB crash spool each; a stop waited for
    every one: a SIGUSR2 every 2 ms through a `--workers 2` stop outlasted the supervisor's 25 s for its workers), and
    concurrent opens could swap an older file in after a newer one. One reopen at a time, and one more after it for
    the signals that came meanwhile (the file may have been renamed since the first was opened)."""
    import asyncio

    import engine.servicelog as sl
    path = str(tmp_path / "v.log")
    v = VerdictLog(path)
    real, opened = sl.open_verdict_file, []

    def slow(p):
        opened.append(p)
        time.sleep(0.2)
        return real(p)
    monkeypatch.setattr(sl, "open_verdict_file", slow)

    async def main():
        burst = [asyncio.ensure_future(sl.reopen_verdict_log_soon(v, path))]
        await asyncio.sleep(0.05)                    # the first is opening; a rename, then a burst of nine
        os.rename(path, path + ".1")
        burst += [asyncio.ensure_future(sl.reopen_verdict_log_soon(v, path)) for _ in range(9)]
        await asyncio.gather(*burst)
    asyncio.run(main())
    assert len(opened) == 2, f"{len(opened)} opens for 10 SIGUSR2"
    v.f.write("after\n")
    v.close()
    assert (tmp_path / "v.log").read_text() == "after\n"
    assert not [n for n in os.listdir(tmp_path) if ".spool." in n]
