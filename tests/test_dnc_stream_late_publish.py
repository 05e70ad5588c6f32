"""A subscriber's DNC commands published late (Redis away) keep the order in which they were put in force
(probe, h_dnc): with `serve --workers 2 --state redis://` and Redis restarting, `DK DNC` on worker A, `HUY DNC`
on A, then `DK DNC` on worker B (each answered 0 before the next was sent) ended with the number NOT on DNC,
in memory and in the journal: B's queue reached the stream before A's, and A's older HUY, applied in stream
order, undid the registration B had confirmed last. A change now carries the time it was put in force, and a
change older than the last one applied to that number and channel is skipped (nor journalled)."""
import asyncio

from engine.lists import ListStore

from .redis_helpers import redis_server  # noqa: F401
from .redis_state_helpers import _Down, _lists_node, url  # noqa: F401

N = 84912000077


def _run(tmp_path, url, first_back):  # noqa: F811
    import engine.state.replication as R

    async def main():
        A, B = _lists_node(tmp_path, "A"), _lists_node(tmp_path, "B")
        downs = {}
        for name, P in (("A", A), ("B", B)):
            downs[name] = R.DncReplicator(url, P, client=_Down(), reader=_Down())
        # Redis away: A registers then cancels, then B registers (the subscriber's last word)
        for op, name in (("add", "A"), ("remove", "A"), ("add", "B")):
            P = A if name == "A" else B
            P.store.append_delta(op, N, "SV")           # journalled (and queued: publish)
            (P.lists.add_dnc if op == "add" else P.lists.remove_dnc)(N, "SV")
            await asyncio.sleep(0.01)
        for d in downs.values():
            if d._pub_task is not None:
                d._pub_task.cancel()
                await asyncio.gather(d._pub_task, return_exceptions=True)
        # Redis back: the queues reach the stream in the order given
        spare = []
        for name in first_back:
            d = downs[name]
            spare.append((d.redis, d.reader))
            real = R.DncReplicator(url, A if name == "A" else B)
            d.redis, d.reader = real.redis, real.reader
            await d._publish_all()
        got = await downs["A"].redis.xrange(R.STREAM, min="-")
        for d in downs.values():
            d._apply(got)
        out = [P.lists.in_dnc(N, "S") for P in (A, B)]
        out += [ListStore(P.store.dir).load().in_dnc(N, "S") for P in (A, B)]      # what a restart loads
        for d in downs.values():
            await d.close()
        return out
    return asyncio.run(main())


def test_a_registration_confirmed_last_survives_an_older_cancellation_published_after_it(tmp_path, url):  # noqa: F811
    assert _run(tmp_path, url, ("B", "A")) == [True] * 4


def test_the_same_commands_published_in_their_own_order(tmp_path, url):  # noqa: F811
    assert _run(tmp_path, url, ("A", "B")) == [True] * 4


def test_the_times_are_kept_with_what_a_stop_could_not_publish_and_bounded(monkeypatch):
    import msgpack

    import engine.state.dncchanges as D
    c = D.Changes(True)
    c.put("add", "SV", N, 100.0)
    c.put("remove", "S", N, 101.0)
    back = D.Changes.from_dict(msgpack.unpackb(msgpack.packb(c.to_dict()), raw=False))
    assert dict(back.at) == {(N, "V"): 100.0, (N, "S"): 101.0}
    monkeypatch.setattr(D, "MAX_TIMED", 3)
    for i in range(5):
        c.put("add", "S", N + 1 + i, 200.0 + i)
    assert len(c.at) == 3 and (N + 5, "S") in c.at          # the newest kept
    runs, times = next(c.entries(100))
    assert times is not None and sum(t is not None for ts in msgpack.unpackb(times) for t in ts or ()) == 3


def test_a_change_made_here_is_newer_than_what_this_process_applied_whatever_its_clock(tmp_path, url,  # noqa: F811
                                                                                         monkeypatch):
    """Node B's clock 5 s behind A's: A's DK DNC reaches B, then B's subscriber sends HUY DNC. B removed the
    number at once; its entry, stamped by B's clock before A's, must not be skipped as older (B and A would then
    disagree: removed on B, registered on A)."""
    import engine.state.replication as R

    async def main():
        A, B = _lists_node(tmp_path, "A"), _lists_node(tmp_path, "B")
        ra, rb = R.DncReplicator(url, A), R.DncReplicator(url, B)
        A.store.append_delta("add", N, "SV"); A.lists.add_dnc(N, "SV")
        await ra._publish_all()
        got = await rb.redis.xrange(R.STREAM, min="-")
        for r in (ra, rb):
            r._apply(got)
        real = R.time.time
        monkeypatch.setattr(R.time, "time", lambda: real() - 5.0)        # B's clock
        B.store.append_delta("remove", N, "SV"); B.lists.remove_dnc(N, "SV")
        await rb._publish_all()
        monkeypatch.setattr(R.time, "time", real)
        more = await rb.redis.xrange(R.STREAM, min="(" + got[-1][0].decode())
        for r in (ra, rb):
            r._apply(more)
        out = [P.lists.in_dnc(N, "S") for P in (A, B)]
        out += [ListStore(P.store.dir).load().in_dnc(N, "S") for P in (A, B)]
        await ra.close(); await rb.close()
        return out
    assert asyncio.run(main()) == [False] * 4


def test_a_restarted_node_still_skips_an_older_cancellation_published_after_its_restart(tmp_path, url):  # noqa: F811
    """The change times a node applied were in memory only: C applied B's confirmed DK DNC from the stream,
    restarted, and then A's older HUY DNC (published late, Redis away from A) undid the registration on C, in
    memory and in its journal. A start reads the times of the entries it applied back from the stream."""
    import engine.state.replication as R

    async def main():
        A, B, C = (_lists_node(tmp_path, n) for n in "ABC")
        da = R.DncReplicator(url, A, client=_Down(), reader=_Down())
        A.store.append_delta("remove", N, "SV")             # A: HUY DNC, Redis away from A (queued)
        A.lists.remove_dnc(N, "SV")
        await asyncio.sleep(0.01)
        if da._pub_task is not None:
            da._pub_task.cancel()
            await asyncio.gather(da._pub_task, return_exceptions=True)
        rb = R.DncReplicator(url, B)
        B.store.append_delta("add", N, "SV")                # B: DK DNC, later, confirmed and published
        B.lists.add_dnc(N, "SV")
        await rb._publish_all()
        rc = R.DncReplicator(url, C)
        await rc.catch_up()                                 # C applies B's registration ...
        assert C.lists.in_dnc(N, "S")
        await rc.close()
        C2 = _lists_node(tmp_path, "C")                     # ... and restarts
        rc2 = R.DncReplicator(url, C2)
        real = R.DncReplicator(url, A)
        da.redis, da.reader = real.redis, real.reader       # Redis back for A: its older HUY reaches the stream
        await da._publish_all()
        await rc2.catch_up()
        out = [C2.lists.in_dnc(N, "S"), ListStore(C2.store.dir).load().in_dnc(N, "S"),
               rc2.stats["skipped_older"], rc2.stats.get("recalled_times", 0) >= 1]
        for d in (da, rb, rc2, real):
            await d.close()
        return out
    assert asyncio.run(main()) == [True, True, 2, True]      # (S and V)
