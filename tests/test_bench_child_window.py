"""smpp_cpu starts its children (the responder, the measured proxy) with util.killed_child and smpp_instr makes its
PDU file in a util.scratch_dir: nothing they start or make outlives them, however they end. smpp_cpu's `_measure` and
`_measure_all` ran Popen before the `try` that killed the child (a SIGTERM landing between them left it running,
reparented to init), and smpp_instr's NamedTemporaryFile(delete=False) was made before the `try` that unlinked it
(a failure or a stop while its PDUs were being made left it in $TMPDIR)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .test_bench_sigterm import _alive

ROOT = Path(__file__).resolve().parent.parent

AS_THE_CHILD_STARTS = """
import os, signal, subprocess, sys
from types import SimpleNamespace
from benchmarks import smpp_cpu
from benchmarks.util import exit_on_sigterm
started = subprocess.Popen
def popen(cmd, *a, **k):
    p = started([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    print(p.pid, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)     # the stop lands as the child starts, before any `try` is entered
    return p
subprocess.Popen = popen
exit_on_sigterm()
sys.exit(%s)
"""

RUNS = {"_measure": 'smpp_cpu._measure("trivial", "", 1, 1, "/nonexistent", [], 1, 1, False)',
        "_measure_all": 'smpp_cpu._measure_all(SimpleNamespace(n=1, binds=1, window=1, split=False, modes="x"), 1)'}


@pytest.mark.parametrize("run", RUNS)
def test_a_sigterm_as_smpp_cpu_starts_a_child_leaves_no_child_running(run):
    p = subprocess.run([sys.executable, "-c", AS_THE_CHILD_STARTS % RUNS[run]], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    pid = int(p.stdout.split()[0])
    alive = _alive(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)        # (ours to clean up: the child it left)
    assert p.returncode == 128 + signal.SIGTERM, p.stderr[-2000:]
    assert not alive


def test_smpp_instr_leaves_no_pdu_file_when_making_its_pdus_fails(tmp_path):
    code = """
import sys
import benchmarks.traffic
def pdus(total, seed):
    yield b"x" * 100
    raise MemoryError("made up: PDUs that do not fit")
benchmarks.traffic.pdus = pdus
from benchmarks import smpp_instr
sys.exit(smpp_instr.main(["--n", "10", "--warm", "0"]))
"""
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_path)},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "MemoryError: made up" in p.stderr, p.stderr[-2000:]
    assert sorted(x.name for x in tmp_path.iterdir()) == []
