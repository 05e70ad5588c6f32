"""The SMPP load generator (benchmarks/smpp_load.py) against the lean responder on 127.0.0.1:
both pacings answer every message once and say how they sent (no timing is asserted)."""
import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmarks.smpp_bench import _free_port
from benchmarks.smpp_load import _due_offsets


@pytest.fixture(scope="module")
def responder():
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "benchmarks.smpp_peers", "responder", str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("pacing,arrivals", [("thread", "uniform"), ("thread", "poisson"), ("timer", "uniform")])
def test_open_loop_answers_every_message_once(responder, pacing, arrivals):
    out = subprocess.run([sys.executable, "-m", "benchmarks.smpp_load", "--port", str(responder), "--rate", "2000",
                          "--seconds", "0.5", "--count", "1000", "--pacing", pacing, "--arrivals", arrivals],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert (r["pacing"], r["arrivals"], r["mode"]) == (pacing, arrivals, "open")
    assert r["sent"] > 0 and r["ok"] + r["errors"] == r["sent"]
    assert r["unanswered"] == 0 and r["unexpected"] == 0
    assert r["send_late_us"]["p50"] is not None and 0 <= r["clumped_share"] <= 1


def test_due_times():
    u = _due_offsets(5, 1000.0, "uniform", 1)
    assert np.allclose(u, [0, 0.001, 0.002, 0.003, 0.004])
    p = _due_offsets(20000, 1000.0, "poisson", 7)
    assert p[0] == 0 and np.all(np.diff(p) >= 0)
    assert abs(p[-1] / (len(p) - 1) - 0.001) < 0.0001        # mean gap 1/rate (seeded: always the same draw)
    assert np.array_equal(p, _due_offsets(20000, 1000.0, "poisson", 7))
