"""`reported = {reporters = R, days = D}` with D over the 90 days the 5656 report index keeps is an error at its line:
it loaded, and counted no further back than the index holds (a number unreported for 90 days is dropped from it, and
a start-up indexes only that window of reports.jsonl), so a 180-day rule was a 90-day one, less after a restart."""
import pytest

from engine.lists.reports import REPORT_RETAIN_DAYS, ReportIndex
from engine.rules.loader import RuleSetError, load_rules

RULE = '[[rule]]\nsymbol = "REPORTED_LONG"\naction = "drop"\n[rule.when]\nreported = {{ reporters = 3, days = {} }}\n'


def test_days_over_what_the_index_keeps_is_an_error(tmp_path):
    (tmp_path / "a.toml").write_text(RULE.format(180))
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    assert [str(x).split("a.toml:", 1)[1] for x in e.value.errors] == [
        "5:12: reported: days 180 is over the 90 days of reports the 5656 report index keeps (numbers unreported for "
        "90 days are dropped): it could not count further back"]


@pytest.mark.parametrize("days", [7, 90, 0.5])
def test_days_within_it_load(tmp_path, days):
    (tmp_path / "a.toml").write_text(RULE.format(days))
    assert [r.symbol for r in load_rules(tmp_path).rules] == ["REPORTED_LONG"]


def test_the_bound_is_the_index_s_own_window():
    idx = ReportIndex()
    assert idx.retain == REPORT_RETAIN_DAYS * 86400.0
    day = 86400.0
    idx.add(84_912_345_678, 84_900_000_001, 0.0)
    idx.add(84_912_345_679, 84_900_000_002, (REPORT_RETAIN_DAYS + 1) * day)    # sweeps the first, unreported since
    assert idx.distinct_reporters(84_912_345_678, (REPORT_RETAIN_DAYS + 1) * day, 180 * day) == 0
