"""The embedded state store (engine/state): counters, recipient history and call durations
survive a crash (journal replay), a clean stop (snapshot), a torn journal tail and a
corrupt snapshot; a real `serve` keeps the advertising frequency cap across `kill -9`."""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.numbers import sender_key
from engine.smpp_proxy.harness import ProxyHarness
from engine.state import StateError, install
from engine.state.embedded import EmbeddedStore, dump_state
from engine.verdict import Message

from .conftest import CONFIG, ROOT
from .test_serve import free_port, wait_for

SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,,\n"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone(timedelta(hours=7)))


def _pipe(data):
    ListStore(data).import_csv("senders", SENDERS, "senders.csv")
    return build(data_dir=data, with_model=False)


def _ad(i, recipient="0912000444"):
    return Message("SHOPABC", recipient, f"[QC] Uu dai {i}. Tu choi: TC gui 5656", T0 + timedelta(hours=i), "e")


def _crash(store):
    """What kill -9 leaves: whatever was flushed; the lock goes with the process."""
    os.close(store._lockfd)


def _open(data, pipe=None):
    store = EmbeddedStore(data)
    install(pipe or _pipe(data), store)
    return store


def _verdicts(pipe, msgs):
    return [(v.action.name.lower(), [h.symbol for h in v.hits]) for v in map(pipe.judge, msgs)]


def test_cap_survives_a_crash_after_a_flush(tmp_path):
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)
    assert [a for a, _ in _verdicts(pipe, [_ad(i) for i in range(3)])] == ["allow"] * 3
    asyncio.run(store.flush())
    pipe.judge(_ad(3, "0912000445"))          # committed after the last flush: inside the loss window
    _crash(store)
    pipe2 = _pipe(data)
    store2 = _open(data, pipe2)
    assert store2.replayed == 3 and not store2.warnings
    assert _verdicts(pipe2, [_ad(4)]) == [("drop", ["AD_FREQUENCY_CAP"])]
    assert _verdicts(pipe2, [_ad(5, "0912000445")])[0][0] == "allow"    # the unflushed one was lost
    _crash(store2)


def _dies(store):
    """kill -9 with the crash spool running: its lock goes with the process, its mapping stays."""
    import fcntl
    if store.spool.spool is not None:
        fcntl.flock(store.spool.spool.fd, fcntl.LOCK_UN)
    _crash(store)


def test_updates_committed_after_the_last_flush_are_read_back_from_the_crash_spool(tmp_path):
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)

    async def serving():
        store.spool.start(asyncio.get_running_loop())      # (what serve's store timer does first)
        assert [a for a, _ in _verdicts(pipe, [_ad(i) for i in range(2)])] == ["allow"] * 2
        await store.flush()
        assert _verdicts(pipe, [_ad(2)])[0][0] == "allow"   # after the last flush: the loss window it was
        pipe.judge(_ad(3, "0912000445"))
        await asyncio.sleep(0)                              # the iteration ends: spooled
    asyncio.run(serving())
    _dies(store)
    assert list((data / "state").glob(".journal.spool.*"))
    pipe2 = _pipe(data)
    store2 = _open(data, pipe2)
    assert store2.replayed == 4 and not store2.warnings
    assert _verdicts(pipe2, [_ad(4)]) == [("drop", ["AD_FREQUENCY_CAP"])]
    assert [a for a, _ in _verdicts(pipe2, [_ad(5 + i, "0912000445") for i in range(3)])] == ["allow", "allow", "drop"]
    assert not list((data / "state").glob(".journal.spool.*"))     # written to the journal, then deleted
    _crash(store2)
    store3 = _open(data, _pipe(data))                               # in the journal from then on
    assert store3.replayed == 4
    _crash(store3)


def test_clean_stop_snapshot_then_journal_restores_everything(tmp_path):
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)
    pipe.judge(_ad(0))
    pipe.call_ended("0912000777", T0, 3.0)
    asyncio.run(store.snapshot())
    pipe.judge(_ad(1))
    pipe.call_ended("0912000777", T0 + timedelta(minutes=1), 4.0)
    asyncio.run(store.flush())
    before = dump_state(store.counters.mem, store.history.mem, store.calls.mem)
    _crash(store)
    store2 = _open(data)
    assert store2.replayed == store.records - 2 > 0       # only what came after the snapshot is replayed
    assert dump_state(store2.counters.mem, store2.history.mem, store2.calls.mem) == before
    assert [d for _, d in store2.calls.recent(sender_key("0912000777"))] == [3.0, 4.0]
    asyncio.run(store2.close())                            # clean stop: all in the snapshot
    store3 = _open(data)
    assert store3.replayed == 0
    assert dump_state(store3.counters.mem, store3.history.mem, store3.calls.mem) == before
    _crash(store3)


