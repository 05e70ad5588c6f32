"""`--state redis://…`: a count given back (an ad the SMSC refused, Pipeline.refund) whose batch timed out without
reaching the server -- RECONCILE then says it never ran, and now never will -- is given back with a later batch. Found
by a review of the catch-up (eed4513): the reconcile caught up the counts of such a batch but dropped its give-backs
(_catch_up keeps no REMOVE), so the refunded ad kept its count on the server and the recipient lost one ad of the
day's 3 on every node. (The timeout is simulated: the request lost on its way, as a connection that dies can lose
it.)"""
import asyncio

from .redis_helpers import RedisServer
from .test_redis_fail_closed_timeout import _settle
from .test_redis_fail_open_caps import _ad, _node
from .test_redis_fail_open_catch_up import _quiet


def test_a_give_back_whose_batch_timed_out_and_never_ran_is_sent_again(tmp_path):
    srv = RedisServer(tmp_path / "redis")
    try:
        async def main():
            a, sa = _node(tmp_path / "a", srv.url + "?timeout=0.3&on_error=open")
            await sa.start()
            v = await _settle(a, _ad(1))
            assert v.action.name == "ALLOW" and v.charged and sa.stats["fail_open"] == 0
            real = sa._eval

            async def lost(*args):          # the request never reached the server; no answer came
                sa._eval = real
                raise asyncio.TimeoutError()
            sa._eval = lost
            a.refund(v, min(c[2] for c in v.charged))           # the SMSC refused it
            await asyncio.sleep(0.05)
            assert sa._unsettled
            await _quiet(sa)
            assert not sa._removes_waiting and not sa._unsettled
            b, sb = _node(tmp_path / "b", srv.url + "?timeout=0.3&on_error=open")
            await sb.start()
            acts = [(await _settle(b, _ad(2 + i))).action.name for i in range(4)]
            await sa.close()
            await sb.close()
            return acts
        acts = asyncio.run(main())
    finally:
        srv.stop()
    assert acts == ["ALLOW", "ALLOW", "ALLOW", "DROP"], acts
