"""With `--state redis://` (the shared counters) the late part of the day's third two-part ad to a recipient holds
its message's place under the advertiser's cap as it does in process (tests/test_smpp_concat_late_cap.py): it is
judged against the mirror of the server's counts, which holds its message's count."""
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.harness import ProxyHarness
from engine.state import install
from engine.state.redis_store import RedisStore
from tests.test_smpp_concat_late_cap import HEAD, TAIL, TEN, TIMEOUT, _part, _pipe, _three_ads
from tests.test_smpp_proxy import raw_session, read_raw

from .redis_helpers import redis_server  # noqa: F401


def test_the_late_part_of_the_days_third_ad_goes_out_with_shared_counters(tmp_path, redis_server):  # noqa: F811
    redis_server.flush()
    pipe = _pipe(tmp_path)
    h = ProxyHarness(pipe, clock=lambda: TEN, settings=SmppSettings(concat_timeout=TIMEOUT)).start()
    store = None
    try:
        async def shared():
            st = RedisStore(redis_server.url)
            await st.start()
            install(pipe, st)
            return st
        store = h.call(shared())
        s, _ = raw_session(h)
        assert _three_ads(s) == (0, 0), "the third ad's late part was refused as a fourth"
        s.sendall(_part(30, 0x54, 1, HEAD))
        s.sendall(_part(31, 0x54, 2, TAIL))
        assert [read_raw(s).command_status for _ in range(2)] != [0, 0]       # the fourth: AD_FREQUENCY_CAP
        assert len(h.sim.submits()) == 6
        assert store.stats.get("converted", 0) == 0         # the mirror held the three: nothing the server found
    finally:
        if store is not None:
            h.call(store.close())
        h.stop()
