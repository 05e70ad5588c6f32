"""The verdict log's crash spool (engine/crashspool.py): a line is in a memory-mapped spool beside the log
as soon as it is written, so `serve` killed (SIGKILL) right after answering a burst loses no verdict line: the next
start appends what its writer had not written. Before, the lines of the last 0.05 s (a whole burst) were lost:
300 submits answered, then kill -9, left 50 lines."""
import json
import os
import threading

from engine import crashspool as logspool
from engine.crashspool import Spool, recover
from engine.logwriters import FileOut
from tests.test_smpp_receipts import Esme, ServeBeside, _submitted


def _sms_lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if '"kind": "sms"' in x]


def test_serve_killed_after_answering_a_burst_loses_no_verdict_line(tmp_path):
    run = ServeBeside(tmp_path)
    try:
        p, h = run.start(1)
        e = Esme(h)
        e.submit(300)
        _submitted(e, 300)                          # every one answered ...
        p.kill()                                    # ... then SIGKILL: no drain, no last flush
        p.wait(10)
        assert list(tmp_path.glob(".v.log.spool.*"))    # the dead writer's spool is left
        before = len(_sms_lines(tmp_path / "v.log"))    # (nearly always a few: the last 0.05 s was the burst)
        run.start(2)                                # the next writer of the log appends what it held
        assert len(_sms_lines(tmp_path / "v.log")) == 300
        if before < 300:
            assert f"{300 - before} lines a writer that stopped without writing them" in \
                (tmp_path / "err2.log").read_text()
        assert len(list(tmp_path.glob(".v.log.spool.*"))) == 1          # only the live writer's own
    finally:
        run.close()


def test_a_clean_close_leaves_no_spool_and_a_live_writers_spool_is_not_taken(tmp_path):
    path = tmp_path / "v.jsonl"
    a = FileOut(path, spool=True)
    a.write('{"n": 1}\n')
    b = FileOut(path, spool=True)                   # a second writer (another worker, a reopen): a's is live
    assert b.recovered == 0
    b.write('{"n": 2}\n')
    for w in (a, b):
        w.flush()
        w.drain()
    assert sorted(path.read_text().splitlines()) == ['{"n": 1}', '{"n": 2}']
    assert not list(tmp_path.glob(".v.jsonl.spool.*"))


def _dead_spool(path, lines, written, cap=64):
    """A spool as a writer killed after writing `written` of `lines` to the log leaves it."""
    s = Spool(path, capacity=cap)
    for x in lines:
        s.append(x)
    s.wrote(sum(len(x) for x in lines[:written]))
    s.head.release()
    s.ring.release()
    s.mm.close()
    os.close(s.fd)                                  # dead: its lock released, the file left
    return s.path


def test_recovery_gives_the_unwritten_lines_once(tmp_path):
    path = tmp_path / "v.jsonl"
    _dead_spool(path, [b"a1\n", b"a2\n", b"a3\n"], written=1)
    got = []
    assert recover(path, got.append) == 2 and got == [b"a2\na3\n"]
    assert recover(path, got.append) == 0 and not list(tmp_path.glob(".v.jsonl.spool.*"))


def _killed_after_a_write(path, lines, wrote, reached=None, cap=4096):
    """A spool as a writer leaves it killed after its write of `lines[wrote:]` (noted: `Spool.writing`) put
    `reached` bytes of it in the log (all when None), before its `written` mark: its thread waited for the GIL."""
    s = Spool(path, capacity=cap)
    for x in lines:
        s.append(x)
    before = b"".join(lines[:wrote])
    with open(path, "ab") as f:
        f.write(before)
    s.wrote(len(before))
    chunk = b"".join(lines[wrote:])
    st = os.stat(path)
    s.writing(st.st_size, st.st_ino, len(chunk))
    with open(path, "ab") as f:
        f.write(chunk if reached is None else chunk[:reached])
    s.head.release()
    s.ring.release()
    s.mm.close()
    os.close(s.fd)
    return s.path


def test_a_write_that_reached_the_log_before_the_kill_is_not_appended_again(tmp_path):
    # the landing CI's failure: serve killed with a write in the log but not yet marked (its thread waiting for the
    # GIL): 333 lines for 300 answers
    path = tmp_path / "v.jsonl"
    lines = [b'{"n": %d}\n' % i for i in range(6)]
    _killed_after_a_write(path, lines, wrote=2)
    got = []
    assert recover(path, got.append) == 0 and got == []
    assert path.read_bytes() == b"".join(lines)
    assert not list(tmp_path.glob(".v.jsonl.spool.*"))


