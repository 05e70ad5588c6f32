"""A counter's evidence names what it counted: calls for a call (it said "messages" on a call's verdict, e.g.
"2 messages per owner+recipient within 24h" for AD_CALL_FREQUENCY_CAP), messages for an SMS."""
from engine.app import build
from engine.records import parse_record


def _hits(pipe, rec, n):
    v = None
    for i in range(n):
        v = pipe.judge(parse_record({**rec, "id": str(i)}))
    return {h.symbol: h.detail for h in v.hits}


def test_a_calls_counter_evidence_counts_calls(tmp_path):
    pipe = build(data_dir=tmp_path / "data", persist=False)
    hits = _hits(pipe, {"kind": "call", "caller": "0901234567", "callee": "0912999999",
                        "time": "2026-03-02T10:00:00+07:00"}, 12)
    said = [d for d in hits.values() if " per " in d and "(limit" in d]
    assert said and all(" calls per " in d for d in said), hits


def test_an_sms_counters_evidence_counts_messages(tmp_path):
    pipe = build(data_dir=tmp_path / "data", persist=False)
    hits = _hits(pipe, {"kind": "sms", "sender": "0901234567", "recipient": "0912999999", "text": "xin chao ban nhe",
                        "time": "2026-03-02T10:00:00+07:00"}, 40)
    said = [d for d in hits.values() if " per " in d and "(limit" in d]
    assert said and all(" messages per " in d for d in said), hits
