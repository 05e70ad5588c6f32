"""A hand-over of held receipts (engine/state/receipt_handover.py) whose answer never came -- Redis paused past
the call's timeout, the script run once it resumed -- must not leave the receipts both on the account's list and
held here: the next hand-over asks the server whether that call ran (its token) before it offers them again.
Before, they were put back in the held queue and pushed a second time, so the ESME got each twice (a probe:
`serve --workers 2`, Redis SIGSTOPped 4 s under 240 submit_sm/s, 2 receipts delivered twice)."""
import asyncio

from engine.smpp_proxy.codec import pdu as P

from .redis_helpers import redis_server  # noqa: F401
from .test_redis_receipts import Pool, _ids, _receive, _submitted_ids, url  # noqa: F401
from .test_smpp_proxy import wait


class _LosesTheFirstAnswer:
    """The hand-over script, run on the server, whose first answer is lost (as a timeout after the server ran it)."""

    def __init__(self, script):
        self.script, self.lost = script, 0

    async def __call__(self, *a, **k):
        n = await self.script(*a, **k)
        if not self.lost:
            self.lost = n
            raise asyncio.TimeoutError("the answer never came")
        return n


def test_a_hand_over_whose_answer_is_lost_delivers_each_receipt_once(tmp_path, url):  # noqa: F811
    with Pool(tmp_path, url) as pool:
        shared = pool.shared[0][2]
        shared._push = lossy = _LosesTheFirstAnswer(shared._push)
        pool.sim.receipts_elsewhere = False
        tx = pool.esme(0, P.BindTransmitter)            # no receiver on proxy 0: its receipts are handed over
        tx.submit(3)
        ids = _submitted_ids(tx, 3)
        assert wait(lambda: lossy.lost > 0, 5)          # on the list, the answer lost
        rx = pool.esme(1, P.BindReceiver)
        got = _receive(rx, 3)
        assert _ids(got) == ids
        assert _receive(rx, 1, seconds=3.0) == []       # not a second time (several beats later)
        assert wait(lambda: not pool.proxies[0].held.get("esme1"), 5)


def test_a_stop_asks_about_a_hand_over_whose_answer_is_lost_before_the_held_receipts_are_saved(tmp_path, url):  # noqa: F811
    """The stop saves the held queue for the next start: receipts a lost hand-over put on the list were saved too,
    and delivered from both."""
    import time

    from engine.state.receiptq import queue_key
    with Pool(tmp_path, url) as pool:
        shared = pool.shared[0][2]
        shared._push = lossy = _LosesTheFirstAnswer(shared._push)
        pool.sim.receipts_elsewhere = False
        tx = pool.esme(0, P.BindTransmitter)
        tx.submit(3)
        _submitted_ids(tx, 3)
        assert wait(lambda: lossy.lost > 0, 5)
        shared._down_until = time.monotonic() + 100        # no hand-over (nor its question) before the stop
        assert wait(lambda: pool.proxies[0].held_total == 3, 5)    # the three held here (the lost ones again)
        pool.call(shared.close())
        import redis
        on_list = redis.Redis.from_url(url).llen(queue_key("esme1"))
        assert on_list == lossy.lost and pool.proxies[0].held_total == 3 - on_list
