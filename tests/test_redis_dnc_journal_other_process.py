"""A DNC change another process journals in a serving node's data dir (`telfilter check --sender 0912… --recipient
5656 --text "DK DNC" --data-dir DATA`, as the README's check row says a 5656 command changes the data dir as serve's
would) reached that node only: serve's watcher applied the journal lines it had not written, and published nothing,
so the other nodes of a `--state redis://` pool kept sending ads to the subscriber (a probe: the ad through node B
accepted). Now the lines a catch-up finds changing the lists in force are published as that node's changes; its
own lines, read again at every catch-up, change nothing and are not published again."""
import asyncio

from engine.serve_journal import catch_up_journal
from engine.state.replication import STREAM, DncReplicator

from .redis_helpers import redis_server  # noqa: F401  (the url fixture's)
from .redis_state_helpers import _lists_node, url  # noqa: F401,F811  (url: fixture)


def test_a_journal_line_another_process_wrote_reaches_the_other_nodes(tmp_path, url):  # noqa: F811
    async def main():
        A, B = _lists_node(tmp_path, "A"), _lists_node(tmp_path, "B")
        ra, rb = DncReplicator(url, A), DncReplicator(url, B)
        A.replicator = ra
        # `telfilter check` on A's data dir: a DK DNC then a HUY DNC V of another number, and a DK DNC A already has
        A.store.append_replicated([("add", 84912000777, "SV")])
        A.lists.add_dnc(84912000777, "SV")                      # (in force on A and journalled: A's own line)
        A.store.append_replicated([("add", 84912000001, "SV"), ("add", 84912000002, "SV"),
                                   ("remove", 84912000002, "V")])
        catch_up_journal(A)
        assert A.lists.in_dnc(84912000001, "S") and not A.lists.in_dnc(84912000002, "V")
        for _ in range(300):
            if not ra.out and (ra._pub_task is None or ra._pub_task.done()):
                break
            await asyncio.sleep(0.01)
        catch_up_journal(A)                                     # the same lines again: nothing more published
        await asyncio.sleep(0.05)
        got = await rb.redis.xrange(STREAM, min="-")
        rb._apply(got)
        assert B.lists.in_dnc(84912000001, "S") and B.lists.in_dnc(84912000001, "V")
        assert B.lists.in_dnc(84912000002, "S") and not B.lists.in_dnc(84912000002, "V")
        assert not B.lists.in_dnc(84912000777, "S")            # A's own line: already in force, not published
        assert ra.stats["published"] == 4, ra.stats     # 001 S V, 002 S, 002 V (its net change, removed): once each
        await ra.close()
        await rb.close()
    asyncio.run(main())
