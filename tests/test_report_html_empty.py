"""A report of logs with no record in them (a quiet node, a log rotated empty) and no --from/--to: report.html's
title and heading read "Spam filtering report, None to None" (Python's None, from summary.json's null dates)."""
from datetime import date
from zoneinfo import ZoneInfo

from engine.report import make_report

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


def test_no_records_no_none_in_the_printable_report(tmp_path):
    (tmp_path / "v.log").write_text("")
    make_report([str(tmp_path / "v.log")], tmp_path / "out", HANOI, progress=False, with_plots=False)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "None" not in page
    assert "<h1>Spam filtering report: no records</h1>" in page


def test_the_period_asked_is_named_even_without_records(tmp_path):
    (tmp_path / "v.log").write_text("")
    make_report([str(tmp_path / "v.log")], tmp_path / "out", HANOI, start=date(2026, 3, 1), end=date(2026, 3, 31),
                progress=False, with_plots=False)
    assert "<h1>Spam filtering report, 2026-03-01 to 2026-03-31</h1>" in (tmp_path / "out" / "report.html").read_text()


def test_plots_of_a_period_without_records_say_nothing_on_stderr(tmp_path):
    """`report --from` a period with no records printed matplotlib's "No artists with labels found to put in
    legend" UserWarning, with a source line, to the operator (a cron mail each quiet day)."""
    import gc
    import warnings
    (tmp_path / "v.log").write_text("")
    # an earlier test's garbage (an event loop left unclosed) collected inside the block warned there, by chance
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_report([str(tmp_path / "v.log")], tmp_path / "out", HANOI, start=date(2026, 3, 1), end=date(2026, 3, 7),
                    progress=False, with_plots=True)
    assert [str(w.message) for w in caught] == []
    assert (tmp_path / "out" / "volume_by_action.png").stat().st_size > 0
