"""The report's last line says how many lines fell outside --from/--to: logs of another month (or a --to typed
wrong) gave `0 records (no records in the period)`, exit 0, and the lines left out were counted only in
summary.json and the HTML's inputs table."""
from tests.conftest import run_cli
from tests.test_report import rec


def test_lines_outside_the_period_are_said_on_the_last_line(tmp_path):
    log = tmp_path / "verdicts.log"
    log.write_text(rec("2026-12-01T10:00:00+07:00") * 3 + rec("2026-11-30T23:59:00+07:00"))
    p = run_cli("report", "--log", log, "--from", "2026-11-01", "--to", "2026-11-30", "--out", tmp_path / "nov",
                "--no-progress", "--data-dir", tmp_path / "d")
    assert p.returncode == 0, p.stderr
    assert "telfilter report: 1 records from 2026-11-01 to 2026-11-30 (3 lines outside --from/--to left out): " \
        in p.stderr
    p = run_cli("report", "--log", log, "--from", "2026-10-01", "--to", "2026-10-31", "--out", tmp_path / "oct",
                "--no-progress", "--data-dir", tmp_path / "d")
    assert "telfilter report: 0 records (no records in the period) (4 lines outside --from/--to left out): " in p.stderr