def test_torn_journal_tail_is_ignored_with_a_warning(tmp_path):
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)
    _verdicts(pipe, [_ad(i) for i in range(3)])
    asyncio.run(store.flush())
    seg = store._seg_path(store.seg)
    with open(seg, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02")          # a frame cut short by the crash
    _crash(store)
    pipe2 = _pipe(data)
    store2 = _open(data, pipe2)
    assert store2.replayed == 3
    assert len(store2.warnings) == 1 and f"{seg}:" in store2.warnings[0] and "torn" in store2.warnings[0]
    assert _verdicts(pipe2, [_ad(4)]) == [("drop", ["AD_FREQUENCY_CAP"])]
    _crash(store2)


@pytest.mark.parametrize("where", ["payload", "length"])
def test_a_damaged_journal_record_costs_itself_alone_when_the_rest_frames(tmp_path, where):
    """A byte flipped in the payload of the first frame of the live journal segment: its CRC fails. The
    reader ignored that frame and every frame after it, intact as they were: after a kill -9 the 20
    recipients of two flushes had their caps back (found by a black-box durability probe of serve: the
    4th ad to each went through). A frame whose length still frames the rest is now skipped alone; one
    whose length is damaged still ends the segment (nothing after it can be framed)."""
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)
    _verdicts(pipe, [_ad(i, "0912000501") for i in range(3)])
    asyncio.run(store.flush())                    # frame 1: recipient ...501
    _verdicts(pipe, [_ad(i, "0912000502") for i in range(3)])
    asyncio.run(store.flush())                    # frame 2: recipient ...502
    seg = store._seg_path(store.seg)
    _crash(store)
    b = bytearray(seg.read_bytes())
    if where == "payload":
        b[10] ^= 0xFF
    else:
        b[0] ^= 0x01                              # the length one byte off: the rest cannot be framed
    seg.write_bytes(bytes(b))
    pipe2 = _pipe(data)
    store2 = _open(data, pipe2)
    assert len(store2.warnings) == 1 and f"{seg}:0:" in store2.warnings[0] and "fails its CRC" in store2.warnings[0]
    if where == "payload":
        assert "skipped" in store2.warnings[0] and store2.replayed == 3
        assert _verdicts(pipe2, [_ad(4, "0912000502")]) == [("drop", ["AD_FREQUENCY_CAP"])]
    else:
        assert "ignored" in store2.warnings[0] and store2.replayed == 0
    assert _verdicts(pipe2, [_ad(5, "0912000501")])[0][0] == "allow"     # the damaged frame's own counts
    _crash(store2)


def test_corrupt_snapshot_falls_back_to_the_previous_one(tmp_path):
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)
    pipe.judge(_ad(0))
    asyncio.run(store.snapshot())                 # snapshot A (becomes .prev)
    pipe.judge(_ad(1))
    pipe.judge(_ad(2))
    asyncio.run(store.snapshot())                 # snapshot B
    _crash(store)
    snap = data / "state" / "snapshot"
    b = bytearray(snap.read_bytes())
    b[-3] ^= 0xFF
    snap.write_bytes(bytes(b))
    pipe2 = _pipe(data)
    store2 = _open(data, pipe2)
    assert any("fails its CRC" in w for w in store2.warnings)
    assert any("snapshot.prev" in w for w in store2.warnings)
    assert store2.replayed == 2                   # the two ads after A, from the journal A needs
    assert _verdicts(pipe2, [_ad(4)]) == [("drop", ["AD_FREQUENCY_CAP"])]
    _crash(store2)


