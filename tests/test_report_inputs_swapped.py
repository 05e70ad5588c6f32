"""The 5656 report store given as --log, or a verdict log as --reports (the two JSONL inputs of `report`), is said
so on its lines: each line was `field ts: must be an ISO-8601 time with an offset, missing` (`field time:` the other
way), which sent the analyst looking for a bad time in a file that had none."""
import json

from tests.conftest import run_cli
from tests.test_report import rec


def test_a_report_store_given_as_log_and_a_log_given_as_reports_are_named(tmp_path):
    store = tmp_path / "reports.jsonl"
    store.write_text(json.dumps({"reporter": "+84911000004", "reported": "+84987000666", "content": "trung thuong",
                                 "time": "2026-12-06T12:16:58.654902+00:00", "kind": "S", "label": None}) + "\n")
    log = tmp_path / "verdicts.log"
    log.write_text(rec("2026-12-06T19:00:00+07:00"))
    p = run_cli("report", "--log", store, "--reports", log, "--out", tmp_path / "out", "--no-progress",
                "--data-dir", tmp_path / "d")
    assert p.returncode == 0, p.stderr
    assert (f"{store}:1: a 5656 report store line (reports.jsonl), not a verdict log line: give the store as "
            "--reports") in p.stderr
    assert f"{log}:1: a verdict log line, not a 5656 report store line (reports.jsonl): give the log as --log" \
        in p.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["records"] == 0 and s["inputs"]["malformed"] == 2
