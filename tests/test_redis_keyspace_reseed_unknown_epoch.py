"""The re-seed grace (engine/state/redis_reseed.py) when the batch that finds the keyspace mark gone comes from a
process that knows no epoch: one that started while Redis was away (its start's check never ran). The server may have
lost every other process's counts all the same (restarted empty): the grace must begin, so that a message under an
enforced cap waits until the others have put their counts back. Before, such a batch set the mark without the grace:
its ad to a recipient another node had capped went through at once, a 4th ad in the day."""
import asyncio
import time

from .redis_helpers import RedisServer, ports_in
from .redis_state_helpers import _ad, _judge, _node
from .test_redis_keyspace_reseed import _stop, _until

R = "0912000666"


def test_a_node_started_while_redis_was_away_waits_for_the_others_counts(tmp_path):
    port = ports_in(26000, 26999, 1)[0]
    box = [RedisServer(tmp_path / "r1", port=port)]

    async def main():
        (b, sb) = _node(tmp_path, "b", box[0].url)
        await sb.start()
        runs = [asyncio.ensure_future(sb.run())]
        (a, sa) = _node(tmp_path, "a", box[0].url)
        try:
            got = [(await _judge(b, _ad(i, R)))[0] for i in range(3)]
            box[0].stop()                       # restarted without persistence: every key gone
            await sa.start()                    # A starts meanwhile: the server away, no epoch learned
            assert sa._epoch is None and sa.stats["errors"] >= 1
            box[0] = RedisServer(tmp_path / "r2", port=port)
            await _until(lambda: time.monotonic() >= sa._down_until, "A's back-off over")
            # A's ad is the first batch to find the mark gone (B's watch only looks every 0.25 s)
            fourth = asyncio.ensure_future(_judge(a, _ad(10, R)))
            runs.append(asyncio.ensure_future(sa.run()))
            got.append(await asyncio.wait_for(fourth, 10))
            await _until(lambda: sb.stats["keyspace_lost"], "B sees the loss")
            return got, dict(sa.stats), dict(sb.stats)
        finally:
            await _stop(runs, sa, sb)
    try:
        got, a_stats, b_stats = asyncio.run(main())
    finally:
        box[0].stop()
    assert got[:3] == ["allow"] * 3
    assert got[3] == ("drop", ["AD_FREQUENCY_CAP"]), (got, a_stats, b_stats)
    assert a_stats["reseed_waits"] >= 1
