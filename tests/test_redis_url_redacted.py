"""The password in `--state redis://:PASSWORD@…` is never shown (found by the Redis operations probe, `requirepass`):
it was written to the service log at every start line ("state: Redis redis://:s3cret@… (counters shared …)") and
outage line, and into the source of every STATE_UNAVAILABLE hit, i.e. the verdict log. Shown as `***` now."""
import asyncio
import logging
import tempfile
from pathlib import Path

import pytest

from engine.state.redis_store import RedisStore
from engine.state.embedded import StateError
from engine.state.url import parse_url, redacted

from .redis_helpers import RedisServer, free_port
from .redis_state_helpers import _ad, _node

SECRET = "s3cr3t-pw"


async def _start(url):
    st = RedisStore(url)
    try:
        await st.start()
        return st
    finally:
        await st.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    srv = RedisServer(tmp_path_factory.mktemp("redis-pw"), extra=("--requirepass", SECRET))
    yield srv
    srv.stop()


def test_redacted():
    assert redacted("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redacted("rediss://user:p%40ss@h:1/2?on_error=closed") == "rediss://user:***@h:1/2?on_error=closed"
    assert redacted("redis://h:1/0") == "redis://h:1/0"
    assert "pw" not in str(pytest.raises(Exception, parse_url, "redis://:pw@h:1/x").value)


def test_the_password_is_never_shown(secured, caplog):
    url = f"redis://:{SECRET}@127.0.0.1:{secured.port}/0?on_error=closed"
    assert SECRET not in parse_url(url)["url"] and "***" in parse_url(url)["url"]
    with caplog.at_level(logging.INFO, logger="telfilter"):
        asyncio.run(_start(url))
    assert "counters shared" in caplog.text and SECRET not in caplog.text
    # a server away, on_error=closed: the STATE_UNAVAILABLE hit (written to the verdict log) names the URL
    away = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0?on_error=closed&timeout=0.2"

    async def main(tmp):
        pipe, st = _node(tmp, "a", away)
        try:
            fut = asyncio.get_running_loop().create_future()
            pipe.state.shared.begin()
            pipe.state.shared.settle(pipe, pipe.judge(_ad(0)), fut.set_result)
            return await fut
        finally:
            await st.close()
    with tempfile.TemporaryDirectory() as d, caplog.at_level(logging.INFO, logger="telfilter"):
        v = asyncio.run(main(Path(d)))
    assert [h.symbol for h in v.hits][-1] == "STATE_UNAVAILABLE"
    assert all(SECRET not in h.source and SECRET not in h.detail for h in v.hits), v.hits
    assert SECRET not in caplog.text


@pytest.mark.parametrize("url", ["redis://u:Xy9+/Qz=@127.0.0.1:6379/0", "redis://:Xy9+/Qz=@127.0.0.1:6379/0",
                                 "rediss://u:Xy9?Qz=@127.0.0.1:6379/0", "redis://u:Xy9#Qz=@127.0.0.1:6379/0",
                                 "unix://u:Xy9+/Qz=@/run/redis.sock?db=0",
                                 "redis+sentinel://u:Xy9+/Qz=@h1,h2/svc/0",
                                 # (digits before the '/': no port, as an '@' after it says)
                                 "redis://u:12/Xy9Qz=@127.0.0.1:6379/0", "redis://:/Xy9Qz=@127.0.0.1:6379/0",
                                 "unix://:9/Xy9Qz=@/run/redis.sock?db=0"])
def test_a_password_with_an_unencoded_delimiter_is_refused_unshown(url):
    """A generated password (`openssl rand -base64`) holds `/`; unencoded in the URL, urlsplit ends the host part
    there and sees no password: the error ("bad port") printed the URL whole, password and all, to the service log,
    and a unix:// one was taken (its socket path `/Qz=@/run/redis.sock`) and logged at every start."""
    e = pytest.raises(StateError, parse_url, url).value
    assert "Xy9" not in str(e) and "***" in str(e) and "percent-encode" in str(e)
    assert "Xy9" not in redacted(url)


def test_an_at_sign_after_the_host_is_no_password():
    assert redacted("redis://h:6379/0?sentinel_username=a@b") == "redis://h:6379/0?sentinel_username=a@b"
    assert redacted("redis://[::1]:6379/0?x=a@b") == "redis://[::1]:6379/0?x=a@b"
    sentinels = "redis+sentinel://h1:26379,h2:26379/svc/0?sentinel_username=a@b"
    assert redacted(sentinels) == sentinels and parse_url(sentinels)["sentinel_username"] == "a@b"
    assert parse_url("redis://u:p%2Fw@h:6379/0")["password"] == "p/w"
