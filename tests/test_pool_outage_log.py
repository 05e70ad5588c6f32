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


class _HungRedis(_Redis):
    """A server that takes every call and never answers (a hung Redis, a black-holed route)."""
    def __init__(self):
        super().__init__()
        self.asked = 0

    async def eval(self, *a):
        self.asked += 1
        await asyncio.sleep(3600)


def test_a_hung_server_costs_one_bind_the_wait_not_each():
    """Before, every bind of an outage asked the server and waited 2 x timeout (1 s by default) for nothing: 20 ESMEs
    rebinding after a link flap waited 20 s between them. After one failed question the next binds take the local
    limit (already passed) at once until a back-off has passed; a refresh that works ends it."""
    lim, _ = _limits()
    r = lim.redis = _HungRedis()
    acct = types.SimpleNamespace(system_id="acme", max_binds=2)

    async def bind():
        fut = asyncio.get_running_loop().create_future()
        lim.reserve_bind(acct, fut.set_result)
        return await fut

    async def go():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        first = await bind()                        # asks, waits 2 x timeout (0.1 s), local limit
        waited = loop.time() - t0
        t1 = loop.time()
        rest = [await bind() for _ in range(19)]    # within the back-off: not asked
        quick = loop.time() - t1
        await asyncio.sleep(0.15)                   # the back-off (0.1 s) over: the next bind asks again...
        again = await bind()
        asked_then, backoff = r.asked, lim._ask_backoff
        lim._asked_ok()                             # (a refresh that worked)
        t2 = loop.time()
        await bind()
        return first, waited, rest, quick, again, asked_then, backoff, loop.time() - t2

    first, waited, rest, quick, again, asked_then, backoff, last = asyncio.run(go())
    assert first is True and waited >= 0.09
    assert rest == [True] * 19 and quick < 0.05, quick
    assert lim.stats["binds_unasked"] == 19
    assert again is True and asked_then == 2        # ... once, and its failure doubles the back-off
    assert backoff == 0.4
    assert r.asked == 3 and last >= 0.09            # after a working refresh every bind asks again


def test_binds_do_not_ask_while_the_store_backs_off():
    """The store's own failures (a batch of counts timed out) start a back-off there: binds meanwhile take the local
    limit without a question of their own that would wait a timeout too."""
    import time
    lim, _ = _limits()
    r = lim.redis = _HungRedis()
    lim.store._down_until = time.monotonic() + 60
    acct = types.SimpleNamespace(system_id="acme", max_binds=2)
    got = []
    lim.reserve_bind(acct, got.append)              # answered at once, no loop needed
    assert got == [True] and r.asked == 0 and lim.stats["binds_unasked"] == 1
