"""Giving an ad's count back (Pipeline.refund) on a shared Redis server: ads the SMSC refused are given
back on the server; a cap lowered and raised again holds there too; a count the server never had (counted
fail-open, in the mirror only) is given back to the mirror only; a refund leaves the mirror at once; a server that
lost the batch script is sent it again; a count given back while the server is away reaches it later; and the
client never sends a batch twice. Needs redis-server (tests/redis_helpers.py)."""
import asyncio
import time

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.harness import ProxyHarness
from tests.redis_helpers import redis_server  # noqa: F401 (fixture)
from tests.test_smpp_proxy import raw_session
from tests.test_smpp_refund_smsc_answers import NOON, SENDERS, _ad, _rules_with_cap, _send, refusing  # noqa: F401,F811  (refusing: fixture)


def test_ads_the_smsc_refused_are_given_back_on_the_shared_store(tmp_path, refusing, redis_server):  # noqa: F811
    from engine.state import install
    from engine.state.redis_store import RedisStore
    redis_server.flush()
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    pipe = build(data_dir=d, with_model=False)
    h = ProxyHarness(pipe, clock=lambda: NOON).start()
    try:
        async def setup():
            install(pipe, RedisStore(redis_server.url))
        h.call(setup())
        s, _ = raw_session(h)
        h.sim.reject = C.ESME_RTHROTTLED
        for i in range(4):
            assert _send(s, _ad(10 + i, "84912777009")) == C.ESME_RTHROTTLED
        h.sim.reject = 0
        for i in range(3):
            assert _send(s, _ad(20 + i, "84912777009")) == 0
        time.sleep(0.1)                                             # the last commit settled on the server
        assert _send(s, _ad(30, "84912777009")) != 0
        assert len(h.sim.submits()) == 3
        # the server's own record: three stamps (a fresh process with an empty mirror is refused too)
        import redis
        r = redis.Redis.from_url(redis_server.url)
        vals = [r.get(k) for k in r.scan_iter("tf:c:*")]
        assert sorted(len(v) for v in vals if v) == [12], vals
    finally:
        h.stop()


def test_a_cap_lowered_and_raised_again_on_the_shared_store(tmp_path, redis_server):  # noqa: F811
    """(The server trims a key only as it adds to it, and under a drop rule an add under the lowered cap finds
    only stamps out of the window to trim: this holds by construction, checked end to end.)"""
    from tests.redis_state_helpers import _node, _judge, _ad as _sad
    redis_server.flush()

    async def main():
        a, sa = _node(tmp_path, "a", redis_server.url)
        b, sb = _node(tmp_path, "b", redis_server.url)
        got = [await _judge(a, _sad(i)) for i in range(3)]
        for p in (a, b):
            assert p.reload_rules(_rules_with_cap(tmp_path, 2)) == []
        got.append(await _judge(b, _sad(3)))
        got.append(await _judge(b, _sad(4)))               # b's own mirror is empty: the server decides
        for p in (a, b):
            assert p.reload_rules(_rules_with_cap(tmp_path, 3)) == []
        got.append(await _judge(b, _sad(5)))
        await sa.close()
        await sb.close()
        return [g[0] for g in got]
    assert asyncio.run(main()) == ["allow"] * 3 + ["drop"] * 3


# ------------------------------------------------------------------ shared store

class _Blip:
    """The real client; `fail` makes the next evalsha raise (a reset connection)."""
    def __init__(self, real):
        self.real, self.fail = real, False

    async def evalsha(self, *a):
        if self.fail:
            self.fail = False
            raise ConnectionError("connection reset (test)")
        return await self.real.evalsha(*a)

    def __getattr__(self, n):
        return getattr(self.real, n)


async def _judged_fail_open(pipe, store, msg):
    """`msg` judged on `pipe` while its store's Redis fails every call (the fail-open path: counted in the mirror
    only): (its verdict, the failing client, `fail` to be turned off)."""
    blip = store.redis = _Blip(store.redis)
    blip.fail = True
    fut = asyncio.get_running_loop().create_future()
    store.begin()
    store.settle(pipe, pipe.judge(msg), fut.set_result)
    v = await fut
    assert store.stats["fail_open"] == 1 and v.charged
    return v, blip


