"""Snapshots of the embedded state store (engine/state): encoded as msgpack without copying the tables,
and written by a forked writer that neither loses nor doubles what is committed while it writes; a crash while
it runs keeps everything and frees the data dir; `serve` takes forked snapshots under traffic and restores from
them, a stop during the timer's forked snapshot loses nothing and does not wait for it, and the forked writer
dies with a killed `serve`."""
import asyncio
import os
import signal
import subprocess
import sys
import time

from engine.state import StateError
from engine.state.embedded import EmbeddedStore

from .conftest import ROOT
from .test_serve import wait_for
from .durable_helpers import _Node, _crash, _submit_ad


def test_snapshot_encoding_is_msgpack_and_never_copies_the_tables(tmp_path):
    """write_snapshot streams large values from their own buffers: the file is exactly the msgpack
    encoding (read back by any msgpack reader), and writing 16 MB of tables allocates far less
    than 16 MB more (the packed payload used to be a second copy of every table)."""
    import tracemalloc

    import msgpack

    from engine.state.journal import BIG, SNAP_MAGIC, encode_parts, read_snapshot, write_snapshot
    big = os.urandom(16 << 20)
    objs = [{"next_segment": 3, "written": 1.5, "state": {"t": [big, bytearray(BIG), memoryview(b"x" * (BIG - 1)),
                                                               "s" * 70_000, None, True, -7, {5: b""}]}},
            [], {}, b"", [b"q" * BIG, [b"w" * 10, (1, 2)]]]
    for obj in objs:
        assert b"".join(bytes(p) for p in encode_parts(obj)) == msgpack.packb(obj, use_bin_type=True)
    path = tmp_path / "snapshot"
    tracemalloc.start()
    try:
        write_snapshot(path, objs[0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, peak
    body = path.read_bytes()[len(SNAP_MAGIC) + 8:]
    assert msgpack.unpackb(body, raw=False, strict_map_key=False) == read_snapshot(path)
    assert read_snapshot(path)["state"]["t"][0] == big


def _slow_writer(monkeypatch, seconds):
    """The forked writer sleeps first (the child inherits the patch): the parent carries on meanwhile."""

    from engine.state import embedded
    real, parent = embedded.write_snapshot_tmp, os.getpid()

    def slow(tmp, obj):
        if os.getpid() != parent:               # only in a forked writer (a clean stop writes at once)
            time.sleep(seconds)
        real(tmp, obj)
    monkeypatch.setattr(embedded, "write_snapshot_tmp", slow)


NS, W, LIM = "AD_FREQUENCY_CAP|owner+recipient|24h|None", 86400.0, 1000


KEY = ("o:shop", 84912000001)


TS = 1_790_000_000


def test_forked_snapshot_neither_loses_nor_doubles_what_is_committed_while_it_is_written(tmp_path, monkeypatch):
    """The timer's snapshot is written by a forked child; commits made and flushed while it writes
    go to the next segment, so a crash after it is installed (or before) restores exact counts."""
    _slow_writer(monkeypatch, 2.0)

    async def main():
        s = EmbeddedStore(tmp_path)
        for i in range(5):
            s.counters.add(NS, KEY, TS + i, W, LIM)
        await s.snapshot()                      # returns once the fork is made and the tail written
        assert s._finishing is not None and not s._finishing.done() and not s.due()
        for i in range(5, 8):
            s.counters.add(NS, KEY, TS + i, W, LIM)
        await s.flush()                         # not held up by the snapshot being written
        assert not s._finishing.done() and s.flushes == 1
        await s.settled()
        assert s.write_errors == 0 and (tmp_path / "state" / "snapshot").exists()
        s.counters.add(NS, KEY, TS + 9, W, LIM)
        await s.flush()
        _crash(s)
        s2 = EmbeddedStore(tmp_path)
        assert not s2.warnings and s2.replayed == 4     # the 3 during the write + 1 after, not the 5 before
        n = s2.counters.count(NS, KEY, TS + 10, W, LIM)
        await s2.close()
        s3 = EmbeddedStore(tmp_path)
        return n, s3.counters.count(NS, KEY, TS + 10, W, LIM), s3.replayed
    assert asyncio.run(main()) == (9, 9, 0)


def test_a_crash_while_the_forked_writer_runs_keeps_everything_and_frees_the_data_dir(tmp_path, monkeypatch):
    """The parent dies (kill -9) while its writer still runs: the data dir can be opened at once (the
    writer holds no copy of the state lock), its half-done file is never installed, and the
    previous snapshot with the journal restores every flushed commit."""
    _slow_writer(monkeypatch, 4.0)

    async def main():
        s = EmbeddedStore(tmp_path)
        for i in range(4):
            s.counters.add(NS, KEY, TS + i, W, LIM)
        await s.snapshot(fork=False)
        s.counters.add(NS, KEY, TS + 4, W, LIM)
        await s.snapshot()
        child = s._finishing
        s.counters.add(NS, KEY, TS + 5, W, LIM)
        await s.flush()
        _crash(s)
        # the writer drops its copy of the state lock as it starts (a few ms after the fork; a loaded
        # host may take longer to schedule it): the data dir opens while the writer still sleeps
        t0 = time.monotonic()
        while True:
            try:
                s2 = EmbeddedStore(tmp_path)
                break
            except StateError:
                assert time.monotonic() - t0 < 3.0, "the forked writer kept the state lock"
                await asyncio.sleep(0.05)
        assert not child.done()
        n = s2.counters.count(NS, KEY, TS + 6, W, LIM)
        await child                             # (the test's process is still alive: let it settle)
        return n, s2.replayed
    assert asyncio.run(main()) == (6, 2)


def test_serve_takes_forked_snapshots_under_traffic_and_restores_from_them(tmp_path):
    """A real serve (uvloop, worker threads, listening sockets) snapshotting every half second by
    forked writers: it keeps accepting binds and judging between snapshots, nothing fails, and
    after kill -9 the cap is restored from the last snapshot plus the journal after it."""
    node = _Node(tmp_path, boot="import engine.state.embedded as E; E.SNAPSHOT_EVERY = 0.5; "
                                "from engine.cli import main; raise SystemExit(main())")
    data = node.data
    snap = data / "state" / "snapshot"
    try:
        p, port = node.start()
        stamps = set()
        for i in range(3):
            assert _submit_ad(port, "84912000444") == 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.2:         # a few snapshots between two ads
                if snap.exists():
                    stamps.add(snap.stat().st_mtime_ns)
                time.sleep(0.05)
        assert len(stamps) >= 2 and (data / "state" / "snapshot.prev").exists()
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        log1 = (tmp_path / "stderr1.log").read_text()
        assert "snapshot failed" not in log1 and "Traceback" not in log1, log1[-3000:]
        p, port = node.start()
        assert _submit_ad(port, "84912000444") != 0, "the 4th ad within 24 h was let through after the restart"
        assert _submit_ad(port, "84912000445") == 0
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        assert not list((data / "state").glob("snapshot.tmp*"))
    finally:
        node.stop()


def test_a_stop_during_the_timers_forked_snapshot_loses_nothing_and_does_not_wait_for_it(tmp_path, monkeypatch):
    """serve's stop cancels the timer and closes the store while the timer's snapshot is between its
    fork and the end of its tail write: the stop's own snapshot is written after it (one at a time,
    each with its own file), the slow forked writer is abandoned rather than waited for (and never
    installs its older snapshot over the stop's), and every commit is restored."""
    from engine.state import embedded
    from engine.state.journal import read_snapshot
    real_tail = EmbeddedStore._write_tail

    def slow_tail(self, old, tail, done):
        time.sleep(0.3)                          # the fsync of a busy disk: the stop comes meanwhile
        real_tail(self, old, tail, done)
    monkeypatch.setattr(EmbeddedStore, "_write_tail", slow_tail)
    _slow_writer(monkeypatch, 5.0)               # the forked writer takes 5 s

    async def main():
        s = EmbeddedStore(tmp_path)
        for i in range(50):
            s.counters.add(NS, ("k", i), TS + i, W, LIM)
        await s.snapshot(fork=False)
        for i in range(50, 60):
            s.counters.add(NS, ("k", i), TS + i, W, LIM)
        monkeypatch.setattr(embedded, "SNAPSHOT_EVERY", 0.0)
        timer = asyncio.create_task(s.run())
        await asyncio.sleep(embedded.FLUSH_EVERY + 0.1)     # the timer's snapshot is in its tail write
        for i in range(60, 70):
            s.counters.add(NS, ("k", i), TS + i, W, LIM)
        timer.cancel()
        t0 = time.monotonic()
        await s.close()
        took = time.monotonic() - t0
        await asyncio.sleep(6.0)                 # past the writer's 5 s: nothing may land after the stop's
        snap = read_snapshot(tmp_path / "state" / "snapshot")
        s2 = EmbeddedStore(tmp_path)
        n = sum(s2.counters.count(NS, ("k", i), TS + 100, W, LIM) for i in range(70))
        return took, snap["next_segment"], s.seg, n, s2.warnings, s2.replayed
    took, snap_next, seg, n, warnings, replayed = asyncio.run(main())
    assert snap_next == seg and replayed == 0            # the stop's snapshot is the one in place
    assert n == 70 and not warnings
    assert took < 4, took
    assert not list((tmp_path / "state").glob("snapshot.tmp*"))


def test_the_forked_writer_dies_with_a_killed_serve(tmp_path):
    """kill -9 of serve while its forked snapshot writer works: the writer (every signal blocked)
    dies with it (PR_SET_PDEATHSIG), instead of running on past a restart of the service."""
    script = f"""
import asyncio, os, sys, time
sys.path.insert(0, {str(ROOT)!r})
from engine.state import embedded
real, parent = embedded.write_snapshot_tmp, os.getpid()
def slow(tmp, obj):
    if os.getpid() != parent:
        time.sleep(60)
    real(tmp, obj)
embedded.write_snapshot_tmp = slow
async def main():
    s = embedded.EmbeddedStore({str(tmp_path)!r})
    await s.snapshot()
    print(s._child.pid, flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(p.stdout.readline())

        def alive(pid):
            try:
                st = open(f"/proc/{pid}/stat").read()
            except FileNotFoundError:
                return False
            return st.split(") ", 1)[1][0] != "Z"
        assert alive(child)
        p.kill()
        p.wait(10)
        assert wait_for(lambda: not alive(child), 5), "the snapshot writer outlived serve"
    finally:
        if p.poll() is None:
            p.kill()
