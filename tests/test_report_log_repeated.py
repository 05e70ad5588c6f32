"""`telfilter report --log A --log B` reads both logs, as `--log A B` does. `--log` was nargs="+" with argparse's
default store action, so a repeated `--log` (as `ml train --data` is given) silently kept the last one: the
regulator's totals left out every earlier log, exit 0 (found by a probe of odd encodings, reading two logs)."""
import json

from .conftest import run_cli


def _log(path, n, sender):
    path.write_text("".join(json.dumps({"ts": f"2026-05-01T10:00:{i:02d}+07:00", "kind": "sms", "action": "drop",
                                        "score": 15, "sender": sender, "recipient": "84912345678",
                                        "hits": [{"symbol": "URL_BLACKLISTED", "score": 15, "detail": "x",
                                                  "source": "y"}]}) + "\n" for i in range(n)))


def test_a_repeated_log_option_reads_every_log(tmp_path):
    _log(tmp_path / "a.log", 2, "SHOPA")
    _log(tmp_path / "b.log", 3, "SHOPB")
    for i, args in enumerate((["--log", tmp_path / "a.log", tmp_path / "b.log"],
                              ["--log", tmp_path / "a.log", "--log", tmp_path / "b.log"])):
        out = tmp_path / f"rep{i}"
        run_cli("report", *args, "--out", out, "--data-dir", tmp_path / "d", check=True)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["totals"]["sms"]["drop"] == 5, (args, summary["totals"])
