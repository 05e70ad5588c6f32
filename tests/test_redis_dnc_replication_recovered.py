"""DNC replication after Redis was away: the ERROR "DNC replication (publish) … failed … (1 numbers and 1 reports
waiting to be published; retrying)" was the last word: nothing said when the server answered again, nor whether
the waiting DK DNC reached the other nodes, so an operator reading the log after an outage could not tell. Now
the first success after failures is a WARNING "works again" saying how many numbers and reports that waited were
published."""
import asyncio
import logging

from .redis_helpers import redis_server  # noqa: F401  (the url fixture's)
from .redis_state_helpers import _Down, _lists_node, url  # noqa: F401,F811  (url: fixture)


def test_publishing_again_after_an_outage_is_said_with_what_waited(tmp_path, url, caplog):  # noqa: F811
    import engine.state.replication as R

    async def main():
        A = _lists_node(tmp_path, "A")
        r = R.DncReplicator(url, A, client=_Down())
        real = R.DncReplicator(url, A).redis
        r.publish("add", 84912000001, "SV")
        r.publish_report({"kind": "S", "reported": "+84987654321", "reporter": "+84912000002",
                          "time": "2026-12-01T00:00:00Z"})
        for _ in range(200):
            if r.stats["errors"]:
                break
            await asyncio.sleep(0.01)
        assert r.stats["errors"] and not [m for m in caplog.messages if "works again" in m]
        r.redis = real                                  # the server answers again
        for _ in range(1000):
            if not r.out and not r.out_reports:
                break
            await asyncio.sleep(0.01)
        assert not r.out and not r.out_reports
        await r.close()
        await real.aclose()
    caplog.set_level(logging.WARNING, logger="telfilter")
    asyncio.run(main())
    again = [m for m in caplog.messages if "works again" in m]
    assert len(again) == 1 and "2 numbers and 1 reports that waited are published" in again[0], caplog.messages
