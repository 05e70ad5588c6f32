"""`python -m engine.sip_screen.instrbench` (and `cpubench`, below) stopped with SIGTERM (timeout(1), a CI job cancelled, kill PID) while
its callgrind child runs: the child is stopped and no scratch dir is left. Before, Python died at once: valgrind
ran on, reparented to init, for the rest of its calls, and /tmp kept the run's tf-sipinstr-* directory and the
child's own (a verdict log with its 8 MiB crash spool). Needs sipp (one call captured) and valgrind."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_bench_ctrl_c import _alive, _children

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not (shutil.which("sipp") and shutil.which("valgrind")), reason="needs sipp and valgrind")


def _sigterm_once_it_runs(argv, scratch, children, what):
    """Run `python -m argv` with $TMPDIR `scratch`; once `children(pid)` names what it started, SIGTERM it; assert
    those processes are gone and `scratch` is empty after it."""
    p = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, env={**os.environ, "TMPDIR": str(scratch)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids = []
    try:
        end = time.monotonic() + 60
        while not kids and time.monotonic() < end:
            kids = children(p.pid)
            time.sleep(0.05)
        assert kids, f"no {what} started"
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) != 0
        end = time.monotonic() + 15
        while any(_alive(k) for k in kids) and time.monotonic() < end:
            time.sleep(0.05)
        assert not any(_alive(k) for k in kids), f"{what} outlived {argv[0]}"
        assert sorted(x.name for x in scratch.iterdir()) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)


def test_sigterm_stops_the_callgrind_child_and_leaves_no_scratch_dir(tmp_path):
    call = tmp_path / "call.json"
    p = subprocess.run([sys.executable, "-m", "engine.sip_screen.instrbench", "--cprofile", "--calls", "1", "--warm",
                        "0", "--save", str(call)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    _sigterm_once_it_runs(["engine.sip_screen.instrbench", "--messages", str(call), "--calls", "100000", "--warm", "10"],
                          scratch, lambda pid: [k for k in _children(pid)
                                                if b"valgrind" in Path(f"/proc/{k}/cmdline").read_bytes()],
                          "the callgrind child")


def test_sigterm_to_cpubench_stops_serve_and_sipp_and_leaves_no_scratch_dir(tmp_path):
    # Python died at once: serve and both sipps ran on, reparented to init, and /tmp kept tf-sipcpu-*
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    def all_three(pid):         # serve, the sipp UAS, the sipp UAC
        kids = _children(pid)
        return kids if len(kids) >= 3 else []
    _sigterm_once_it_runs(["engine.sip_screen.cpubench", "--rate", "20", "--seconds", "60", "--no-relay",
                           "--no-kamailio"], scratch, all_three, "serve or sipp")
