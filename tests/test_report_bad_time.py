"""A report's bad line names the field whose value is wrong: `ts: "nope"` read "Invalid isoformat string: 'nope'"
(Python's words), naming neither the field nor that a time was expected; a reports.jsonl line's `time` likewise."""
from engine.report import make_report

from .test_report import HANOI, rec


def test_a_bad_time_names_its_field(tmp_path):
    (tmp_path / "v.log").write_text(rec("nope") + rec("2026-03-01T09:00:00+07:00"))
    s = make_report([tmp_path / "v.log"], tmp_path / "out", HANOI, progress=False, with_plots=False)
    assert s["inputs"]["malformed_lines"] == [
        f"{tmp_path / 'v.log'}:1: field ts: must be an ISO-8601 time with an offset, got 'nope'"]
    from engine.report.reader import Malformed, read_reports
    (tmp_path / "reports.jsonl").write_text('{"time": "2026-13-01T00:00:00Z", "kind": "S"}\n{"kind": "S"}\n')
    bad = Malformed()
    assert list(read_reports(str(tmp_path / "reports.jsonl"), bad)) == []
    assert bad.shown == [f"{tmp_path / 'reports.jsonl'}:1: field time: must be an ISO-8601 time with an offset, "
                         "got '2026-13-01T00:00:00Z'",
                         f"{tmp_path / 'reports.jsonl'}:2: field time: must be an ISO-8601 time with an offset, missing"]
