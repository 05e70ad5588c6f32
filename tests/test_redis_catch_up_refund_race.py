"""`--state redis://…?on_error=open`: an ad let through while its batch timed out (the server paused, the batch run
late) and then refused by the SMSC (Pipeline.refund) is given back on the server too once _reconcile finds the batch
ran. Found by a review of the catch-up (eed4513): the refund took the count from the mirror alone (SharedCounters.local
said the server had not got it), the reconcile then found the server had committed it and only marked it "on the
server": the recipient lost one ad of the day's 3 on every node."""
import asyncio
import os
import signal

from .redis_helpers import RedisServer
from .test_redis_fail_closed_timeout import _settle
from .test_redis_fail_open_caps import _ad, _node
from .test_redis_fail_open_catch_up import _quiet


def test_an_ad_refunded_while_its_timed_out_batch_was_unsettled_is_given_back_on_the_server(tmp_path):
    srv = RedisServer(tmp_path / "redis")
    try:
        async def main():
            a, sa = _node(tmp_path / "a", srv.url + "?timeout=0.3&on_error=open")
            await sa.start()
            warm = _ad(0)
            warm.recipient = "0912000499"
            assert (await _settle(a, warm)).action.name == "ALLOW"           # (the script is loaded)
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                v = await _settle(a, _ad(1))                                 # times out: let through fail-open
                assert v.action.name == "ALLOW" and v.charged and sa._unsettled
                a.refund(v, min(c[2] for c in v.charged))                    # the SMSC refused it
            finally:
                await asyncio.sleep(0.3)
                os.kill(srv.proc.pid, signal.SIGCONT)                        # the batch runs late
            await _quiet(sa)
            b, sb = _node(tmp_path / "b", srv.url + "?timeout=0.3&on_error=open")
            await sb.start()
            acts = [(await _settle(b, _ad(2 + i))).action.name for i in range(4)]
            await sa.close()
            await sb.close()
            return acts
        acts = asyncio.run(main())
    finally:
        srv.stop()
    # nothing went out to the recipient before: B may send the day's 3
    assert acts == ["ALLOW", "ALLOW", "ALLOW", "DROP"], acts
