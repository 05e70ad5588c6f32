"""A 5656 report against the reporter's own number (found by a Decree 91 probe: a subscriber who reads "S <so dien
thoai> <noi dung>" as their own number, or reports a call that showed their own number as the caller) is recorded for
the analysts and never counts toward SENDER_REPORTED: the rule wants R distinct subscribers who received spam from a
number, and one's report against oneself made two others' reports enough to stop the number's messages."""
import json
from datetime import datetime

from engine.lists.reports import ReportStore

from .conftest import run_cli

ME, A, B = "0911000002", "0911000001", "0911000003"
NOW = datetime.fromisoformat("2026-11-28T10:10:00+07:00").timestamp()


def _reports(reporters):
    return [{"id": f"r{i}", "kind": "sms", "sender": who, "recipient": "5656", "text": f"S {ME} tin rac",
             "time": f"2026-11-28T10:00:0{i}+07:00"} for i, who in enumerate(reporters)]


def _sms(i):
    return {"id": f"m{i}", "kind": "sms", "sender": ME, "recipient": "0912000009", "text": "chao ban",
            "time": f"2026-11-28T10:05:0{i}+07:00"}


def _check(tmp_path, data_dir, lines):
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    p = run_cli("check", "--jsonl", f, "--data-dir", data_dir)
    assert p.returncode == 0, p.stderr
    return {v["id"]: v for v in map(json.loads, p.stdout.splitlines())}


def test_a_report_against_ones_own_number_is_recorded_and_not_counted(tmp_path, data_dir):
    out = _check(tmp_path, data_dir, _reports([A, ME, B]) + [_sms(1)])
    assert out["r1"]["hits"][0]["symbol"] == "SPAM_REPORTED"
    assert [json.loads(x)["reporter"] for x in (data_dir / "reports.jsonl").read_text().splitlines()] == \
        ["+84911000001", "+84911000002", "+84911000003"]
    assert out["m1"]["action"] == "allow", out["m1"]
    # nor once the index is rebuilt from reports.jsonl (a restart)
    assert ReportStore(data_dir).load_index().distinct_reporters(84911000002, NOW, 7 * 86400) == 2
    # a third subscriber's report makes three
    out = _check(tmp_path, data_dir, _reports(["0911000004"]) + [_sms(2)])
    assert [h["symbol"] for h in out["m2"]["hits"]] == ["SENDER_REPORTED"]
