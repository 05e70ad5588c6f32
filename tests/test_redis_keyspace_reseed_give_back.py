"""A count given back (an ad the SMSC refused, a replace_sm or cancel_sm it took: Pipeline.refund / uncharge) in the
loop iteration a process learns that Redis lost its keys: the stamp left the mirror before the re-seed read it, so the
seed does not carry it, and the give-back must not take the stamp the seed puts back beside it. Two counts of one
second under one key (two ads at the same delivery second; a replacement that keeps its schedule) are where it shows:
before, the seed put one back and the give-back queued behind it took it, the recipient counted 0 instead of 1 and
another node sent it 3 more ads, 4 in the day."""
import asyncio
import os
import time

from engine.state.redis_reseed import KEYS
from engine.state.redis_script import MARK

from .redis_helpers import RedisServer, ports_in
from .redis_state_helpers import _ad, _judge, _node, _verdict
from .test_redis_keyspace_reseed import _until

R = "0912000777"


def test_a_count_given_back_as_the_loss_is_learned_is_not_taken_twice(tmp_path):
    srv = RedisServer(tmp_path / "r", port=ports_in(26000, 26999, 1)[0])

    async def main():
        (a, sa), (b, sb) = _node(tmp_path, "a", srv.url), _node(tmp_path, "b", srv.url)
        await sa.start()
        await sb.start()
        try:
            kept = await _verdict(a, _ad(0, R))
            refused = await _verdict(a, _ad(0, R))          # the same second: the SMSC refuses this one
            assert kept.action.name == refused.action.name == "ALLOW" and refused.charged
            srv.flush()
            mark = await sa.redis.eval(MARK, 2, *KEYS, os.urandom(8).hex())
            sa._epoch_is(mark.decode())                     # A learns of the loss (its watch) ...
            a.refund(refused, time.time())                  # ... and the SMSC's refusal comes in the same iteration
            await _until(lambda: not (sa._seeding() or sa.busy), "A's counts back")
            return [(await _judge(b, _ad(10 + i, R)))[0] for i in range(3)], dict(sa.stats)
        finally:
            await sa.close()
            await sb.close()
    try:
        got, stats = asyncio.run(main())
    finally:
        srv.stop()
    assert stats["keyspace_lost"] == 1 and stats["reseeded"] == 1, stats
    assert got == ["allow", "allow", "drop"], got
