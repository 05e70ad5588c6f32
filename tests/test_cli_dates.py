"""--from/--to of `telfilter verdicts` and `telfilter report`: one parser (cli_types.day) and one order check
(cli_types.date_order_error). Only YYYY-MM-DD, as the help says: date.fromisoformat (Python 3.11) also took
20261207 and 2026-W49-1, and report had a parser of its own."""
import argparse

import pytest

from engine.cli_types import date_order_error, day

from .conftest import run_cli


@pytest.mark.parametrize("v", ["20261207", "2026-W49-1", "2026-12-7", "2026-13-01", "2026-12-07T00:00", "२०२६-१२-०७"])
def test_a_date_other_than_yyyy_mm_dd_is_refused(v):
    with pytest.raises(argparse.ArgumentTypeError, match="must be a date YYYY-MM-DD, got"):
        day(v)


def test_a_date_and_an_order():
    assert day("2026-12-07").isoformat() == "2026-12-07"
    assert date_order_error(day("2026-12-08"), day("2026-12-07")) == "--from 2026-12-08 is after --to 2026-12-07"
    assert date_order_error(day("2026-12-07"), day("2026-12-07")) is None
    assert date_order_error(None, day("2026-12-07")) is None and date_order_error(day("2026-12-07"), None) is None


@pytest.mark.parametrize("command", ["verdicts", "report"])
def test_both_commands_refuse_a_basic_format_date_and_a_reversed_range_alike(tmp_path, command):
    log = tmp_path / "v.jsonl"
    log.write_text("")
    common = ["--log", log, "--data-dir", tmp_path / "d"] + (["--out", tmp_path / "r", "--no-progress"]
                                                            if command == "report" else [])
    p = run_cli(command, *common, "--to", "20261207")
    assert p.returncode == 2 and "argument --to: must be a date YYYY-MM-DD, got '20261207'" in p.stderr, p.stderr
    p = run_cli(command, *common, "--from", "2026-12-08", "--to", "2026-12-07")
    assert p.returncode == 2 and f"telfilter {command}: error: --from 2026-12-08 is after --to 2026-12-07" in p.stderr
    assert not (tmp_path / "r").exists()
