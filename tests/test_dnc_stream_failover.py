"""The DNC follower after a failover that lost stream entries (engine/state/replication.py, `_rejoin`)."""
import asyncio
import time

import msgpack

from engine.numbers import normalise_number
from engine.state.replication import STREAM, DncReplicator
from engine.verdict import Message

from .redis_helpers import redis_server  # noqa: F401
from .redis_state_helpers import T0, _node


def _mo(sender, text):
    return Message(sender, "5656", text, T0, "", "mo")


async def _until(pred, timeout, what):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.02)


def test_a_follower_past_the_new_primarys_stream_reads_what_it_adds(tmp_path, redis_server):  # noqa: F811
    """Asynchronous replication loses the old primary's last entries in a failover; a node that had read them has a
    last id past everything the new primary has, and XREAD after it skipped the new primary's entries whose ids are
    lower (its clock behind the old one's, or the same millisecond): a DNC registration never reached that node.
    Here node b read two entries the server lost (put at the old primary's clock, 60 s ahead), then node a registers
    a number: b has it, and has nothing twice (the entries both saw are not applied again)."""
    redis_server.flush()
    url = redis_server.url

    async def main():
        a, _sa = _node(tmp_path, "a", url)
        b, _sb = _node(tmp_path, "b", url)
        ra, rb = DncReplicator(url, a), DncReplicator(url, b)
        a.replicator, b.replicator = ra, rb
        for r in (ra, rb):
            await r.catch_up()
        tasks = [asyncio.ensure_future(r.follow()) for r in (ra, rb)]
        n1 = normalise_number("0912000941")
        a.judge(_mo("0912000941", "DK DNC"))
        await _until(lambda: n1 in b.lists.dnc_s, 5, "replicated before the failover")
        seen = rb.stats["applied_remote"]
        # the old primary, 60 s ahead, took two more entries and b read them; the new primary never got them
        ahead = int(time.time() * 1000) + 60_000
        lost = [(f"{ahead}-{i}".encode(), {b"node": b"x", b"t": b"1", b"d": msgpack.packb([])}) for i in range(2)]
        tasks[1].cancel()                               # (its XREAD under way was sent with the id before them)
        rb._apply(lost)
        tasks[1] = asyncio.ensure_future(rb.follow())
        n2 = normalise_number("0912000942")
        a.judge(_mo("0912000942", "DK DNC"))            # on the new primary, below b's last id
        await _until(lambda: n2 in b.lists.dnc_s, 10, "a registration made after the failover reaches node b")
        await asyncio.sleep(0.3)
        assert rb.stats["applied_remote"] == seen + 2 + 1     # the lost two, then n2 alone (n1 not again)
        n3 = normalise_number("0912000943")
        a.judge(_mo("0912000943", "DK DNC"))
        await _until(lambda: n3 in b.lists.dnc_s, 5, "and the ones after it")
        assert rb.last_id == (await rb.redis.xrevrange(STREAM, count=1))[0][0].decode()
        for t in tasks:
            t.cancel()
        for r in (ra, rb):
            await r.close()
    asyncio.run(main())


def test_a_node_restarted_past_the_stream_reads_it_again(tmp_path, redis_server):  # noqa: F811
    """The same after a restart: the id file is past the stream, and no entry applied before the restart is known
    (in memory only): the stream, shorter than RECENT, is read again from its start (idempotent), the new entry
    included."""
    redis_server.flush()
    url = redis_server.url

    async def main():
        a, _sa = _node(tmp_path, "a", url)
        b, _sb = _node(tmp_path, "b", url)
        ra = DncReplicator(url, a)
        a.replicator = ra
        await ra.catch_up()
        n1, n2 = normalise_number("0912000951"), normalise_number("0912000952")
        a.judge(_mo("0912000951", "DK DNC"))
        a.judge(_mo("0912000952", "DK DNC"))
        await _until(lambda: ra.stats["published"] >= 1 and not ra.pending(), 5, "published")
        # node b's id file: what it read from the old primary, 60 s ahead, before it restarted
        (tmp_path / "b" / "lists" / "dnc.stream-id").write_text(f"{int(time.time() * 1000) + 60_000}-0\n")
        rb = DncReplicator(url, b)
        await rb.catch_up()
        task = asyncio.ensure_future(rb.follow())
        await _until(lambda: n1 in b.lists.dnc_s and n2 in b.lists.dnc_s, 10, "node b reads the stream again")
        assert rb.stats["rejoined"] == 1
        task.cancel()
        for r in (ra, rb):
            await r.close()
    asyncio.run(main())


def test_a_rejoin_is_kept_so_the_next_start_does_not_find_it_again(tmp_path, redis_server):  # noqa: F811
    """A server restarted empty (no tf:dnc at all) under a node whose id file is past it: the follower reads on from
    the start, and keeps that in its id file. It kept it in memory only: every later start (until some DNC change
    came) found the file past the end again and warned, each worker, that a failover had lost entries."""
    redis_server.flush()
    url = redis_server.url

    async def main():
        b, _sb = _node(tmp_path, "b", url)
        (tmp_path / "b" / "lists" / "dnc.stream-id").write_text(f"{int(time.time() * 1000) + 60_000}-0\n")
        rb = DncReplicator(url, b)
        await rb.catch_up()
        task = asyncio.ensure_future(rb.follow())
        await _until(lambda: rb.stats["rejoined"] == 1, 5, "the follower rejoins the empty stream")
        task.cancel()
        await rb.close()
        again = DncReplicator(url, b)               # the next start
        await again.catch_up()
        await again._rejoin()
        assert again.stats["rejoined"] == 0 and again.last_id == "0"
        await again.close()
    asyncio.run(main())
