"""Ctrl-C on a `serve --workers N` pool run in a terminal (engine/supervisor.py). The terminal sends SIGINT to every
process of its foreground group: the supervisor and each worker. The supervisor passed its SIGINT on, so each worker
had two stop signals, and a second one cuts a drain short (submits in flight left without their SMSC's answer).
Now a worker ignores SIGINT and each Ctrl-C is one SIGTERM per worker from the supervisor: the first drains, a second
stops at once, as a single serve's second signal does. The group is signalled as a terminal would (killpg)."""
import contextlib
import os
import signal
import subprocess
import sys
import time

from engine.app import build
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import ROOT
from .redis_helpers import RedisServer
from .test_ops import _client, _send
from .test_sdnotify_pool import _stop, _worker_pids
from .test_serve import free_port, wait_for, wait_ready


@contextlib.contextmanager
def _pool(tmp_path, drain_timeout, smsc=lambda sim: None):
    """A 2-worker pool in its own session (a terminal's foreground group), its Redis and SMSC started and stopped
    here; yields (stderr path, supervisor process, SMPP port, SMSC simulator) once ready."""
    redis = RedisServer(tmp_path / "redis")
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    smsc(sim.sim)
    err_path, ready, port = tmp_path / "stderr.log", tmp_path / "ready", free_port()
    err = open(err_path, "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data", "--smpp-listen",
                          f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{sim.port}", "--sip-listen", "off",
                          "--log", tmp_path / "v.jsonl", "--ready-file", ready, "--control-socket", "off",
                          "--workers", "2", "--state", redis.url, "--esme-account", "t:pw",
                          "--drain-timeout", str(drain_timeout)],
                         cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(p, ready, err_path)
        assert wait_for(lambda: sum(s.bound for s in sim.sim.sessions) >= 2)
        yield err_path, p, port, sim.sim
    finally:
        _stop(p, err_path)
        err.close()
        sim.stop()
        redis.stop()


def _submit_in_flight(port, sim):
    c = _client(port)
    seq = _send(c, 1)
    assert wait_for(lambda: len(sim.submits()) == 1)
    return c, seq


def _answer(c, seq):
    while True:
        pdu = c.read_pdu()
        if pdu.command == "submit_sm_resp" and pdu.sequence == seq:
            return pdu.status


def _draining(err_path, n):
    return err_path.read_text().count("stopping: draining") >= n


def test_ctrl_c_drains_a_pool_once_and_submits_in_flight_get_the_smscs_answer(tmp_path):
    with _pool(tmp_path, 30, lambda sim: setattr(sim, "answer_delay", 3.0)) as (err_path, p, port, sim):
        c, seq = _submit_in_flight(port, sim)
        os.killpg(p.pid, signal.SIGINT)         # Ctrl-C
        assert _answer(c, seq) == 0, err_path.read_text()[-2000:]      # the SMSC's own answer, 3 s later
        assert p.wait(30) == 0, err_path.read_text()[-2000:]
        text = err_path.read_text()
        assert "drain cut short" not in text and text.count("stopping: draining") == 2, text[-2000:]
        c.disconnect()


def test_a_second_ctrl_c_stops_the_pool_at_once(tmp_path):
    with _pool(tmp_path, 120, lambda sim: setattr(sim, "stall", True)) as (err_path, p, port, sim):
        c, _ = _submit_in_flight(port, sim)
        os.killpg(p.pid, signal.SIGINT)
        assert wait_for(lambda: _draining(err_path, 2), 30), err_path.read_text()[-2000:]
        time.sleep(0.5)
        assert p.poll() is None                 # draining: the stalled SMSC's answer is awaited
        os.killpg(p.pid, signal.SIGINT)
        assert p.wait(30) == 0, err_path.read_text()[-2000:]
        assert "drain cut short" in err_path.read_text()
        c.disconnect()


def test_a_sigint_to_one_worker_alone_is_ignored(tmp_path):
    """A worker's stop is the supervisor's SIGTERM. Before, a SIGINT to one worker drained it, it exited 0, and the
    supervisor took that for `ctl drain` and stopped the whole pool."""
    with _pool(tmp_path, 10) as (err_path, p, port, sim):
        w1 = _worker_pids(err_path, 1)[-1]
        os.kill(w1, signal.SIGINT)
        time.sleep(2)
        assert p.poll() is None and "stopping" not in err_path.read_text(), err_path.read_text()[-2000:]
        os.kill(w1, 0)                          # still there, still the same worker
        c = _client(port)
        assert _answer(c, _send(c, 2)) == 0     # the pool serves on
        c.disconnect()
