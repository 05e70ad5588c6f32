"""Ctrl-C on a standalone benchmark tool ends it with one line on stderr and exit 130, having stopped what it started,
as `python -m benchmarks` does. Before, each ended in a KeyboardInterrupt traceback of 20-30 lines (what it started
was stopped all the same). Nothing is measured: each run is interrupted once its first child runs."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _children(pid):
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ended(p, kids) -> bool:
    """Whether the tool `p` and its children `kids` are gone (within 15 s of its exit); the rest killed either way."""
    try:
        end = time.monotonic() + 15
        while any(_alive(k) for k in kids) and time.monotonic() < end:
            time.sleep(0.05)
        return not any(_alive(k) for k in kids)
    finally:
        if p.poll() is None:
            if os.getpgid(p.pid) == p.pid:      # (a tool started in a session of its own: its group too)
                os.killpg(p.pid, signal.SIGKILL)
            else:
                p.kill()
            p.wait()
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)


@pytest.mark.parametrize("cmd", [["benchmarks.smpp_p99", "--rate", "200", "--seconds", "60", "--repeat", "1",
                                  "--dnc", "1000"],
                                 ["benchmarks.smpp_cpu", "--n", "5000000", "--modes", "forwarder"],
                                 pytest.param(["engine.sip_screen.cpubench", "--rate", "20", "--seconds", "60",
                                               "--no-relay", "--no-kamailio"],
                                              marks=pytest.mark.skipif(not shutil.which("sipp"), reason="no sipp"))],
                         ids=lambda c: c[0])
def test_ctrl_c_is_one_line_and_exit_130(cmd, tmp_path):
    p = subprocess.Popen([sys.executable, "-m", *cmd], cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_path)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    kids = []
    try:
        end = time.monotonic() + 60
        while not kids and time.monotonic() < end:
            kids = _children(p.pid)
            time.sleep(0.05)
        assert kids, "no child started"
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=60)[1]
        assert p.returncode == 130 and "Traceback" not in err and "interrupted" in err, (p.returncode, err[-1500:])
        assert len(err.strip().splitlines()) == 1, err
    finally:
        gone = _ended(p, kids)
    assert gone, "a child outlived the tool"
