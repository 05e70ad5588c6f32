"""A server that lost its keys (FLUSHALL, or restarted without persistence) under running nodes: every node puts
back the counts of enforced caps its mirror holds (engine/state/redis_reseed.py), so a recipient at its cap before
the loss stays at it, whichever node the next ad goes through. Before, the caps started again from zero on the
server: a node that had sent the recipient nothing sent it 3 more ads (a probe: 6 in the day)."""
import asyncio
import struct

import msgpack

from engine.rules.slots import value_fp
from engine.state.redis_script import LUA, counter_key

from .redis_helpers import RedisServer, ports_in
from .redis_state_helpers import _ad, _judge, _node

R, R2 = "0912000444", "0912000555"


async def _until(cond, what, limit=10.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not cond():
        assert loop.time() < end, what
        await asyncio.sleep(0.02)


async def _nodes(tmp_path, url):
    (a, sa), (b, sb) = _node(tmp_path, "a", url), _node(tmp_path, "b", url)
    await sa.start()
    await sb.start()
    runs = [asyncio.ensure_future(s.run()) for s in (sa, sb)]      # (as serve does: the keyspace watched)
    return a, sa, b, sb, runs


async def _stop(runs, *stores):
    for t in runs:
        t.cancel()
    await asyncio.gather(*runs, return_exceptions=True)
    for s in stores:
        await s.close()


def test_a_recipient_at_its_cap_stays_at_it_after_a_flushall(tmp_path):
    """B's ad is the first batch after the FLUSHALL (A is idle): it waits until A has put R's 3 counts back, then
    is refused. B's own 2 ads to R2 are put back once: A may send R2 one more, not two."""
    srv = RedisServer(tmp_path / "r", port=ports_in(21000, 21999, 1)[0])

    async def main():
        a, sa, b, sb, runs = await _nodes(tmp_path, srv.url)
        try:
            before = [(await _judge(a, _ad(i, R)))[0] for i in range(3)]
            before += [(await _judge(b, _ad(5 + i, R2)))[0] for i in range(2)]
            c = srv.client()
            c.flushall()
            c.close()
            after = [await _judge(b, _ad(10, R))]
            after += [await _judge(a, _ad(11 + i, R2)) for i in range(2)]
            return before, after, dict(sa.stats), dict(sb.stats)
        finally:
            await _stop(runs, sa, sb)
    try:
        before, after, a_stats, b_stats = asyncio.run(main())
    finally:
        srv.stop()
    assert before == ["allow"] * 5
    assert after == [("drop", ["AD_FREQUENCY_CAP"]), ("allow", []), ("drop", ["AD_FREQUENCY_CAP"])], after
    assert a_stats["keyspace_lost"] == 1 and b_stats["keyspace_lost"] == 1, (a_stats, b_stats)
    assert a_stats["reseeded"] >= 1 and b_stats["reseeded"] >= 1 and b_stats["reseed_waits"] >= 1


def _across_a_restart(tmp_path, before, after):
    """Nodes A and B on a Redis that `before(a, sa, b, sb, stop)` stops (no persistence): started again empty, and
    once both nodes saw the loss, `after(a, sa, b, sb)`. Returns both results."""
    port = ports_in(21000, 21999, 1)[0]
    box = [RedisServer(tmp_path / "r1", port=port)]

    async def main():
        a, sa, b, sb, runs = await _nodes(tmp_path, box[0].url)
        try:
            got = await before(a, sa, b, sb, box[0].stop)
            box[0] = RedisServer(tmp_path / "r2", port=port)
            await _until(lambda: sa.stats["keyspace_lost"] and sb.stats["keyspace_lost"], "both nodes see the loss")
            return got, await after(a, sa, b, sb)
        finally:
            await _stop(runs, sa, sb)
    try:
        return asyncio.run(main())
    finally:
        box[0].stop()


def test_a_recipient_at_its_cap_stays_at_it_after_a_restart_without_persistence(tmp_path):
    async def before(a, sa, b, sb, stop):
        got = [(await _judge(a, _ad(i, R)))[0] for i in range(3)]
        stop()
        return got

    async def after(a, sa, b, sb):
        return [await _judge(b, _ad(10 + i, R)) for i in range(2)]
    got, later = _across_a_restart(tmp_path, before, after)
    assert got == ["allow"] * 3
    assert later == [("drop", ["AD_FREQUENCY_CAP"])] * 2, later


def test_a_count_taken_fail_open_before_the_server_came_back_empty_is_counted_once(tmp_path):
    """A's 2nd ad to R went out while Redis was away (fail-open: the mirror's alone, waiting for the server); Redis
    comes back empty. That count is both in A's mirror (re-seeded) and in its catch-up queue: counted once, so B,
    which sent R nothing, may send it the 3rd ad, not a 4th."""
    async def before(a, sa, b, sb, stop):
        got = [(await _judge(a, _ad(0, R)))[0]]
        stop()
        got.append((await _judge(a, _ad(1, R)))[0])
        assert sa.stats["fail_open"] == 1 and sa._commits_waiting
        return got

    async def after(a, sa, b, sb):
        await _until(lambda: not (sa._seeding() or sa._commits_waiting or sa.busy), "A's counts back")
        return [(await _judge(b, _ad(10 + i, R)))[0] for i in range(2)]
    got, later = _across_a_restart(tmp_path, before, after)
    assert got == ["allow"] * 2
    assert later == ["allow", "drop"], later


def test_a_seed_sent_twice_counts_once(tmp_path):
    """The script merges a re-seeded row (per second the most stamps of the server's and the seed's): a seed sent
    again after a failed batch, or holding a count the server took since the loss, is not counted twice."""
    srv = RedisServer(tmp_path / "r", port=ports_in(21000, 21999, 1)[0])
    try:
        r = srv.client()
        k, t = counter_key("AD_FREQUENCY_CAP|x", 1), 1_700_000_000
        seed = [1, 4, 3, 86400, t + 10, 0, 0, [t, t, t + 5]]
        for i in range(2):
            r.eval(LUA, 1, k, msgpack.packb([[seed]]), 60, 1, f"tok{i}", "e", "1")
        assert sorted(struct.unpack("<3I", r.get(k))) == [t, t, t + 5]
        assert r.ttl(k) > 86400 - 20
        r.close()
    finally:
        srv.stop()


def test_a_distinct_counters_seed_keeps_each_value_once_at_its_later_second(tmp_path):
    """Mode 5: (value, second) pairs merged per value (the later second), least recently seen first, the last
    limit + 1 kept, as the embedded distinct rows."""
    srv = RedisServer(tmp_path / "r", port=ports_in(21000, 21999, 1)[0])
    try:
        r = srv.client()
        k, t = counter_key("X|template|3600|sender", 1), 1_700_000_000
        for i, pairs in enumerate([[[7, t], [8, t + 1]], [[8, t + 3], [9, t + 2], [7, t]]]):
            r.eval(LUA, 1, k, msgpack.packb([[[1, 5, 2, 3600, t + 5, 0, 0, pairs]]]), 60, 1, f"tok{i}", "e", "1")
        got = struct.unpack("<6I", r.get(k))
        assert [got[i:i + 2] for i in range(0, 6, 2)] == [(7, t), (9, t + 2), (8, t + 3)]
        r.close()
    finally:
        srv.stop()


def test_the_rows_put_back_are_the_mirrors_live_stamps_in_every_layout():
    """What a re-seed reads of the mirror (redis_reseed._row): a plain count row (AD_CALL_FREQUENCY_CAP), a short
    one (more than 4 within under 18 h), a row counted at delivery (AD_FREQUENCY_CAP, stamps ahead of the clock),
    a distinct row and a distinct key seen with one value; stamps out of the window left out."""
    from engine.rules.counters import MemoryCounters
    from engine.rules.slots import key_hash
    from engine.state.redis_reseed import _row
    m, t = MemoryCounters(), 1_700_000_000
    for s in (t - 200, t - 50, t - 10):
        m.add("C", 1, s, 100, 3)
    for s in (t - 200, t - 60, t - 60, t - 5, t - 1):
        m.add("S", 1, s, 100, 6)
    for s in (t - 300, t + 50, t - 20):
        m.add_at("A", 1, s, t - 20, 100, 2)
    for v, s in ((7, t - 500), (8, t - 30), (9, t - 20)):
        m.add_distinct("D", 1, v, s, 100, 3)
    m.add_distinct("D", 2, 7, t - 5, 100, 3)
    assert _row(m, "C", key_hash(1), 100, t) == (4, 3, [t - 50, t - 10])
    assert _row(m, "S", key_hash(1), 100, t) == (4, 6, [t - 60, t - 60, t - 5, t - 1])
    assert _row(m, "A", key_hash(1), 100, t) == (6, 2, [t - 20, t + 50])
    mode, limit, pairs = _row(m, "D", key_hash(1), 100, t)
    assert (mode, limit, sorted(pairs)) == (5, 3, sorted([[value_fp(8), t - 30], [value_fp(9), t - 20]]))
    assert _row(m, "D", key_hash(2), 100, t) == (5, 3, [[value_fp(7), t - 5]])
    assert _row(m, "C", key_hash(3), 100, t) is None and _row(m, "X", key_hash(1), 100, t) is None
