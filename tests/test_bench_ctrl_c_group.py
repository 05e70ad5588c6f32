"""Ctrl-C at a terminal sends SIGINT to every process of the foreground group, the benchmark tool's children too,
not to the tool alone (test_bench_ctrl_c.py signals the tool). `python -m benchmarks.sip_flood` then printed its
flooder's and caller's KeyboardInterrupt tracebacks, interleaved, above its one line. A tool's Ctrl-C is one line
and exit 130 however the signal is delivered; nothing is measured here."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_bench_ctrl_c import _children, _ended

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("cmd, kids_wanted", [
    (["benchmarks.sip_flood", "--seconds", "60"], 3),                 # the sink, the flooder, the caller
    (["benchmarks.smpp_check", "--seconds", "60", "--dnc", "1000"], 2),
    (["benchmarks.smpp_p99", "--rate", "200", "--seconds", "60", "--repeat", "1", "--dnc", "1000"], 2),
    pytest.param(["benchmarks.state_bench", "--n", "2000000"], 2,
                 marks=pytest.mark.skipif(not shutil.which("redis-server"), reason="no redis-server")),
], ids=lambda c: c[0] if isinstance(c, list) else str(c))
def test_ctrl_c_to_the_whole_group_is_one_line_and_exit_130(cmd, kids_wanted, tmp_path):
    p = subprocess.Popen([sys.executable, "-m", *cmd], cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_path)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    kids = []
    try:
        end = time.monotonic() + 90
        while len(kids) < kids_wanted and time.monotonic() < end:
            kids = _children(p.pid)
            time.sleep(0.05)
        assert len(kids) >= kids_wanted, f"{len(kids)} children started"
        os.killpg(p.pid, signal.SIGINT)                 # as a terminal's Ctrl-C: the tool and its children
        err = p.communicate(timeout=60)[1]
        assert p.returncode == 130, (p.returncode, err[-1500:])
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-1500:]
        assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    finally:
        gone = _ended(p, kids)
    assert gone, "a child outlived the tool"