def test_the_snapshot_file_is_there_at_every_instant_of_an_install(tmp_path, monkeypatch):
    """Installing a snapshot never leaves `snapshot` missing, not even between keeping the current one as
    `.prev` and renaming the new one in: a crash (here: the last rename failing) there restores all."""
    from engine.state import journal
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)
    pipe.judge(_ad(0))
    asyncio.run(store.snapshot())                 # snapshot A
    pipe.judge(_ad(1))
    snap = data / "state" / "snapshot"
    seen, real_replace = [], os.replace

    def replace(src, dst):
        seen.append(snap.exists())
        if Path(dst) == snap:
            raise OSError("crash between the steps")
        real_replace(src, dst)
    monkeypatch.setattr(journal.os, "replace", replace)
    with pytest.raises(OSError):
        asyncio.run(store.snapshot(fork=False))   # snapshot B: its rename in never happens
    monkeypatch.undo()
    assert seen and all(seen)
    assert (data / "state" / "snapshot.prev").exists()
    _crash(store)
    pipe2 = _pipe(data)
    store2 = _open(data, pipe2)
    assert not any("snapshot" in w and "missing" in w for w in store2.warnings), store2.warnings
    assert store2.replayed == 1                   # A, and the ad after it from the journal
    assert _verdicts(pipe2, [_ad(2), _ad(3)]) == [("allow", []), ("drop", ["AD_FREQUENCY_CAP"])]
    assert not list((data / "state").glob("snapshot.tmp*"))
    _crash(store2)


def test_both_snapshots_damaged_is_said_as_an_error_naming_what_is_lost(tmp_path, caplog):
    """Found by a durability probe at stop 35: with snapshot and snapshot.prev both damaged, serve started with empty
    counters and two warnings about the files, nothing saying the caps were gone."""
    import logging
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)
    for i in range(2):
        pipe.judge(_ad(i))
        asyncio.run(store.snapshot())
    _crash(store)
    for name in ("snapshot", "snapshot.prev"):
        p = data / "state" / name
        b = bytearray(p.read_bytes())
        b[-3] ^= 0xFF
        p.write_bytes(bytes(b))
    with caplog.at_level(logging.ERROR, logger="telfilter"):
        store2 = _open(data, _pipe(data))
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("no usable state snapshot" in m and "caps" in m for m in said), said
    assert any("no usable state snapshot" in w for w in store2.warnings)
    _crash(store2)


def test_one_process_per_data_dir(tmp_path):
    store = EmbeddedStore(tmp_path)
    with pytest.raises(StateError, match="in use by another telfilter serve"):
        EmbeddedStore(tmp_path)
    _crash(store)


def _hours_config(tmp_path):
    """A config whose timezone puts now at 10:00-14:00 local: ads are within 07:00-22:00."""
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    h = datetime.now(timezone.utc).hour
    off = (12 - h + 12) % 24 - 12                 # local hour = h + off = 12 (mod 24), off in -12..11
    tz = "Etc/GMT" + ("" if off == 0 else f"{-off:+d}")   # Etc/GMT-7 is UTC+7
    t = cfg / "telfilter.toml"
    t.write_text(t.read_text().replace('timezone = "Asia/Ho_Chi_Minh"', f'timezone = "{tz}"'))
    return cfg


def _submit_ad(port, recipient):
    import smpplib.client
    import smpplib.gsm
    c = smpplib.client.Client("127.0.0.1", port, timeout=5)
    c.connect()
    c.bind_transceiver(system_id="t", password="pw")
    parts, enc, esm = smpplib.gsm.make_parts(f"[QC] Uu dai {os.urandom(3).hex()}. Tu choi: TC gui 5656")
    c.send_message(source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1, destination_addr=recipient,
                   short_message=parts[0], data_coding=enc, esm_class=esm)
    st = c.read_pdu().status
    c.unbind()
    c.disconnect()
    return st


