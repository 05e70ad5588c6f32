"""`telfilter ctl` against a serve whose start waits for a lock. A serve taking over the SMPP files of a larger
pool's worker (serve_files.take_over) waited for that worker's lock, up to 12 s, on its event loop after its control
socket listened: `ctl stats` hung the whole wait (13 s, probed) with no word, and a shorter --timeout timed out.
Now the wait runs in a worker thread and every command is answered at once with what the serve waits for and who
holds it: "serve is starting: waiting up to N s for worker 1's SMPP files (.../serve.w1.lock is held by pid P ...)",
exit 1; once started, commands as before."""
import fcntl
import os
import subprocess
import sys
import time

from .conftest import ROOT, run_cli
from .test_serve import free_port, wait_for, wait_ready


def test_ctl_says_the_serve_is_starting_and_what_it_waits_for(tmp_path):
    data = tmp_path / "data"
    smpp = data / "smpp"
    smpp.mkdir(parents=True)
    (smpp / "held_receipts.w1.journal").write_bytes(b"")          # a worker 1 of a larger pool was here
    fd = os.open(smpp / "serve.w1.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)                                  # ... and is still stopping
    ready, log = tmp_path / "ready", tmp_path / "serve.log"
    with open(log, "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", data, "--drain-timeout", "6",
                              "--smpp-listen", f"127.0.0.1:{free_port()}", "--sip-listen", "off",
                              "--ready-file", ready], cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (data / "control.sock").exists(), 30), log.read_text()
        time.sleep(0.5)                                             # (into the wait: up to 8 s)
        r = run_cli("ctl", "--data-dir", data, "--timeout", "3", "stats")
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)    # before: 2, "timed out" after 3 s
        assert "serve is starting" in r.stderr and f"held by pid {os.getpid()}" in r.stderr, r.stderr
        assert "serve.w1.lock" in r.stderr
        assert not ready.exists()
        os.close(fd)                                                # the old worker gone: the start goes on
        fd = None
        wait_ready(p, ready, log)
        r = run_cli("ctl", "--data-dir", data, "stats")
        assert r.returncode == 0, r.stderr
    finally:
        if fd is not None:
            os.close(fd)
        p.terminate()
        p.wait(30)
    assert p.returncode == 0, log.read_text()
