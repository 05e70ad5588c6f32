"""Long runs over a big JSONL file show a progress bar on a terminal and none when stderr is piped (found by the CLI
audit: `check --jsonl BIG --out FILE` and `rules test --corpus BIG`, ~0.1 ms a message, said nothing for minutes
over a million lines, while `lists import` and `report` show a bar for a file over 8 MB)."""
import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT
from .pty_helpers import run_stderr_on_pty

PAD = "x" * 30_000              # an unknown field, ignored: a file over 8 MB from a few hundred messages


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    p = tmp_path_factory.mktemp("big") / "corpus.jsonl"
    with open(p, "w") as f:
        for i in range(300):
            f.write(json.dumps({"id": str(i), "kind": "sms", "sender": "0912345678", "recipient": "0987654321",
                                "text": "hen gap lai ngay mai nhe", "time": "2026-01-01T08:00:00+07:00",
                                "note": PAD}) + "\n")
    assert p.stat().st_size > 8 << 20
    return p


def _run(argv, tty: bool, tmp_path):
    """stderr on a pseudo-terminal (tty) or a pipe; what was written to it."""
    env = dict(os.environ, TELFILTER_DATA_DIR=str(tmp_path / "d"))
    if not tty:
        p = subprocess.run([sys.executable, "-m", "engine.cli", *map(str, argv)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
        return p.returncode, p.stderr
    return run_stderr_on_pty(argv, env)


@pytest.mark.parametrize("argv", [
    ("check", "--jsonl", "{big}", "--out", "{out}"),
    ("rules", "test", "--corpus", "{big}"),
])
def test_a_big_jsonl_run_shows_a_bar_on_a_terminal_and_none_when_piped(big, tmp_path, argv):
    args = [a.format(big=big, out=tmp_path / "v.jsonl") for a in argv]
    rc, err = _run(args, True, tmp_path)
    assert rc == 0, err
    assert "%|" in err and ("judging" in err or "replaying" in err), err
    rc, err = _run(args, False, tmp_path)
    assert rc == 0, err
    assert "%" not in err and "judging" not in err and "replaying" not in err, err
