"""A server that lost its keys while every process had its batch script loaded (FLUSHALL, FLUSHDB, keys evicted:
the script cache stays) is said at the next batch (README, Shared state: "lost its keys"). Before, it was looked
for only when a process loaded the script again (NOSCRIPT after a restart): a FLUSHALL under running nodes reset
every cap and nothing said so."""
import asyncio
import logging

from .redis_helpers import RedisServer
from .redis_state_helpers import _ad, _judge, _node


def test_a_flushall_under_running_nodes_is_said(tmp_path, caplog):
    srv = RedisServer(tmp_path / "r")

    async def main():
        a, sa = _node(tmp_path, "a", srv.url)
        await sa.start()
        assert [(await _judge(a, _ad(i)))[0] for i in range(3)] == ["allow"] * 3
        c = srv.client()
        c.flushall()
        assert c.script_exists(sa._sha) == [True]      # (no NOSCRIPT: the script stays loaded)
        c.close()
        got = [(await _judge(a, _ad(10 + i, "0912000555")))[0] for i in range(2)]
        await sa.close()
        return got, sa
    try:
        with caplog.at_level(logging.INFO, logger="telfilter"):
            got, sa = asyncio.run(main())
    finally:
        srv.stop()
    assert got == ["allow"] * 2
    assert sa.stats["keyspace_lost"] == 1, sa.stats
    assert "lost its keys" in caplog.text
