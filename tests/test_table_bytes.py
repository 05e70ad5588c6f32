"""/metrics telfilter_table_bytes{table}: the bytes the big bounded tables hold, read at scrape time. A soak's RSS
grew ~200 MB that nothing in /metrics attributed (entries were exported, telfilter_smpp_table_entries, but not what
they cost): the state store's counter, recipient-history and call tables and the message-id map now say their
bytes (SlotTable.memory_bytes, exact; MessageIds.memory_bytes, an O(1) estimate of its objects)."""
import sys
import threading

from engine.app import build
from engine.metrics import Metrics
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.msgids import MessageIds

from .test_metrics import by_table
from .test_serve import submit, wait_for


def _on_loop(h, fn):
    done = threading.Event()
    h.loop.call_soon_threadsafe(lambda: (fn(), done.set()))
    assert done.wait(30)


def test_table_bytes_move_when_entries_are_added(tmp_path):
    h = ProxyHarness(build(data_dir=tmp_path, with_model=False, persist=False), accounts=("t:pw",),
                     receipt_delay=None).start()
    try:
        m = Metrics(h.pipeline, proxy=h.proxy)

        def tables():
            return by_table(m, "telfilter_table_bytes")
        t0 = tables()
        assert set(t0) == {"state_counters", "state_history", "state_calls", "message_ids"}
        assert [submit(h.port, "hello there") for _ in range(3)] == [0, 0, 0]   # judged (counted) and forwarded
        assert wait_for(lambda: tables()["message_ids"] > t0["message_ids"])
        t1 = tables()
        assert t1["state_counters"] > t0["state_counters"]

        state = h.pipeline.state
        ns = "AD_FREQUENCY_CAP|owner+recipient|24h|None"
        _on_loop(h, lambda: [state.counters.add(ns, ("o:shop", 84912000000 + i), 1_790_000_000, 86400.0, 3)
                             for i in range(10_000)])
        _on_loop(h, lambda: [state.history.add(84900000000 + i, 84911111111, 1_790_000_000, 3600.0)
                             for i in range(10_000)])
        _on_loop(h, lambda: [state.calls.add(84900000000 + i, 1_790_000_000, 3.0) for i in range(10_000)])
        _on_loop(h, lambda: [h.proxy.msgid_account.add(f"{i:016x}", "t") for i in range(10_000)])
        t2 = tables()
        # each new key: its row, its 8-byte hash and its index slot (rules/slots.py); each id: its string, its
        # slots in the dict and the ring (msgids.py: ~99 B when first added)
        for table in ("state_counters", "state_history", "state_calls"):
            assert t2[table] - t1[table] >= 10_000 * 12, table
        assert 10_000 * 70 <= t2["message_ids"] - t1["message_ids"] <= 10_000 * 200
        assert t2["state_counters"] == state.counters.memory_bytes()
    finally:
        h.stop()


def test_the_message_id_estimate_is_near_what_python_allocated():
    """MessageIds.memory_bytes reads three table sizes and one id's: compared with tracemalloc's count of what
    2M-bound-sized traffic allocated (ids added, then some noted), at the fill and past the bound."""
    import tracemalloc
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        ids = MessageIds(50_000)
        for i in range(120_000):                  # past the bound: FIFO eviction, the dict's deleted slots
            mid = f"{i:010d}"
            ids.add(mid, "esme1")
            if i % 2:
                ids.note(mid, 1, 0, "SHOP", 0, 84912345678)
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    est = ids.memory_bytes()
    assert 0.8 * used <= est <= 1.2 * used, (est, used)
    assert MessageIds(10).memory_bytes() == sum(map(sys.getsizeof, ({}, {}, [])))


def test_a_pools_learned_ids_are_their_own_table(tmp_path):
    """With --state redis:// the map also holds the other processes' ids (state/receipts.py SharedMessageIds.learned):
    exported apart (message_ids_learned), never counted twice in message_ids."""
    from engine.state.receipts import SharedMessageIds
    h = ProxyHarness(build(data_dir=tmp_path, with_model=False, persist=False), accounts=("t:pw",),
                     receipt_delay=None).start()
    try:
        shared = SharedMessageIds(1000)
        _on_loop(h, lambda: setattr(h.proxy, "msgid_account", shared))
        m = Metrics(h.pipeline, proxy=h.proxy)

        def tables():
            return by_table(m, "telfilter_table_bytes")
        t0 = tables()
        _on_loop(h, lambda: [shared.learn(f"w1-{i:08d}", "t") for i in range(500)])
        t1 = tables()
        assert t1["message_ids"] == t0["message_ids"] and t1["message_ids_learned"] > t0["message_ids_learned"]
        _on_loop(h, lambda: [shared.add(f"w0-{i:08d}", "t") for i in range(500)])
        t2 = tables()
        assert t2["message_ids"] > t1["message_ids"] and t2["message_ids_learned"] == t1["message_ids_learned"]
    finally:
        h.stop()
