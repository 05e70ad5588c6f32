"""`report --help` says what report does: --from/--to are days in the [engine] timezone of --config (the help said
"local time zone", read as the machine's: a UTC analyst's host counts Hanoi days all the same), and it ends with
its input formats as the README says (it had one example and no format); the input lines it shows are read."""
import argparse
import json

from engine.cli import parser
from tests.conftest import run_cli


def _help():
    p = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["report"]
    return p.format_help()


def test_from_and_to_are_days_of_the_engine_timezone_whatever_the_machine_says(tmp_path):
    h = " ".join(_help().split())
    assert "local time zone" not in h
    assert "first day (YYYY-MM-DD, a day in the [engine] timezone of --config, not the machine's), inclusive" in h
    log = tmp_path / "v.log"        # 00:30 on 1 December in Hanoi (the shipped timezone), 30 November in UTC
    log.write_text(json.dumps({"ts": "2026-11-30T17:30:00+00:00", "kind": "sms", "action": "allow", "hits": []})
                   + "\n")
    p = run_cli("report", "--log", log, "--from", "2026-12-01", "--to", "2026-12-01", "--out", tmp_path / "o",
                "--no-progress", "--data-dir", tmp_path / "d", env={"TZ": "UTC"})
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["records"] == 1


def test_the_input_lines_the_help_shows_are_read(tmp_path):
    lines = [x.strip() for x in _help().splitlines() if x.strip().startswith("{")]
    log_line, store_line = lines
    (tmp_path / "v.log").write_text(log_line + "\n")
    (tmp_path / "reports.jsonl").write_text(store_line + "\n")
    p = run_cli("report", "--log", tmp_path / "v.log", "--reports", tmp_path / "reports.jsonl", "--out",
                tmp_path / "o", "--no-progress", "--data-dir", tmp_path / "d")
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["inputs"]["malformed"] == 0
    assert s["totals"]["sms"]["drop"] == 1 and s["symbols"] == {"SENDER_BLACKLISTED": 1}
    assert s["reports"] == {"S": 1, "V": 0, "FW": 0}
