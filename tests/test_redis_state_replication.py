"""Replication through a real redis-server (engine/state/replication.py): 5656 DNC changes, CLI list
diffs and spam reports reach the other nodes; the DNC journal ends in stream order when changes cross, and an
entry whose journal write fails is read again; what waits for an unreachable server is bounded and then
published, a clean stop while it is away keeps what it could not publish, unpublished files are claimed once (a
broken one set aside), and a close during a publish sends each report once."""
import asyncio
import json

import pytest

from engine.lists import ListStore
from engine.verdict import Message

from .redis_helpers import redis_server  # noqa: F401  (the url fixture's)
from .redis_state_helpers import T0, _Down, _lists_node, _node, url  # noqa: F401,F811  (url: fixture)


def test_dnc_changes_cli_diffs_and_spam_reports_replicate(tmp_path, url):
    """engine/state/replication.py in one process: node A's 5656 DK DNC, a CLI import beside
    A and 5656 spam reports on both nodes reach node B (lists, journal, report index)."""
    from engine.numbers import normalise_number
    from engine.serve import reload_lists
    from engine.state.replication import DncReplicator

    def mo(sender, text):
        return Message(sender, "5656", text, T0, "", "mo")

    async def until(pred, timeout=3.0):
        end = asyncio.get_running_loop().time() + timeout
        while not pred():
            assert asyncio.get_running_loop().time() < end, "not replicated in time"
            await asyncio.sleep(0.01)

    async def main():
        a, sa = _node(tmp_path, "a", url)
        b, sb = _node(tmp_path, "b", url)
        ra, rb = DncReplicator(url, a), DncReplicator(url, b)
        a.replicator, b.replicator = ra, rb
        for r in (ra, rb):
            await r.catch_up()
        tasks = [asyncio.ensure_future(r.follow()) for r in (ra, rb)]
        n1 = normalise_number("0912000901")
        a.judge(mo("0912000901", "DK DNC"))
        await until(lambda: n1 in b.lists.dnc_s and n1 in b.lists.dnc_v)
        assert "84912000901" in (tmp_path / "b" / "lists" / "dnc.delta").read_text()
        a.judge(mo("0912000901", "HUY DNC V"))
        await until(lambda: n1 not in b.lists.dnc_v)
        assert n1 in b.lists.dnc_s
        # a CLI import beside node A: A publishes the difference when it reloads
        ListStore(tmp_path / "a").import_csv("dnc", b"number,channel\n0912000902,S\n0912000903,SV\n", "dnc.csv")
        assert await reload_lists(a) is None
        await until(lambda: normalise_number("0912000903") in b.lists.dnc_v)
        assert normalise_number("0912000902") in b.lists.dnc_s
        # spam reports: two reporters through A, one through B -> three on both nodes
        bad = normalise_number("0987654321")
        a.judge(mo("0912000911", "S 0987654321 lua dao"))
        a.judge(mo("0912000912", "S 0987654321 lua dao"))
        b.judge(mo("0912000913", "S 0987654321 lua dao"))
        for p in (a, b):
            await until(lambda p=p: p.state.reports.distinct_reporters(bad, T0.timestamp(), 7 * 86400) == 3)
        assert (tmp_path / "b" / "reports.jsonl").read_text().count("+84987654321") == 3
        for t in tasks:
            t.cancel()
        for r, s in ((ra, sa), (rb, sb)):
            await r.close()
            await s.close()
        # B restarts and finds the id it had reached: nothing is applied twice from the stream
        b2, sb2 = _node(tmp_path, "b", url)
        rb2 = DncReplicator(url, b2)
        assert await rb2.catch_up() == 0
        assert n1 in b2.lists.dnc_s and b2.state.reports.distinct_reporters(bad, T0.timestamp(), 7 * 86400) == 3
        await rb2.close()
        await sb2.close()
    asyncio.run(main())


def test_journal_ends_in_stream_order_when_changes_cross(tmp_path, url):
    """B's HUY DNC reaches the stream first, A's DK DNC (journalled on A before B's entry arrived)
    second: after A restarts, the number is on DNC on both nodes, as the stream says."""
    from engine.state.replication import STREAM, DncReplicator
    N = 84912000001

    async def main():
        A, B = _lists_node(tmp_path, "A"), _lists_node(tmp_path, "B")
        ra, rb = DncReplicator(url, A), DncReplicator(url, B)
        B.store.append_delta("remove", N, "SV"); B.lists.remove_dnc(N, "SV"); await rb._publish_all()
        A.store.append_delta("add", N, "SV"); A.lists.add_dnc(N, "SV"); await ra._publish_all()
        for r in (ra, rb):
            r._apply(await r.redis.xrange(STREAM, min="-"))
        out = []
        for P in (A, B):
            P.lists = ListStore(P.store.dir).load()
            r2 = DncReplicator(url, P)
            await r2.catch_up(2.0)
            out.append(P.lists.in_dnc(N, "S"))
            await r2.close()
        await ra.close(); await rb.close()
        return out
    assert asyncio.run(main()) == [True, True]


