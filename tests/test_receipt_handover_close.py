"""A stop of the receipt hand-over (engine/state/receipts.py `close`), without a server: it starts no new
hand-over and returns only once the one under way has ended, its unsent receipts back in the held queue, in order."""
import asyncio
import os
import time

from engine.app import build
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.server import SmppProxy
from engine.state.receipts import SharedReceipts
from engine.state.redis_store import RedisStore
from engine.verdictlog import VerdictLog


def _closing_proxy(tmp_path, accounts, n):
    """An unstarted proxy holding n receipts for each account (bound nowhere) and its SharedReceipts."""
    proxy = SmppProxy(build(data_dir=tmp_path, with_model=False), SmppSettings(), VerdictLog(open(os.devnull, "w")))
    shared = SharedReceipts(RedisStore("redis://127.0.0.1:1"), proxy)
    for a in accounts:
        for i in range(n):
            proxy.held[a].append(P.DeliverSm(sequence_number=i + 1, esm_class=4, short_message=b"id:%d" % i))
            proxy.held_total += 1
    return proxy, shared


def test_close_cancels_a_hand_over_still_running_and_waits_for_it(tmp_path):
    """Regression: close() gave up waiting and returned while the hand-over still held popped receipts,
    so serve's save_held missed them (or they were both saved and on the server)."""
    async def main():
        proxy, shared = _closing_proxy(tmp_path, ["esme1"], 3)
        started = asyncio.Event()

        async def push(keys, args):
            started.set()
            await asyncio.Event().wait()             # the server never answers
        shared._push = push
        shared.timeout = 30.0                        # the script call's own wait: longer than close's
        shared._due.add("esme1")
        shared._kick()
        await asyncio.wait_for(started.wait(), 2)
        assert proxy.held_total == 0                 # popped, on its way
        shared.timeout = 0.01                        # close waits timeout * 4 + 1 s
        t0 = time.monotonic()
        await shared.close()
        assert time.monotonic() - t0 < 3
        assert shared._job.done()
        assert proxy.held_total == 3 and len(proxy.held["esme1"]) == 3   # back in the queue, in order
        assert [r.sequence_number for r in proxy.held["esme1"]] == [1, 2, 3]
        assert proxy.stats["receipts_handed_over"] == 0
    asyncio.run(main())


def test_close_starts_no_new_hand_over(tmp_path):
    """Regression: the job went on with the next account after close() had begun."""
    async def main():
        proxy, shared = _closing_proxy(tmp_path, ["a1", "a2", "a3"], 1)
        calls = []

        async def push(keys, args):
            calls.append(keys[0])
            await asyncio.sleep(0.2)
            return len(args) - 1
        shared._push = push
        shared._due.update(["a1", "a2", "a3"])
        shared._kick()
        while not calls:
            await asyncio.sleep(0.01)
        await shared.close()
        assert shared._job.done() and len(calls) == 1
        assert proxy.held_total == 2 and proxy.stats["receipts_handed_over"] == 1
        shared._kick()                               # and nothing starts again
        assert shared._job.done()
    asyncio.run(main())