class _Node:
    """`telfilter serve` processes on one data dir and one SMSC simulator, started one after another
    (`start()`), each stopped at `stop()` even when it never got ready. `boot`: python -c code that
    runs serve (a module setting patched first), else `-m engine.cli`."""

    def __init__(self, tmp_path, boot=None, log=None):
        self.tmp, self.boot, self.log = tmp_path, boot, log
        self.cfg = _hours_config(tmp_path)
        self.data = tmp_path / "data"
        ListStore(self.data).import_csv("senders", SENDERS, "senders.csv")
        self.sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
        self.procs = []

    def start(self):
        n = len(self.procs) + 1
        port, ready = free_port(), self.tmp / f"ready{n}"
        # the sessions themselves, held: a session the simulator dropped (its process killed) is freed, and a new one
        # may then get its address, so comparing id()s took the new bind for an old one (a clean-clone CI run)
        before = list(self.sim.sim.sessions)
        err = open(self.tmp / f"stderr{n}.log", "w")
        head = ["-c", self.boot] if self.boot else ["-m", "engine.cli"]
        p = subprocess.Popen([sys.executable, *head, "serve", "--config", self.cfg, "--data-dir", self.data, "-v",
                              "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{self.sim.port}",
                              "--esme-account", "t:pw", "--sip-listen", "off", "--ready-file", ready,
                              *(["--log", self.log] if self.log else [])],
                             cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
        self.procs.append(p)
        assert wait_for(ready.exists, 60), (self.tmp / f"stderr{n}.log").read_text()
        assert wait_for(lambda: any(s.bound and not any(s is b for b in before) for s in list(self.sim.sim.sessions)))
        return p, port

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        self.sim.stop()


def test_serve_keeps_the_frequency_cap_across_kill_9(tmp_path):
    log = tmp_path / "v.jsonl"
    node = _Node(tmp_path, log=log)
    data = node.data
    try:
        p, port = node.start()
        assert [_submit_ad(port, "84912000444") for _ in range(3)] == [0, 0, 0]
        # the journal is fsync'ed within a second of the commit: wait for it, then kill -9
        seg = lambda: sum(f.stat().st_size for f in (data / "state").glob("journal.*"))   # noqa: E731
        assert wait_for(lambda: seg() > 0, 5)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        p, port = node.start()
        st = _submit_ad(port, "84912000444")
        assert st != 0, "the 4th ad within 24 h was let through after the restart"
        # the verdict log is written by its own thread, flushed every 50 ms: the 4th line comes soon after
        assert wait_for(lambda: len(log.read_text().splitlines()) >= 4, 5)
        last = json.loads(log.read_text().splitlines()[3])
        assert [h["symbol"] for h in last["hits"]] == ["AD_FREQUENCY_CAP"], last
        assert _submit_ad(port, "84912000445") == 0          # another recipient is not capped
        # a clean stop loses nothing: snapshot written, journal emptied
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        assert (data / "state" / "snapshot").exists()
        assert "replayed" in (tmp_path / "stderr2.log").read_text()
        # and leaves no crash spool behind (everything in them was written)
        assert not [p.name for p in data.rglob(".*.spool.*")] and not list(tmp_path.glob(".*.spool.*"))
    finally:
        node.stop()


def test_serve_killed_right_after_three_ads_keeps_the_cap(tmp_path):
    """kill -9 at once after the 3rd ad's submit_sm_resp (no wait for the journal's next fsync, every 0.25 s): the
    counts are in the crash spool, so the 4th ad is still dropped after the restart (it was let through). The journal's
    timer is held off in the killed serve (its flush every 0.25 s could fall between the 3rd ad's commit and the kill,
    most likely on a loaded host: the counts were then in the journal, nothing left in the spool to say replayed)."""
    node = _Node(tmp_path, boot="import engine.state.embedded as E; E.FLUSH_EVERY = 3600.0; "
                                "from engine.cli import main; raise SystemExit(main())")
    try:
        p, port = node.start()
        assert [_submit_ad(port, "84912000446") for _ in range(3)] == [0, 0, 0]
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        p, port = node.start()
        assert _submit_ad(port, "84912000446") != 0, "the 4th ad within 24 h was let through after kill -9"
        assert "left in its crash spool, replayed" in (tmp_path / "stderr2.log").read_text()
    finally:
        node.stop()


def test_a_failing_disk_keeps_serving_and_retries_in_order(tmp_path, monkeypatch):
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)
    pipe.judge(_ad(0))
    real = store._write

    def full(seg, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(store, "_write", full)
    monkeypatch.setattr("engine.state.embedded.FLUSH_EVERY", 0.01)

    async def tick():
        t = asyncio.ensure_future(store.run())
        await asyncio.sleep(0.1)
        t.cancel()
    asyncio.run(tick())
    assert store.write_errors > 0 and len(store.buf) == 1          # kept for the retry
    pipe.judge(_ad(1))
    monkeypatch.setattr(store, "_write", real)
    asyncio.run(store.flush())
    _crash(store)
    pipe2 = _pipe(data)
    store2 = _open(data, pipe2)
    assert store2.replayed == 2
    _verdicts(pipe2, [_ad(2)])
    assert _verdicts(pipe2, [_ad(3)]) == [("drop", ["AD_FREQUENCY_CAP"])]
    _crash(store2)


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