def test_an_entry_whose_journal_write_fails_is_read_again(tmp_path, monkeypatch):
    """The stream id moves on only after the entry is journalled: a failed append leaves it to be
    re-read, so a restart still has the change."""
    import msgpack
    from engine.state.replication import DncReplicator
    P = _lists_node(tmp_path, "A")
    r = DncReplicator("redis://127.0.0.1:1/0", P)          # _apply needs no server
    entry = (b"1-0", {b"node": b"other", b"t": b"0", b"d": msgpack.packb([["add", "SV", [84912000001]]])})
    real = P.store.append_replicated
    monkeypatch.setattr(P.store, "append_replicated", lambda ch: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError):
        r._apply([entry])
    assert r.last_id == "0" and not (P.store.dir / "lists" / "dnc.stream-id").exists()
    monkeypatch.setattr(P.store, "append_replicated", real)
    r._apply([entry])                                      # what follow() reads again
    assert r.last_id == "1-0"
    assert ListStore(P.store.dir).load().in_dnc(84912000001, "S")



def test_an_entry_whose_journal_write_fails_is_not_in_force_and_a_reload_meanwhile_publishes_no_removal(
        tmp_path, monkeypatch):
    """Journalled first, then in force (as a 5656 command is): another node's DK DNC whose journal write failed (a
    full disk) was already in this node's lists; a lists reload before it was read again (`ctl reload lists --full`,
    a compaction, any reload while the dnc list runs on its .prev) read the files without it and published the
    difference, a removal of that registration, to every node (the one that confirmed it included)."""
    import msgpack
    from engine.serve_reload import reload_lists
    from engine.state.replication import DncReplicator
    P = _lists_node(tmp_path, "A")
    r = P.replicator = DncReplicator("redis://127.0.0.1:1/0", P)      # nothing is published: no server needed
    monkeypatch.setattr(r, "_soon", lambda: None)
    entry = (b"1-0", {b"node": b"other", b"t": b"0", b"d": msgpack.packb([["add", "SV", [84912000001]]])})
    real = P.store.append_replicated
    monkeypatch.setattr(P.store, "append_replicated", lambda ch: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError):
        r._apply([entry])
    assert not P.lists.in_dnc(84912000001, "S")         # not journalled: not in force either
    assert asyncio.run(reload_lists(P, full=True)) is None
    assert [(op, ch, list(b)) for seg in r.out for op, ch, b in seg.runs()] == []
    monkeypatch.setattr(P.store, "append_replicated", real)
    r._apply([entry])                                   # what follow() reads again
    assert P.lists.in_dnc(84912000001, "S") and P.lists.in_dnc(84912000001, "V")
    assert ListStore(P.store.dir).load().in_dnc(84912000001, "V")

def test_what_waits_for_an_unreachable_server_is_bounded_and_then_published(tmp_path, url, monkeypatch):
    """Redis away: DNC changes wait as net sets (a number changed again and again is held once, with its
    last change), a snapshot's difference as bitmaps, 5656 reports up to MAX_PENDING_REPORTS (the oldest
    leave the queue, counted). Back: the other node ends in the state this node has, in stream order."""
    import engine.state.replication as R
    from engine.lists.sets import Lists
    monkeypatch.setattr(R, "MAX_PENDING_REPORTS", 5)
    monkeypatch.setattr(R, "CHUNK", 1000)

    async def main():
        A, B = _lists_node(tmp_path, "A"), _lists_node(tmp_path, "B")
        down = R.DncReplicator(url, A, client=_Down(), reader=_Down())
        ra, rb = R.DncReplicator(url, A), R.DncReplicator(url, B)
        ra.node = down.node
        for i in range(3000):                           # 1,000 numbers, each added, removed, added again
            for op in ("add", "remove", "add"):
                down.publish(op, 84912000000 + i % 1000, "SV")
        down.publish("remove", 84912000007, "V")
        old, new = Lists(), Lists()
        new.dnc_s.update(range(84913000000, 84913005000))    # a CLI import of 5,000 numbers
        assert down.publish_diff(old, new) == 5000
        down.publish("add", 84912999999, "S")           # journalled after the import: a third segment
        for k in range(8):
            down.publish_report({"kind": "S", "reported": "+84987654321", "reporter": f"+8491200{k:04d}",
                                 "time": "2026-12-01T00:00:00Z"})

        def waiting():
            assert [c.j for c in down.out] == [True, False, True]
            assert down.pending() == 1000 * 2 + 5000 + 1     # S and V of 1,000 numbers, the import, one more
            assert len(down.out_reports) == 5 and down.stats["reports_dropped"] == 3
        waiting()
        await asyncio.sleep(0.05)                       # the first attempt fails: everything waits again, in order
        assert down.stats["errors"] >= 1
        down._pub_task.cancel()                         # (in its back-off sleep, the queue restored)
        await asyncio.gather(down._pub_task, return_exceptions=True)
        waiting()
        # the server is back (the same node's queue moved to a reachable client)
        ra.out, ra.out_reports, down.out, down.out_reports = down.out, down.out_reports, [], R.deque()
        await ra._publish_all()
        assert not ra.out and not ra.out_reports and ra.stats["published"] == 7001
        got = await rb.redis.xrange(R.STREAM, min="-")
        assert all(len(n) <= 1000 for _e, f in got if b"d" in f for _op, _ch, n in msgpack.unpackb(f[b"d"]))
        rb._apply(got)
        L = B.lists
        assert all(84912000000 + i in L.dnc_s for i in range(1000)) and 84912000007 not in L.dnc_v
        assert 84912000008 in L.dnc_v and 84913004999 in L.dnc_s and 84912999999 in L.dnc_s
        await down.close(); await ra.close(); await rb.close()
    import msgpack
    asyncio.run(main())


