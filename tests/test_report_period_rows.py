"""The report's series have one row per day, week or month of the period it covers (`from`..`to` in
summary.json), zeros where nothing was logged: a day without traffic (an outage, a quiet Sunday) was left
out of volume_by_period.csv and the plots, whose bars then stood side by side as if the days were
consecutive, while summary.json said the report covered them."""
import csv
import json
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from engine.report import make_report
from engine.report.aggregate import Aggregator

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


def _log(path, *stamps):
    path.write_text("".join(json.dumps({"ts": t, "kind": "sms", "action": "allow", "hits": []}) + "\n"
                            for t in stamps))
    return path


def _rows(out, name):
    with open(out / f"{name}.csv", newline="") as f:
        return [r[0] for r in list(csv.reader(f))[1:]]


def test_days_without_traffic_have_rows(tmp_path):
    log = _log(tmp_path / "v.log", "2026-03-01T10:00:00+07:00", "2026-03-05T10:00:00+07:00")
    s = make_report([str(log)], tmp_path / "out", HANOI, start=date(2026, 3, 1), end=date(2026, 3, 7),
                    progress=False, with_plots=False)
    assert (s["from"], s["to"]) == ("2026-03-01", "2026-03-07")
    days = [f"2026-03-0{d}" for d in range(1, 8)]
    for name in ("volume_by_period", "dnc_by_period", "reports_by_period"):
        assert _rows(tmp_path / "out", name) == days
    with open(tmp_path / "out" / "volume_by_period.csv", newline="") as f:
        assert [r[1] for r in list(csv.reader(f))[1:]] == ["1", "0", "0", "0", "1", "0", "0"]


def test_without_bounds_the_rows_span_the_records(tmp_path):
    log = _log(tmp_path / "v.log", "2026-03-03T10:00:00+07:00", "2026-02-27T23:00:00Z")   # 28 Feb, Hanoi
    make_report([str(log)], tmp_path / "out", HANOI, progress=False, with_plots=False)
    assert _rows(tmp_path / "out", "volume_by_period") == ["2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03"]


@pytest.mark.parametrize("period, want", [
    ("week", ["2026-02-23", "2026-03-02", "2026-03-09", "2026-03-16"]),
    ("month", ["2026-01-01", "2026-02-01", "2026-03-01"])])
def test_weeks_and_months_without_traffic_have_rows(period, want):
    a = Aggregator(HANOI, period, date(2026, 1, 31) if period == "month" else date(2026, 2, 26), date(2026, 3, 19))
    assert a.periods() == [date.fromisoformat(w) for w in want]


def test_no_records_no_bounds_no_rows():
    assert Aggregator(HANOI).periods() == []


def test_a_stray_time_years_away_does_not_fill_millions_of_rows(tmp_path):
    log = _log(tmp_path / "v.log", "2026-03-01T10:00:00+07:00", "0100-01-01T00:00:00+00:00")
    make_report([str(log)], tmp_path / "out", HANOI, progress=False, with_plots=False)
    assert _rows(tmp_path / "out", "volume_by_period") == ["0100-01-01", "2026-03-01"]
