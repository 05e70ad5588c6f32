"""A Redis outage under `serve --workers`/shared state: the pool's per-account limits refresh every second and each
bind asks the server. Before, each failure was a log line (a line a second for the length of the outage, and one per
bind); now the first is said at once, then at most every 30 s with the count, and once when Redis answers again."""
import asyncio
import logging
import types

from engine.servicelog import Trouble
from engine.state import pool


class _Pipe:
    def __init__(self, r):
        self.r = r

    def hset(self, *a):
        pass

    async def execute(self):
        if self.r.down:
            raise ConnectionError("Connection refused")


class _Redis:
    """Stands in for redis.asyncio.Redis: refuses every call while `down`."""
    def __init__(self):
        self.down = True

    def pipeline(self, transaction=False):
        return _Pipe(self)

    async def time(self):
        if self.down:
            raise ConnectionError("Connection refused")
        return 1_700_000_000, 0

    async def eval(self, *a):
        if self.down:
            raise ConnectionError("Connection refused")
        return 1


def _limits():
    proxy = types.SimpleNamespace(binds={"acme": []}, buckets={})
    store = types.SimpleNamespace(redis=_Redis(), timeout=0.05)
    return pool.PoolLimits(store, proxy), store.redis


def test_an_outage_is_said_once_then_rarely_and_its_end_once(monkeypatch, caplog):
    monkeypatch.setattr(pool, "BEAT", 0.002)
    lim, r = _limits()

    async def go():
        task = asyncio.ensure_future(lim.run())
        loop = asyncio.get_running_loop()
        end = loop.time() + 20
        while lim.stats["errors"] < 50 and loop.time() < end:  # 50 failed refreshes: 50 s of an outage at 1 s
            await asyncio.sleep(0.002)
        errors = lim.stats["errors"]
        r.down = False
        await asyncio.sleep(0.1)                    # refreshes that work
        task.cancel()
        return errors

    with caplog.at_level(logging.WARNING, logger="telfilter"):
        assert asyncio.run(go()) >= 50
    lines = [m.getMessage() for m in caplog.records if "pool limits refresh" in m.getMessage()]
    assert len(lines) == 2, lines
    assert "failed (ConnectionError: Connection refused): last shares kept" in lines[0]
    assert "works again" in lines[1] and "failures since start" in lines[1]


def test_binds_during_an_outage_are_let_through_on_the_local_limit_and_said_once(caplog):
    lim, r = _limits()
    acct = types.SimpleNamespace(system_id="acme", max_binds=2)

    async def go():
        answers = []
        for _ in range(20):
            fut = asyncio.get_running_loop().create_future()
            lim.reserve_bind(acct, fut.set_result)
            answers.append(await fut)
        return answers

    with caplog.at_level(logging.WARNING, logger="telfilter"):
        assert asyncio.run(go()) == [True] * 20
    lines = [m.getMessage() for m in caplog.records if "max_binds across the pool" in m.getMessage()]
    assert len(lines) == 1 and "local limit only" in lines[0]


def test_trouble_says_the_count_when_it_speaks_again(caplog):
    t = [0.0]
    tr = Trouble("x", every=30, clock=lambda: t[0])
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        for i in range(61):
            t[0] = i
            tr.failed("E", "c")
    lines = [m.getMessage() for m in caplog.records]
    assert len(lines) == 3                          # at 0, 30, 60
    assert "(30 times since the last such line)" in lines[1]


def test_a_flapping_redis_is_not_a_line_per_failure(caplog):
    """An overloaded Redis that answers one refresh and times out the next: each recovery said "works again" and
    made the next failure said at once, so a refresh a second that failed every other time was a line a second (50
    lines in 50 s), the outage-per-line the Trouble was for. Now failures are said by time, not by change (as
    engine/disktrouble.py does), and so is their end."""
    t = [0.0]
    tr = Trouble("x", every=30, clock=lambda: t[0])
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        for i in range(50):
            t[0] = i
            (tr.failed("E", "c") if i % 2 == 0 else tr.ok())
        t[0] = 100.0
        tr.ok()                                     # works for good: its end is said (it was not since 31)
        tr.ok()
    lines = [m.getMessage() for m in caplog.records]
    assert len(lines) == 5, lines                   # failed at 0 and 30, over at 1 and 31, and at 100
    assert "(15 times since the last such line)" in lines[2], lines
    assert "works again" in lines[-1] and "(25 failures since start)" in lines[-1], lines
