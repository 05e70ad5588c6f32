"""`reports tui` without a terminal exits 2 at once with a clear error instead of drawing escape codes into
a file and waiting forever."""
import json
import subprocess
import sys

from .conftest import ROOT


def test_tui_without_a_terminal_is_an_error(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "reports.jsonl").write_text(json.dumps({"reporter": "84912000001", "reported": "84987654321",
                                                 "content": "Vay tien nhanh goi 0901234567", "kind": "S",
                                                 "time": "2026-11-30T10:00:00+07:00", "label": None}) + "\n")
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        r = subprocess.run([sys.executable, "-m", "engine.cli", "reports", "tui", "--data-dir", str(d)], cwd=ROOT,
                           stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 2
    assert "needs a terminal" in r.stderr and "reports export" in r.stderr
    assert "\x1b" not in out.read_text()
