"""The embedded state store (engine/state) in process: counters, recipient history and call durations
survive a crash (journal replay, and the crash spool for what was committed after the last flush), a clean stop
(snapshot then journal), a torn journal tail, a damaged journal record (it costs itself alone) and a corrupt
snapshot (the previous one is used; both damaged is an error naming what is lost); the snapshot file is there at
every instant of an install, and one process holds a data dir. `serve` across kill -9 is in
test_durable_serve.py, forked snapshots in test_durable_forked_snapshot.py."""
import asyncio
import os
from pathlib import Path
from datetime import timedelta

import pytest

from engine.numbers import sender_key
from engine.state import StateError
from engine.state.embedded import EmbeddedStore, dump_state

from .durable_helpers import T0, _ad, _crash, _open, _pipe, _verdicts


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
