"""`zcat old/*.gz | telfilter report --log -` shows a progress bar on a terminal once over 8 MiB have been read from
stdin (bytes read and their rate: its size is not known); it read for minutes with no bar, a file of the same size
showing one from the start. Small input, or stderr not a terminal: no bar."""
import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT
from .pty_helpers import run_stderr_on_pty

LINE = json.dumps({"ts": "2026-12-01T10:00:00+07:00", "kind": "sms", "action": "allow", "hits": []}) + "\n"


def _report_stdin(tmp_path, lines: int, tty: bool) -> tuple[int, str]:
    log = tmp_path / "v.log"
    log.write_text(LINE * lines)
    env = dict(os.environ, TELFILTER_DATA_DIR=str(tmp_path / "d"))
    argv = [sys.executable, "-m", "engine.cli", "report", "--log", "-", "--out", str(tmp_path / "o")]
    with open(log, "rb") as stdin:
        if not tty:
            p = subprocess.run(argv, cwd=ROOT, env=env, stdin=stdin, capture_output=True, text=True, timeout=300)
            return p.returncode, p.stderr
        return run_stderr_on_pty(argv[3:], env, stdin=stdin)


@pytest.mark.parametrize("lines,tty,bar", [(130_000, True, True), (10_000, True, False), (130_000, False, False)])
def test_a_bar_for_a_long_stdin_on_a_terminal(tmp_path, lines, tty, bar):
    assert (len(LINE) * lines > 8 << 20) is (lines == 130_000)
    rc, err = _report_stdin(tmp_path, lines, tty)
    assert rc == 0, err
    assert ("reading logs:" in err) is bar, err
    assert f"{lines:,} records" in err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["records"] == lines
