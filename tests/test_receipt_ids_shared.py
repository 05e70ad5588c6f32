"""Message ids shared across processes (engine/state/receipts.py), without a server: other processes' ids
never evict this process's own (a table of their own), ids learned from the stream are not broadcast again, and ids
the server could not take while it was away are sent when it is back, the newest kept."""
import asyncio
import os

import msgpack

from engine.app import build
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.msgids import MessageIds
from engine.smpp_proxy.server import SmppProxy
from engine.state import receipts as receipts_mod
from engine.state.receipts import SharedMessageIds, SharedReceipts
from engine.state.redis_store import RedisStore
from engine.verdictlog import VerdictLog


def test_other_processes_ids_never_evict_our_own():
    """Regression: learned ids shared this process's bounded table, so with N workers our own ids lasted
    N times shorter (a late receipt on the bind that submitted it was no longer routed)."""
    ids = SharedMessageIds(bound=4)
    ids.add("own1", "esme1")
    ids.add("own2", "esme1")
    for i in range(4):
        ids.learn(f"other{i}", "esme2")
    assert ids.get("own1") == ids.get("own2") == "esme1" and "own1" in ids and "own2" in ids
    assert [ids.get(f"other{i}") for i in range(4)] == ["esme2"] * 4 and len(ids) == 6
    ids.learn("other4", "esme2")                    # the learned table has the same bound: its oldest goes
    assert "other0" not in ids and ids.get("other0") is None and ids.get("own1") == "esme1"
    ids.learn("own1", "esme2")                      # our own is looked up first
    assert ids.get("own1") == "esme1"
    for i in range(3, 7):                           # our own table keeps today's bound
        ids.add(f"own{i}", "esme1")
    assert "own2" not in ids and ids.get("own6") == "esme1"
    assert ids.get("own1") == "esme2"               # gone from ours: the learned entry answers
    assert ids.get("nope", "d") == "d"


def test_learned_ids_from_the_stream_leave_our_own(tmp_path):
    """The same through SharedReceipts: ids applied from the stream, and the proxy's lookup."""
    async def main():
        proxy = SmppProxy(build(data_dir=tmp_path, with_model=False), SmppSettings(),
                          VerdictLog(open(os.devnull, "w")))
        proxy.msgid_account = MessageIds(4)
        shared = SharedReceipts(RedisStore("redis://127.0.0.1:1"), proxy)
        proxy._remember_message_id("A1", "esme1")
        proxy._remember_message_id("A2", "esme1")
        blob, _, _ = shared.take()
        assert msgpack.unpackb(blob) == {"esme1": ["A1", "A2"]}
        shared._apply([(b"1-0", {b"p": b"other", b"d": msgpack.packb({"esme2": [f"B{i}" for i in range(4)]})})])
        assert proxy._account_of("A1") == proxy._account_of("A2") == "esme1"
        assert proxy._account_of("B3") == "esme2" and proxy.stats["msgids_learned"] == 4
        assert shared.take()[0] == b""              # learned ids are not broadcast again
    asyncio.run(main())


def test_ids_the_server_could_not_take_go_when_it_is_back_the_newest_kept(monkeypatch):
    """Probe round 2: ids of messages forwarded while Redis was away were never shared after it came back, so
    their receipts could only be routed by the process that forwarded them."""
    monkeypatch.setattr(receipts_mod, "MAX_UNSHARED", 4)
    r = SharedReceipts.__new__(SharedReceipts)
    r.ids = SharedMessageIds(100)
    r.stats = {"msgids_shared": 0, "msgids_not_shared": 0}
    r.me = "1:x"
    for i in range(3):
        r.ids.add(f"A{i}", "esme1")
    taken = r.take()                                 # a script call that fails
    r.ids.add("B0", "esme1")
    r.lost(taken)
    assert r.ids.out == ["A0", "A1", "A2", "B0"] and r.stats["msgids_shared"] == 0
    r.ids.add("B1", "esme1")
    r.lost()                                         # backing off: kept, bounded (the oldest leave)
    assert r.ids.out == ["A1", "A2", "B0", "B1"] and r.stats["msgids_not_shared"] == 1
    blob, _minid, _me = r.take()                     # the server is back: all go
    assert msgpack.unpackb(blob) == {"esme1": ["A1", "A2", "B0", "B1"]} and r.ids.out == []