def test_a_clean_stop_while_the_server_is_away_keeps_what_it_could_not_publish(tmp_path, url):
    """Probe round 2: a DK DNC confirmed on node A while Redis was away, then A stopped (a deploy): the
    change and the 5656 report are saved in A's data dir and published by A's next start; B gets them."""
    import engine.state.replication as R

    async def main():
        A, B = _lists_node(tmp_path, "A"), _lists_node(tmp_path, "B")
        down = R.DncReplicator(url, A, client=_Down(), reader=_Down())
        down.publish("add", 84912000042, "S")
        down.publish_report({"kind": "S", "reported": "+84987654321", "reporter": "+84912000042",
                             "time": "2026-12-01T00:00:00Z"})
        await asyncio.sleep(0.05)                       # its publishing task fails and waits to retry
        await down.close()                              # stops it, tries 2 s, saves the rest
        saved = list((A.store.dir / "lists").glob("dnc-unpublished.*.msgpack"))
        assert len(saved) == 1 and not down.out and down.stats["errors"] >= 1
        again = R.DncReplicator(url, A)                 # A starts again, the server is back
        assert again.load_unpublished() == 1
        lists = A.store.dir / "lists"
        assert not list(lists.glob("dnc-unpublished.*.msgpack")) and len(list(lists.glob("*.claimed.*"))) == 1
        await again._publish_all()
        assert not list(lists.glob("dnc-unpublished.*"))       # published: the claimed file is gone
        assert again.stats["published"] == 1 and again.stats["reports_published"] == 1
        rb = R.DncReplicator(url, B)
        got = await rb.redis.xrange(R.STREAM, min="-")
        assert [json.loads(f[b"r"])["reporter"] for _e, f in got if b"r" in f] == ["+84912000042"]
        rb._apply([(e, f) for e, f in got if b"d" in f])
        assert 84912000042 in B.lists.dnc_s
        await again.close(); await rb.close()
    asyncio.run(main())


def test_unpublished_files_are_claimed_once_and_a_broken_one_is_set_aside(tmp_path, url):
    import engine.state.replication as R

    async def main():
        A = _lists_node(tmp_path, "A")
        r1 = R.DncReplicator(url, A)
        r1.publish("remove", 84912000043, "V")
        r1._pub_task = None
        p = r1.save_unpublished()
        (p.parent / "dnc-unpublished.1.x.msgpack").write_bytes(b"\xc1 not msgpack")
        r1.out.clear()
        r2, r3 = R.DncReplicator(url, A), R.DncReplicator(url, A)
        assert r2.load_unpublished() + r3.load_unpublished() == 1             # one claims it
        assert (p.parent / "dnc-unpublished.1.x.msgpack.unreadable").exists()
        # a process that claimed a file and died before publishing it: the next start claims it again
        claimed = next(p.parent.glob("*.claimed.*"))
        orphan = claimed.with_name(claimed.name.split(".claimed.")[0] + ".claimed.999999999")
        claimed.rename(orphan)
        r4 = R.DncReplicator(url, A)
        assert r4.load_unpublished() == 1 and not orphan.exists()
        r4.published_all()
        assert not list(p.parent.glob("dnc-unpublished.*.msgpack*claimed*"))
        for r in (r1, r2, r3, r4):
            await r.close()
    asyncio.run(main())


def test_close_during_a_publish_sends_each_report_once(tmp_path, url):
    """A stop while a batch is going out: what went out already leaves the queue (reports are appended by the
    other nodes: one sent twice would be counted twice)."""
    import engine.state.replication as R
    import redis.asyncio as aioredis

    class Slow:
        def __init__(self):
            self.real = aioredis.from_url(url)

        async def xadd(self, *a, **k):
            await asyncio.sleep(0.05)
            return await self.real.xadd(*a, **k)

        async def aclose(self):
            await self.real.aclose()

    async def main():
        A = _lists_node(tmp_path, "A")
        r = R.DncReplicator(url, A, client=Slow())
        for k in range(5):
            r.publish_report({"kind": "S", "reported": "+84987654321", "reporter": f"+8491200{k:04d}",
                              "time": "2026-12-01T00:00:00Z"})
        await asyncio.sleep(0.12)                       # two or three are out
        await r.close()
        got = await aioredis.from_url(url).xrange(R.STREAM, min="-")
        reporters = [json.loads(f[b"r"])["reporter"] for _e, f in got if b"r" in f]
        assert sorted(reporters) == [f"+8491200{k:04d}" for k in range(5)]
    asyncio.run(main())