def test_a_count_the_server_never_had_is_given_back_to_the_mirror_only(tmp_path, redis_server):  # noqa: F811
    """Node a let an ad through fail-open (only its mirror counted it); node b then sent three; a's ad is
    refused: giving it back must not take one of b's counts from the server."""
    from tests.redis_state_helpers import _node, _judge, _ad as _sad
    redis_server.flush()

    async def main():
        a, sa = _node(tmp_path, "a", redis_server.url)
        b, sb = _node(tmp_path, "b", redis_server.url)
        # (b checks the flushed server as serve's start does: its keyspace mark set, and b's ads below not held by
        # the re-seed grace that begins with it -- held, a's count would reach the server before them)
        await sb.start()
        while await sb.redis.pttl("tf:reseed") > 0:
            await asyncio.sleep(0.02)
        m, _ = await _judged_fail_open(a, sa, _sad(0))
        for i in range(3):
            assert (await _judge(b, _sad(1 + i)))[0] == "allow"
        await asyncio.sleep(0.6)                            # the back-off is over
        a.refund(m, m.charged[0][2])
        await asyncio.sleep(0.2)
        got = await _judge(a, _sad(6))
        await sa.close()
        await sb.close()
        return got
    got = asyncio.run(main())
    assert got[0] == "drop", got


def test_a_refund_leaves_the_mirror_at_once(tmp_path, redis_server):  # noqa: F811
    """The ESME's retry comes right after its refusal: the mirror must not still hold the refused count
    while the server's answer is on its way."""
    from tests.redis_state_helpers import _node, _judge, _ad as _sad
    redis_server.flush()

    async def main():
        a, sa = _node(tmp_path, "a", redis_server.url)
        vs = []
        for i in range(3):
            fut = asyncio.get_running_loop().create_future()
            sa.begin()
            v = a.judge(_sad(i))
            sa.settle(a, v, fut.set_result)
            vs.append(await fut)
        a.refund(vs[2], vs[2].charged[0][2])
        local = a.judge(_sad(5), commit=False)             # judged before any batch went to the server
        await asyncio.sleep(0.2)
        got = await _judge(a, _sad(6))                      # and the server agrees
        await sa.close()
        return local.symbols, got
    local, got = asyncio.run(main())
    assert "AD_FREQUENCY_CAP" not in local and got[0] == "allow", (local, got)


def test_a_server_that_lost_the_script_is_sent_it_again(tmp_path, redis_server):  # noqa: F811
    """After a Redis restart (or failover, or SCRIPT FLUSH) the server no longer has the batch script: the store
    loads it again and the batch counts on the server, never fail-open (a 4th ad got through after every restart:
    redis-py's NoScriptError does not say NOSCRIPT)."""
    import redis
    from tests.redis_state_helpers import _node, _judge, _ad as _sad
    redis_server.flush()

    async def main():
        a, sa = _node(tmp_path, "a", redis_server.url)
        b, sb = _node(tmp_path, "b", redis_server.url)
        assert (await _judge(a, _sad(0)))[0] == "allow"
        redis.Redis.from_url(redis_server.url).script_flush()
        got = [await _judge(a, _sad(1)), await _judge(b, _sad(2)), await _judge(b, _sad(3))]
        stats = dict(sa.stats)
        await sa.close()
        await sb.close()
        return got, stats
    got, stats = asyncio.run(main())
    assert [g[0] for g in got] == ["allow", "allow", "drop"] and stats["fail_open"] == 0, (got, stats)


class _Down(_Blip):
    """The real client; while `down`, every script call fails as a refused connection does (never sent)."""
    down = False

    async def evalsha(self, *a):
        if self.down:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
        return await self.real.evalsha(*a)


def test_a_count_given_back_while_the_server_is_away_reaches_it_later(tmp_path, redis_server):  # noqa: F811
    """The SMSC refused A while Redis was unreachable: the count is given back on the server once it answers
    (it was lost, and the advertiser could send that recipient only 2 ads that day)."""
    from tests.redis_state_helpers import _node, _judge, _ad as _sad
    redis_server.flush()

    async def main():
        a, sa = _node(tmp_path, "a", redis_server.url)
        b, sb = _node(tmp_path, "b", redis_server.url)
        cut = sa.redis = _Down(sa.redis)
        fut = asyncio.get_running_loop().create_future()
        sa.begin()
        m = a.judge(_sad(0))
        sa.settle(a, m, fut.set_result)
        m = await fut
        cut.down = True
        a.refund(m, m.charged[0][2])
        await asyncio.sleep(0.05)
        assert sa._removes_waiting
        cut.down = False
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not sa._removes_waiting and not sa.busy:
                break
        got = [(await _judge(b, _sad(1 + i)))[0] for i in range(3)]
        await sa.close()
        await sb.close()
        return got
    assert asyncio.run(main()) == ["allow"] * 3


def test_the_batch_script_is_never_sent_twice_by_the_client():
    """redis-py retries a command on a timeout by default: a batch whose reply came late ran again (every count
    committed, or given back, twice: a 4th ad through a cap of 3). The store's client does not retry."""
    from engine.state.redis_store import RedisStore
    assert RedisStore("redis://127.0.0.1:1/0").redis.get_retry()._retries == 0
