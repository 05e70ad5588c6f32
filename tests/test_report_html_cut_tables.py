"""report.html shows the first 30 symbols and 50 advertisers; a table cut there says how many rows are left out
and where they are (the CSV beside it), where the printed page showed 30 rows of 40 as if they were all."""
import json
from datetime import timedelta, timezone

from engine.report import make_report

HANOI = timezone(timedelta(hours=7))


def test_a_table_cut_in_the_printable_report_says_how_many_rows_are_in_its_csv(tmp_path):
    lines = [json.dumps({"ts": "2026-03-01T09:00:00+07:00", "kind": "sms", "action": "drop", "sender": "SHOP",
                         "hits": [{"symbol": f"RULE_{i:02d}", "score": 1, "detail": "", "source": "t"}]}) + "\n"
             for i in range(40)]
    (tmp_path / "v.log").write_text("".join(lines))
    make_report([str(tmp_path / "v.log")], tmp_path / "out", HANOI, progress=False, with_plots=False)
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("<td>RULE_") == 30
    assert "10 more rows in symbols.csv" in page
    assert len((tmp_path / "out" / "symbols.csv").read_text().splitlines()) == 41
    assert "more rows in" not in page.split("Rule hits", 1)[0]      # a table shown whole says nothing
