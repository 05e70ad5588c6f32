"""`--state redis://…`: a counter key lives a window (+ TTL_SLACK) past its newest stamp, as a row of the embedded
store lives a window past its last touch, also when that stamp is ahead of the committing process's clock. After
a step back of the wall clock (NTP, `date -s`) a key's later commits are stamped at its newest second
(counters never run backwards), which is then ahead of the clock. A count key's expiry counted from that stamp;
a distinct key's (SHARED_TEMPLATE, any `distinct = …` counter) from the clock, so after a step back of more than
TTL_SLACK the key, and the values it counted, left the server while still within their window: a restart
(its mirror empty) or another node then counted that sender, template or recipient from zero."""
import msgpack
import pytest

from engine.state.redis_script import LUA, TTL_SLACK, counter_key

from .redis_helpers import RedisServer

T, WINDOW, STEP = 1_700_000_000, 100, 300


@pytest.mark.parametrize("mode", [0, 1], ids=["count", "distinct"])
def test_a_key_outlives_its_newest_stamp_by_its_window_after_a_step_back(tmp_path, mode):
    srv = RedisServer(tmp_path / "redis")
    try:
        r = srv.client()
        script = r.register_script(LUA)
        k = counter_key(f"RULE|sender|{mode}", 1)
        for i, (second, value) in enumerate([(T + STEP, 11), (T, 12)]):     # then the clock stepped back STEP s
            script(keys=[k], args=[msgpack.packb([[[1, mode, 3, WINDOW, second, 1, value]]]), TTL_SLACK, 1, f"t{i}"])
        # the newest stamp is T + STEP: counted until T + STEP + WINDOW on the committing clock, STEP + WINDOW from now
        assert r.pttl(k) > (STEP + WINDOW + TTL_SLACK - 5) * 1000, r.pttl(k)
        r.close()
    finally:
        srv.stop()
