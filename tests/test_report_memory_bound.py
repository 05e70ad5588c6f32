"""`telfilter report` keeps its stated heap bound whatever the input: a caller (a SIP From user, up to a 64 KiB
message) or a model version is kept in the report's tables, memo and late-part memory at a bounded size, as a
readable prefix with a digest of the whole, so two long ones stay two rows. Kept whole, 3,000 distinct 60 KB
callers dropped held 172 MiB."""
import tracemalloc
from datetime import timedelta, timezone

from engine.report.aggregate import Aggregator
from engine.report.reader import parse_ts

HANOI = timezone(timedelta(hours=7))


class _NoRegistry:
    def sender_entries(self, key):
        return ()


def _drop(i, long):
    return {"ts": "-", "kind": "call", "action": "drop", "caller": f"{i:08d}" + "x" * long,
            "hits": [{"symbol": "ML_SPAM", "source": f"model:{i:08d}" + "v" * long}]}


def test_long_distinct_callers_and_model_versions_stay_within_the_heap_bound():
    ts = parse_ts("2026-03-01T09:00:00+07:00")
    agg = Aggregator(HANOI, lists=_NoRegistry())
    tracemalloc.start()
    try:
        for i in range(1500):                      # (below the top tables' 2*TOP_KEEP: every one kept)
            agg.add_verdict(ts, _drop(i, 60_000))
            agg.add_verdict(ts, {"ts": "-", "kind": "sms", "action": "drop", "sender": f"{i:08d}" + "s" * 60_000,
                                 "late": True, "concat": f"{i:016x}", "hits": []})
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 16 << 20, f"{held / 2**20:.1f} MiB held"
    s = agg.summary(top=5000)
    assert s["totals"]["call"]["drop"] == 1500
    assert len(s["top_senders_by_drops"]) == 1500        # every long caller its own row
    assert all(len(r["sender"]) <= 128 for r in s["top_senders_by_drops"])
    assert s["top_senders_by_drops"][0]["sender"].startswith("00000000xxx")
    assert all(len(v) <= 128 for v in s["models"])


def test_a_short_caller_and_model_version_are_kept_as_they_are():
    agg = Aggregator(HANOI)
    agg.add_verdict(parse_ts("2026-03-01T09:00:00+07:00"), _drop(7, 20))
    s = agg.summary()
    assert s["top_senders_by_drops"] == [{"channel": "call", "sender": "00000007" + "x" * 20, "drops": 1}]
    assert list(s["models"]) == ["00000007" + "v" * 20]


def test_two_long_callers_alike_up_to_the_cut_are_two_rows():
    agg = Aggregator(HANOI)
    ts = parse_ts("2026-03-01T09:00:00+07:00")
    for tail in ("a", "b", "b"):
        agg.add_verdict(ts, {"ts": "-", "kind": "call", "action": "drop", "caller": "y" * 5000 + tail, "hits": []})
    assert sorted(r["drops"] for r in agg.summary()["top_senders_by_drops"]) == [1, 2]


def test_hits_of_model_versions_past_the_listed_ones_are_counted(monkeypatch):
    from engine.report import aggregate
    monkeypatch.setattr(aggregate, "TOP_KEEP", 2)
    agg = Aggregator(HANOI)
    ts = parse_ts("2026-03-01T09:00:00+07:00")
    for i in (1, 2, 3, 3, 1):
        agg.add_verdict(ts, _drop(i, 0))
    s = agg.summary()
    assert {v: m["hits"] for v, m in s["models"].items()} == {"00000001": 2, "00000002": 1}
    assert s["models_left_out_hits"] == 2
