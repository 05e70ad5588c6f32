"""`--state redis://…?on_error=closed` when a batch times out but the server runs it (Redis paused: SIGSTOP,
DEBUG SLEEP, a long fork): found by a pool probe (`serve --workers 2`, Redis SIGSTOP'ed for 1 s with ads in flight).
The ads of that batch were dropped STATE_UNAVAILABLE (ESME_RTHROTTLED: the sender retries), yet the script ran
when the server woke and kept their stamps: each retry was counted again, and the recipient got 2 ads of the
day's 3 (1 of 30 recipients in the probe; every message of the batch in flight). The store now asks, once the
server answers again, whether that batch ran (its answer kept under its token) and gives back the counts of the
messages it dropped; a batch that had not run by then never runs."""
import asyncio
import os
import signal
import time

from engine.state.redis_script import LUA

from .redis_helpers import RedisServer
from .test_redis_fail_open_caps import _ad, _node


async def _settle(pipe, msg):
    sh = pipe.state.shared
    f = asyncio.get_running_loop().create_future()
    sh.begin()
    sh.settle(pipe, pipe.judge(msg), lambda v: f.done() or f.set_result(v))
    return await asyncio.wait_for(f, 10)


async def _dropped_while_paused(srv, pipe):
    """An ad to another recipient first (the script is loaded), then ad 1 with the server paused (SIGSTOP) until
    its batch times out: dropped STATE_UNAVAILABLE, the batch run when the server resumes."""
    warm = _ad(0)
    warm.recipient = "0912000499"
    assert (await _settle(pipe, warm)).action.name == "ALLOW"
    os.kill(srv.proc.pid, signal.SIGSTOP)
    try:
        v = await _settle(pipe, _ad(1))
    finally:
        await asyncio.sleep(0.3)
        os.kill(srv.proc.pid, signal.SIGCONT)
    assert [h.symbol for h in v.hits] == ["STATE_UNAVAILABLE"], v.hits


def test_an_ad_dropped_fail_closed_whose_batch_ran_late_is_given_back(tmp_path):
    srv = RedisServer(tmp_path / "redis")
    try:
        async def main():
            pipe, st = _node(tmp_path, srv.url + "?timeout=0.3&on_error=closed")
            await st.start()
            await _dropped_while_paused(srv, pipe)
            await asyncio.sleep(0.5)                                        # the back-off is over
            # the sender retries: 3 ads reach the recipient, the 4th is over the cap
            acts = [(await _settle(pipe, _ad(2 + i))).action.name for i in range(4)]
            await st.close()
            return acts, st.stats
        acts, stats = asyncio.run(main())
    finally:
        srv.stop()
    assert acts == ["ALLOW", "ALLOW", "ALLOW", "DROP"], acts
    assert stats["given_back_after_timeout"] == 1 and stats["fail_closed"] == 1, stats


def test_a_batch_settled_before_it_ran_never_runs(tmp_path):
    """The reconcile wins the race against a late copy of the batch (both waiting in a paused server's buffers):
    the copy commits nothing."""
    srv = RedisServer(tmp_path / "redis")
    try:
        import msgpack
        from engine.state.redis_script import RECONCILE
        r = srv.client()
        assert r.eval(RECONCILE, 1, "tf:b:00ff") == b"-"
        msgs = msgpack.packb([[[1, 0, 3, 86400, int(time.time()), 1, 0]]])
        assert r.eval(LUA, 1, "tf:c:{x}", msgs, 60, 1, "00ff") == b""
        assert r.get("tf:c:{x}") is None
        # a batch that ran keeps its answer for the reconcile
        assert r.eval(LUA, 1, "tf:c:{x}", msgs, 60, 1, "0100") == b"1,0"
        assert r.eval(RECONCILE, 1, "tf:b:0100") == b"1,0"
        r.close()
    finally:
        srv.stop()


