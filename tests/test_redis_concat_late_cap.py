"""With `--state redis://` (the shared counters) the late part of the day's third two-part ad to a recipient holds
its message's place under the advertiser's cap as it does in process (tests/test_smpp_concat_late_cap.py): it is
judged against the mirror of the server's counts, which holds its message's count."""
from engine.state import install
from engine.state.redis_store import RedisStore
from tests.test_smpp_concat_late_cap import _four_ads

from .redis_helpers import redis_server  # noqa: F401


def test_the_late_part_of_the_days_third_ad_goes_out_with_shared_counters(tmp_path, redis_server):  # noqa: F811
    redis_server.flush()

    async def shared(pipe):
        st = RedisStore(redis_server.url)
        await st.start()
        install(pipe, st)
        return st
    _, store = _four_ads(tmp_path, state=shared)
    assert store.stats.get("converted", 0) == 0         # the mirror held the three: nothing the server found