def test_a_write_cut_short_by_the_kill_gives_the_lines_it_did_not_finish(tmp_path):
    path = tmp_path / "v.jsonl"
    lines = [b'{"n": %d}\n' % i for i in range(6)]
    _killed_after_a_write(path, lines, wrote=2, reached=len(lines[2]) + 3)     # line 2, and 3 bytes of line 3
    got = []
    assert recover(path, got.append) == 3 and got == [b"".join(lines[3:])]


def test_the_line_a_kill_cut_short_is_not_glued_to_its_recovered_copy(tmp_path):
    # the write stopped 3 bytes into line 3: the recovery appends line 3 whole, after the log's torn end is ended
    # (before: '{"n{"n": 3}', a bad line, and line 3 was nowhere whole; at least once, it had been line 2's copy)
    path = tmp_path / "v.jsonl"
    lines = [b'{"n": %d}\n' % i for i in range(6)]
    _killed_after_a_write(path, lines, wrote=2, reached=len(lines[2]) + 3)
    w = FileOut(path, spool=True)
    assert w.recovered == 3
    w.flush()
    w.drain()
    got = path.read_bytes().splitlines(keepends=True)
    assert [x for x in got if x in lines] == lines and got[3] == b'{"n\n'     # the torn end: one bad line


def test_a_write_to_a_log_renamed_since_is_appended_again(tmp_path):
    # not checkable (logrotate renamed the log, a new one was made): at least once, never lost
    path = tmp_path / "v.jsonl"
    lines = [b'{"n": %d}\n' % i for i in range(4)]
    _killed_after_a_write(path, lines, wrote=1)
    os.rename(path, tmp_path / "v.jsonl.1")
    path.write_bytes(b"")
    got = []
    assert recover(path, got.append) == 3 and got == [b"".join(lines[1:])]


def test_a_recovery_killed_during_its_append_is_not_repeated(tmp_path):
    path = tmp_path / "v.jsonl"
    lines = [b'{"n": %d}\n' % i for i in range(5)]
    _dead_spool(path, lines, written=0, cap=4096)

    def append_then_die(data, note):            # as FileOut._append_now, killed before the spool is marked
        with open(path, "ab") as f:
            st = os.fstat(f.fileno())
            note(st.st_size, st.st_ino)
            f.write(data)
        raise OSError("killed")
    assert recover(path, append_then_die, notes=True) == 0
    assert list(tmp_path.glob(".v.jsonl.spool.*"))              # left: the next start reads it
    got = []
    assert recover(path, lambda data, note: got.append(data), notes=True) == 0 and got == []
    assert path.read_bytes() == b"".join(lines) and not list(tmp_path.glob(".v.jsonl.spool.*"))


def test_a_spool_of_the_version_before_is_recovered(tmp_path):
    # TFSPOOL1 (a 32-byte header): left by the version before an upgrade, read by this one
    import struct
    path = tmp_path / "v.jsonl"
    ring = bytearray(64)
    ring[:9] = b'{"n": 1}\n'
    ring[9:18] = b'{"n": 2}\n'
    (tmp_path / ".v.jsonl.spool.7.ab").write_bytes(struct.pack("=8sQQQ", b"TFSPOOL1", 64, 18, 9) + ring)
    got = []
    assert recover(path, got.append) == 1 and got == [b'{"n": 2}\n']


def test_a_spool_of_binary_records_keeps_the_header_of_the_version_before(tmp_path):
    # the id log's and the state journal's (overwrite=False) note nothing: TFSPOOL1, so that going back a version
    # after a crash recovers them (that version deleted a TFSPOOL2 spool, "not a spool this version writes")
    import struct
    path = tmp_path / "ids.log"
    s = Spool(path, capacity=64, overwrite=False)
    assert s.append(b"\x01\x02rec")
    p = s.path
    s.head.release()
    s.ring.release()
    s.mm.close()
    os.close(s.fd)                                  # killed
    raw = p.read_bytes()
    assert struct.unpack_from("=8sQQQ", raw) == (b"TFSPOOL1", 64, 5, 0) and len(raw) == 32 + 64
    got, taken = [], []
    assert recover(path, got.append, taken=taken) == 0 and got == [b"\x01\x02rec"] and taken == [p]


