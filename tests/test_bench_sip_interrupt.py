"""The SIP step interrupted (Ctrl-C, or SIGINT / SIGTERM to the benchmark's own process) while sipp's callers run
must stop them. Before, only the element and sipp's UAS were stopped: the UAC(s), started after them and not kept in
the list of processes to stop, ran on (reparented to init) sending INVITEs at the offered rate until their -timeout
(found by the bench probe). Nothing is measured here."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

STEP = """
import sys
from pathlib import Path
from benchmarks.util import exit_on_sigterm
import benchmarks.sip_bench as sb
exit_on_sigterm()
sb._one(Path(sys.argv[1]), 100, 30, "allowed", server="relay")
"""


def _ours(tmp) -> list[int]:
    """Processes whose command line names a path under `tmp` (the sipps of this test)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes()
                state = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(tmp).encode() in cmd and state != "Z" and int(d) != os.getpid():
                pids.append(int(d))
    return pids


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sip_step_leaves_no_sipp_behind(tmp_path, sig):
    p = subprocess.Popen([sys.executable, "-c", STEP, str(tmp_path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        stat = tmp_path / "relay_allowed_100" / "allowed"
        end = time.monotonic() + 30
        while not stat.exists() and time.monotonic() < end:        # the UAC's directory: it is starting
            time.sleep(0.05)
        assert stat.exists(), "the UAC did not start"
        time.sleep(1.0)
        assert any(b"uac_call.xml" in Path(f"/proc/{q}/cmdline").read_bytes() for q in _ours(tmp_path))
        p.send_signal(sig)
        p.wait(30)
        end = time.monotonic() + 5
        while _ours(tmp_path) and time.monotonic() < end:
            time.sleep(0.05)
        assert not _ours(tmp_path), "sipp outlived the interrupted step"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for q in _ours(tmp_path):
            os.kill(q, signal.SIGKILL)
