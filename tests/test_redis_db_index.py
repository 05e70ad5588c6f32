"""A database the server does not have (`--state redis://H:P/16` with Redis's default 16 databases, or a number past
any server's) is refused at start and by `config check --state`: it was taken as the server unreachable, serve
started with the counters failing open, and every batch for the process's life was an outage (SELECT refused at each
connection: no retry changes it)."""
import asyncio

import pytest

from engine.state import StateError
from engine.state.redis_check import check_url
from engine.state.redis_store import RedisStore
from engine.state.url import parse_url

from .redis_helpers import redis_server  # noqa: F401


async def _start(url):
    st = RedisStore(url)
    try:
        await st.start()
    finally:
        await st.close()


def test_a_database_the_server_does_not_have_is_a_start_up_error(redis_server):  # noqa: F811
    base = redis_server.url.rsplit("/", 1)[0]
    errors, warnings, _notes = check_url(base + "/16")
    assert errors and "no such database" in errors[0] and not warnings, (errors, warnings)
    with pytest.raises(StateError, match="no such database"):
        asyncio.run(_start(base + "/16"))
    assert not check_url(base + "/15")[0]


def test_a_database_number_past_any_server_is_a_url_error():
    for url in ("redis://h:1/2147483648", "redis+sentinel://h1/svc/99999999999999999999",
                "unix:///r.sock?db=2147483648"):
        with pytest.raises(StateError, match="database"):
            parse_url(url)
    assert parse_url("redis://h:1/2147483647")["db"] == 2147483647
