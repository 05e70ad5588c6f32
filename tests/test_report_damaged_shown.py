"""A compressed log not read whole is always said, whatever came before it: its `unreadable from here on` line was
the 21st malformed line of a .gz whose damage inflate did not see (the garbage it gave read as tens of thousands of
malformed lines until the CRC check at its end), so neither stderr nor summary.json's malformed_lines said the file
was damaged; and it names the file's first malformed line, where such damage begins at the latest."""
import gzip
import json

from tests.conftest import run_cli
from tests.test_report import rec


def test_a_damaged_gz_is_said_after_more_than_twenty_bad_lines(tmp_path):
    text = ("".join(rec(f"2026-12-01T10:0{i}:00+07:00") for i in range(3)) + "{garbage\n" * 25
            + rec("2026-12-01T11:00:00+07:00"))
    packed = bytearray(gzip.compress(text.encode()))
    packed[-8] ^= 0xFF                  # its CRC no longer matches: known once the whole member is read
    log = tmp_path / "verdicts.log.2.gz"
    log.write_bytes(bytes(packed))
    p = run_cli("report", "--log", log, "--out", tmp_path / "out", "--no-progress", "--data-dir", tmp_path / "d")
    assert p.returncode == 0, p.stderr
    said = (f"{log}:30: unreadable from here on: BadGzipFile: CRC check failed")
    line = next((x for x in p.stderr.splitlines() if said in x), None)
    assert line is not None, p.stderr
    assert line.endswith("(damaged from line 4 on at the latest, its first malformed line: the records read from "
                         "there may be altered)")
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["inputs"]["malformed"] == 26 and any(said in x for x in s["inputs"]["malformed_lines"])
    assert "... and 5 more malformed lines" in p.stderr         # 20 bad lines shown, and the file's damage