def test_a_ring_that_went_round_over_unwritten_lines_gives_its_whole_lines(tmp_path):
    path = tmp_path / "v.jsonl"
    lines = [b"line-%02d\n" % i for i in range(20)]           # 8 bytes each, 160 in a ring of 64
    _dead_spool(path, lines, written=0, cap=64)
    got = []
    assert recover(path, got.append) == 7
    # the newest lines, each whole: the oldest byte kept may begin a line or end one (not known), so the text up to
    # the first line end is left out
    assert got == [b"".join(lines[13:])]


def test_a_line_cut_by_the_ring_end_is_dropped_not_glued(tmp_path):
    path = tmp_path / "v.jsonl"
    lines = [b"x" * 30 + b"\n", b"y" * 20 + b"\n", b"z" * 20 + b"\n"]    # 31 + 21 + 21 = 73 > 64
    _dead_spool(path, lines, written=0, cap=64)
    got = []
    assert recover(path, got.append) == 2 and got == [lines[1] + lines[2]]


def test_a_file_that_is_not_a_spool_is_not_appended(tmp_path):
    path = tmp_path / "v.jsonl"
    (tmp_path / ".v.jsonl.spool.1.x").write_bytes(b"not a spool at all, just some bytes here and more\n")
    got = []
    assert recover(path, got.append) == 0 and got == []


def test_writer_thread_marks_what_it_wrote(tmp_path, monkeypatch):
    monkeypatch.setattr(logspool, "CAPACITY", 4096)
    path = tmp_path / "v.jsonl"
    f = FileOut(path, spool=True)
    for i in range(100):
        f.write('{"i": %d}\n' % i)
    f.flush()
    done = threading.Event()

    def check():
        import time
        end = time.monotonic() + 10
        while time.monotonic() < end and f.spool.written < f.spool.end:
            time.sleep(0.01)
        done.set()
    threading.Thread(target=check).start()
    assert done.wait(15) and f.spool.written == f.spool.end == path.stat().st_size
    f.drain()


def test_a_log_that_is_not_a_regular_file_gets_no_spool(tmp_path):
    fifo = tmp_path / "v.fifo"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)      # a reader, so the writer's open does not wait
    try:
        f = FileOut(fifo, spool=True)
        assert f.spool is None and not list(tmp_path.glob(".v.fifo.spool.*"))
        f.write('{"n": 1}\n')
        f.flush()
        f.drain()
    finally:
        os.close(r)


def test_a_spool_being_made_is_not_taken_for_a_dead_writers(tmp_path, monkeypatch, caplog):
    # another writer of the log (serve --workers N: the workers start together) recovers between this writer's
    # making its spool and locking it. Found by review57: it took the empty file for a spool of another
    # version, deleted it, and this writer's lines went to a file with no name
    path = tmp_path / "v.jsonl"
    flock, raced = logspool.fcntl.flock, []

    def racing(fd, op):                             # this writer's first lock: the other recovers first
        if not raced:
            raced.append(None)
            raced[0] = recover(path, lambda data: None)
        return flock(fd, op)
    monkeypatch.setattr(logspool.fcntl, "flock", racing)
    s = Spool(path, capacity=64)
    monkeypatch.setattr(logspool.fcntl, "flock", flock)
    assert raced == [0] and "not a spool" not in caplog.text
    assert s.path.exists() and os.path.samestat(os.stat(s.path), os.fstat(s.fd))
    s.append(b'{"n": 1}\n')
    s.head.release()
    s.ring.release()
    s.mm.close()
    os.close(s.fd)                                  # killed: the next writer appends its line
    assert recover(path, lambda data: None) == 1


def test_a_reopen_that_cannot_create_the_file_says_so_and_nothing_about_a_spool(tmp_path, caplog):
    """The log's directory gone (or read-only) at a SIGUSR2: the crash spool, made first, failed too, and its warning
    ("no crash spool beside it: lines not yet written when the process dies are lost") came before the reopen's
    error although the old file, spooled, went on being written. Only the reopen's error is said."""
    import logging
    import shutil

    from engine.servicelog import reopen_verdict_log
    from engine.verdictlog import VerdictLog
    d = tmp_path / "logs"
    d.mkdir()
    v = VerdictLog(str(d / "v.log"))
    first = v.f
    os.rename(d / "v.log", tmp_path / "v.log.1")
    shutil.rmtree(d)                    # (the old writer's spool with it)
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        assert reopen_verdict_log(v, str(d / "v.log")) is False
    said = [r.getMessage() for r in caplog.records]
    assert v.f is first and len(said) == 1 and said[0].startswith("verdict log not reopened, still writing"), said
    v.write({"n": 1})
    v.close()
    assert (tmp_path / "v.log.1").read_text().count("\n") == 1
