"""A Redis call cut short while it fails: redis-py, cancelled mid-call, can end with the connection's error
(`ConnectionError: Connection closed by server`) instead of the cancellation. asyncio.wait_for on Python 3.11 ran
the call as a task of its own and, cancelled itself, re-raised the cancellation and never read that task's error:
a clean stop of `serve --workers 2` logged `ERROR asyncio: Task exception was never retrieved` with the
traceback (found by the crash probe, stop 59: pool.release_bind's write, cancelled by the pool's close).
engine/aiowait.wait_for reads it; the caller still gets the cancellation, a timeout or the call's own result."""
import asyncio
import gc
import logging
from types import SimpleNamespace

import pytest

from engine.aiowait import wait_for
from engine.state.pool import PoolLimits


async def _fails_when_cancelled(started):
    started.set()
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        raise ConnectionError("Connection closed by server")


class _Redis:
    def __init__(self):
        self.started = asyncio.Event()

    async def hset(self, *a):
        await _fails_when_cancelled(self.started)

    def pipeline(self, transaction=False):
        return SimpleNamespace(hdel=lambda *a: None, execute=self._execute)

    async def _execute(self):
        return []


def _unretrieved(caplog):
    gc.collect()
    return [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_the_pool_closed_while_a_release_write_fails_logs_no_unretrieved_error(caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")

    async def main():
        redis = _Redis()
        proxy = SimpleNamespace(binds={"esme1": []}, buckets={})
        pool = PoolLimits(SimpleNamespace(redis=redis, timeout=5.0), proxy)
        pool.release_bind("esme1")
        await asyncio.wait_for(redis.started.wait(), 2)
        await pool.close()
        assert not pool._releases
    asyncio.run(main())
    assert _unretrieved(caplog) == []


def test_wait_for_keeps_asyncios_answers(caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")

    async def value():
        return 7

    async def slow():
        await asyncio.sleep(10)

    async def boom():
        raise KeyError("x")

    async def main():
        assert await wait_for(value(), 1) == 7
        with pytest.raises(TimeoutError):
            await wait_for(slow(), 0.01)
        with pytest.raises(KeyError):
            await wait_for(boom(), 1)
        started = asyncio.Event()
        t = asyncio.ensure_future(wait_for(_fails_when_cancelled(started), 5))
        await started.wait()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        started.clear()                                  # a timeout whose call fails as it is cut short
        with pytest.raises((TimeoutError, ConnectionError)):
            await wait_for(_fails_when_cancelled(started), 0.01)
    asyncio.run(main())
    assert _unretrieved(caplog) == []
