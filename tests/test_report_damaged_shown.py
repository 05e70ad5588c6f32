"""A compressed log not read whole is always said, whatever came before it, and a damaged .gz or .xz is read only
up to its first malformed line. Inflate does not see every damage: the garbage it gave until the CRC check at the
end read as tens of thousands of malformed lines, some as records (counted), and the file's
`unreadable from here on` line, the 21st malformed one, was neither on stderr nor in summary.json's malformed_lines.
A first pass over a .gz or .xz finds the damage before its lines are read; a log on stdin (not read twice) names its
first malformed line, where such damage begins at the latest."""
import gzip
import json
import subprocess
import sys

from tests.conftest import ROOT, run_cli
from tests.test_report import rec

GOOD = "".join(rec(f"2026-12-01T10:0{i}:00+07:00") for i in range(3))


def _damaged_gz(text: str) -> bytes:
    packed = bytearray(gzip.compress(text.encode()))
    packed[-8] ^= 0xFF                  # its CRC no longer matches: known once the whole member is read
    return bytes(packed)


def test_a_damaged_gz_is_read_up_to_its_first_malformed_line(tmp_path):
    # what inflate gave past the damage: a garbage line, then one that reads as a record
    log = tmp_path / "verdicts.log.2.gz"
    log.write_bytes(_damaged_gz(GOOD + "{garbage\n" + rec("2026-12-01T11:00:00+07:00", "drop") + "{garbage\n"))
    p = run_cli("report", "--log", log, "--out", tmp_path / "out", "--no-progress", "--data-dir", tmp_path / "d")
    assert p.returncode == 0, p.stderr
    assert (f"{log}:4: unreadable from here on: BadGzipFile: CRC check failed") in p.stderr
    assert "(a first pass found the file damaged: read up to its first malformed line, where the damage begins at " \
        "the latest)" in p.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["totals"]["sms"] == {"allow": 3, "tag": 0, "drop": 0, "refuse": 0}
    assert s["inputs"]["malformed"] == 1


def test_a_damaged_gz_on_stdin_is_said_after_more_than_twenty_bad_lines(tmp_path):
    text = GOOD + "{garbage\n" * 25 + rec("2026-12-01T11:00:00+07:00")
    p = subprocess.run([sys.executable, "-m", "engine.cli", "report", "--log", "-", "--out", str(tmp_path / "out"),
                        "--no-progress", "--data-dir", str(tmp_path / "d")], input=_damaged_gz(text), cwd=ROOT,
                       capture_output=True, timeout=300)
    err = p.stderr.decode()
    assert p.returncode == 0, err
    said = "-:30: unreadable from here on: BadGzipFile: CRC check failed"
    line = next((x for x in err.splitlines() if said in x), None)
    assert line is not None, err
    assert line.endswith("(damaged from line 4 on at the latest, its first malformed line: the records read from "
                         "there may be altered)")
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["inputs"]["malformed"] == 26 and any(said in x for x in s["inputs"]["malformed_lines"])
    assert "... and 5 more malformed lines" in err         # 20 bad lines shown, and the file's damage
