"""The message_id -> account map is logged as it grows (engine/smpp_proxy/idlog.py): after a crash the
next start knows which account sent each message, so their receipts reach it; the log keeps the map's
coverage in two segments; a torn or damaged segment keeps what it holds before the damage."""
import asyncio

import msgpack

from engine.smpp_proxy import idlog as idlog_mod
from engine.smpp_proxy.idlog import IdLog
from engine.smpp_proxy.msgids import SINGLE, MessageIds
from tests.test_smpp_proxy import wait
from tests.test_smpp_receipts import Esme, ServeBeside, _receipt_ids, _submitted


def _run_and_crash(base, bound, n, monkeypatch=None):
    """Add n ids (with notes) to a logged map, let the writer write, then stop WITHOUT a clean close."""
    async def go():
        m = MessageIds(bound)
        log = IdLog(base, m)
        log.open(asyncio.get_running_loop())
        for i in range(n):
            m.add(f"id{i}", "esme1" if i % 2 else "esme2")
            m.note(f"id{i}", SINGLE, 8, "BRAND", 0, 84912000000 + i)
            if i % 97 == 0:
                await asyncio.sleep(0)
        log.flush()
        assert await log.writer.idle(5)
        log.timer.cancel()                     # a crash: no close, nothing more written
        return m
    return asyncio.run(go())


def _reopen(base, bound):
    async def go():
        m = MessageIds(bound)
        log = IdLog(base, m)
        n = log.open(asyncio.get_running_loop())
        await log.close(clean=False)
        return m, n
    return asyncio.run(go())


def test_the_map_of_a_run_that_crashed_is_read_back_with_its_notes(tmp_path):
    base = tmp_path / "smpp" / "message_ids.msgpack"
    before = _run_and_crash(base, 1000, 300)
    after, n = _reopen(base, 1000)
    assert n == 300 and len(after) == 300
    assert all(after.get(f"id{i}") == before.get(f"id{i}") for i in range(300))
    assert after.sent("id7") == before.sent("id7") and after.sent("id7").destination == 84912000007


def test_two_segments_keep_the_newest_ids_of_the_bound(tmp_path):
    base = tmp_path / "smpp" / "message_ids.msgpack"
    _run_and_crash(base, 100, 1000)
    segs = sorted(p.name for p in base.parent.glob("message_ids.log.*"))
    assert len(segs) <= 2, segs                                    # older segments deleted as new ones start
    after, _ = _reopen(base, 100)
    assert len(after) == 100 and all(after.get(f"id{i}") for i in range(900, 1000))   # the newest 100
    assert after.get("id850") is None


def test_a_torn_segment_keeps_its_good_prefix_and_a_damaged_one_is_set_aside(tmp_path):
    base = tmp_path / "smpp" / "message_ids.msgpack"
    _run_and_crash(base, 1000, 50)
    [seg] = list(base.parent.glob("message_ids.log.*"))
    data = seg.read_bytes()
    more = MessageIds()
    more.add("late1", "esme1")
    extra = msgpack.packb(more.columns_of(["late1"]), use_bin_type=True)
    seg.write_bytes(data + extra[:-3])                              # a crash in the middle of a write
    after, n = _reopen(base, 1000)
    assert n == 50 and after.get("late1") is None
    [seg] = list(base.parent.glob("message_ids.log.*"))
    seg.write_bytes(seg.read_bytes() + b"\xc1\xc1\xc1")              # garbage after good objects
    after, n = _reopen(base, 1000)
    assert n == 50 and list(base.parent.glob("message_ids.log.*.unreadable"))


def test_receipts_of_messages_sent_before_serve_was_killed_reach_their_account(tmp_path):
    import time
    run = ServeBeside(tmp_path)
    try:
        p, h = run.start(1)
        e = Esme(h)
        e.submit(3)
        ids = _submitted(e, 3)
        time.sleep(3 * idlog_mod.FLUSH)                           # the log's next write
        p.kill()                                                  # SIGKILL: no clean stop, no map file
        p.wait(10)
        assert not (run.data / "smpp" / "message_ids.msgpack").exists()
        p, h = run.start(2)
        e = Esme(h)
        run.receipts_for(ids)
        assert _receipt_ids(e, 3, timeout=5.0) == sorted(ids)
        sim = run.sim
        assert wait(lambda: len(sim.sim.mo_responses) == 3) and [r.command_status for r in sim.sim.mo_responses] == [0] * 3
    finally:
        run.close()