def test_a_timed_out_batch_is_reconciled_at_the_back_off_end_without_traffic(tmp_path):
    """Found by review: the reconcile ran only before the next batch, so with no traffic for a minute after the
    timeout (an ESME waiting that long before retrying an ESME_RTHROTTLED) the batch's answer had expired
    (BATCH_TTL) and RECONCILE took the batch for never run: the retry was counted again, the recipient got 2 ads
    of 3. Here the expiry is made at once (the tf:b: keys deleted) once the back-off is over."""
    srv = RedisServer(tmp_path / "redis")
    try:
        async def main():
            pipe, st = _node(tmp_path, srv.url + "?timeout=0.3&on_error=closed")
            await st.start()
            await _dropped_while_paused(srv, pipe)
            await asyncio.sleep(1.0)                                        # the back-off is over, no traffic
            r = srv.client()
            for k in r.keys("tf:b:*"):                                      # as BATCH_TTL would, a minute on
                r.delete(k)
            r.close()
            acts = [(await _settle(pipe, _ad(2 + i))).action.name for i in range(4)]
            await st.close()
            return acts, st.stats
        acts, stats = asyncio.run(main())
    finally:
        srv.stop()
    assert acts == ["ALLOW", "ALLOW", "ALLOW", "DROP"], acts
    assert stats["given_back_after_timeout"] == 1, stats


def test_a_count_given_back_is_kept_when_the_reconcile_before_its_batch_fails(tmp_path):
    """Found by review: the reconcile runs before the next batch, in its try; when it timed out (the server still
    paused), the batch, never sent, was taken for one that may have run, and a count given back in it (an ad the
    SMSC refused) was dropped rather than kept for when the server answers: the recipient got one ad fewer."""
    srv = RedisServer(tmp_path / "redis")
    try:
        async def main():
            pipe, st = _node(tmp_path, srv.url + "?timeout=0.3&on_error=closed")
            await st.start()
            first = await _settle(pipe, _ad(0))                             # counted on the server
            assert first.action.name == "ALLOW" and first.charged
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                v = await _settle(pipe, _ad(1))                             # times out: unsettled
                assert [h.symbol for h in v.hits] == ["STATE_UNAVAILABLE"], v.hits
                await asyncio.sleep(0.3)                                    # the back-off is over
                pipe.refund(first, first.charged[0][2])                     # the SMSC refused the first ad
                await asyncio.sleep(0.8)                                    # its batch: the reconcile times out
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
            await asyncio.sleep(1.5)
            acts = [(await _settle(pipe, _ad(2 + i))).action.name for i in range(4)]
            await st.close()
            return acts, st.stats
        acts, stats = asyncio.run(main())
    finally:
        srv.stop()
    assert acts == ["ALLOW", "ALLOW", "ALLOW", "DROP"], (acts, stats)


def test_the_retry_in_the_batch_that_reconciles_is_measured_after_the_give_back(tmp_path):
    """Found by review: the counts the reconcile gives back went out with the batch after the one that asked, so
    the sender's retry, in the batch that asked, was measured against the stamp of the ad never sent: the third
    ad of the day (two sent before) came back AD_FREQUENCY_CAP, a final refusal, then the count was given back."""
    srv = RedisServer(tmp_path / "redis")
    try:
        async def main():
            pipe, st = _node(tmp_path, srv.url + "?timeout=0.3&on_error=closed")
            await st.start()
            assert [(await _settle(pipe, _ad(i))).action.name for i in range(2)] == ["ALLOW", "ALLOW"]
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                v = await _settle(pipe, _ad(2))
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
            assert [h.symbol for h in v.hits] == ["STATE_UNAVAILABLE"], v.hits
            # the loop held (time.sleep) while the server runs the batch late and the back-off ends: the retry comes
            # before anything else flushes, and one script call reconciles and carries it
            time.sleep(0.3)
            assert time.monotonic() > st._down_until and st._unsettled
            retry = await _settle(pipe, _ad(3))
            await st.close()
            return retry, st.stats
        retry, stats = asyncio.run(main())
    finally:
        srv.stop()
    assert retry.action.name == "ALLOW", retry.hits
    assert stats["given_back_after_timeout"] == 1, stats