def test_a_slow_fdatasync_does_not_hold_back_the_next_write(tmp_path, monkeypatch):
    import os
    import time
    real = os.fdatasync
    slow = {"on": False}

    def fdatasync(fd):
        if slow["on"]:
            time.sleep(1.5)
        return real(fd)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    base = tmp_path / "smpp" / "message_ids.msgpack"

    async def go():
        m = MessageIds(1000)
        log = IdLog(base, m)
        log.open(asyncio.get_running_loop())
        slow["on"] = True
        m.add("A", "esme1")
        log.flush()                             # its fdatasync takes 1.5 s
        await asyncio.sleep(0.2)
        m.add("B", "esme1")
        log.flush()                             # written at once all the same (what a kill -9 needs)
        await asyncio.sleep(0.3)
        [seg] = list(base.parent.glob("message_ids.log.*"))
        on_disk = seg.read_bytes()
        slow["on"] = False
        await log.close(clean=False)
        return on_disk
    on_disk = asyncio.run(go())
    assert b"A" in on_disk and b"B" in on_disk


def test_ids_not_yet_written_are_read_back_from_the_dead_writers_spool(tmp_path):
    """A crash between two writes (FLUSH) used to lose the ids added since the last one; each loop iteration's ids
    are in the crash spool once it ends, so the next start has them."""
    import fcntl
    base = tmp_path / "smpp" / "message_ids.msgpack"

    async def go():
        m = MessageIds(1000)
        log = IdLog(base, m)
        log.open(asyncio.get_running_loop())
        log.timer.cancel()                      # no write of the segment from here on: what a crash cuts short
        for i in range(40):
            m.add(f"late{i}", "esme2")
            m.note(f"late{i}", SINGLE, 8, "BRAND", 0, 84912000000 + i)
        await asyncio.sleep(0)
        await asyncio.sleep(0)                  # the iteration's ids packed and spooled
        fcntl.flock(log.spool.fd, fcntl.LOCK_UN)    # the process dies: its lock goes, the spool stays
        return m
    before = asyncio.run(go())
    assert list(base.parent.glob(".message_ids.log.spool.*"))
    after, n = _reopen(base, 1000)
    assert n == 40 and all(after.get(f"late{i}") == "esme2" for i in range(40))
    assert after.sent("late3") == before.sent("late3")
    assert not list(base.parent.glob(".message_ids.log.spool.*"))   # in a segment now: the spool deleted
    assert _reopen(base, 1000)[0].get("late39") == "esme2"


def test_a_clean_close_leaves_no_spool_and_a_live_one_is_not_read(tmp_path):
    from engine import crashspool as logspool
    base = tmp_path / "smpp" / "message_ids.msgpack"

    async def go():
        m = MessageIds(1000)
        log = IdLog(base, m)
        log.open(asyncio.get_running_loop())
        m.add("A1", "esme1")
        m.note("A1", SINGLE, 0, "BRAND", 0, 84912000001)
        got = []
        assert logspool.recover(log._spool_of(), got.append) == 0 and got == []    # its writer lives (flock)
        assert list(base.parent.glob(".message_ids.log.spool.*"))
        await log.close(clean=False)
    asyncio.run(go())
    assert not list(base.parent.glob(".message_ids.log.spool.*"))   # written to the segment: deleted


def test_a_full_spool_takes_no_record_until_the_writer_has_written_some(tmp_path):
    """(the id log's records have no line end to find the next one by: a record is never cut by the ring)"""
    from engine.crashspool import Spool
    s = Spool(tmp_path / "x.log", capacity=100, overwrite=False)
    assert s.append(b"a" * 60) and not s.append(b"b" * 60) and s.end == 60
    s.wrote(60)
    assert s.append(b"c" * 60) and s.end == 120
    s.close()


def test_receipts_of_messages_answered_just_before_serve_was_killed_reach_their_account(tmp_path):
    """kill -9 right after the last submit_sm_resp (no wait for the log's next write): every receipt still finds
    its account after the restart. Before the spool, the ids of the last 0.05 s (most of a burst) were lost."""
    run = ServeBeside(tmp_path)
    try:
        p, h = run.start(1)
        e = Esme(h)
        e.submit(60)
        ids = _submitted(e, 60)
        p.kill()                                                  # SIGKILL at once
        p.wait(10)
        p, h = run.start(2)
        e = Esme(h)
        run.receipts_for(ids)
        assert _receipt_ids(e, 60, timeout=10.0) == sorted(ids)
    finally:
        run.close()
