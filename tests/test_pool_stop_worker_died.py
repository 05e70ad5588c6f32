"""`serve --workers N`'s stop (engine/supervisor.py): a worker that ends by a signal once the stop began did not drain.
The supervisor said nothing and exited 0 (it counted only positive exit statuses): a worker killed by the
SIGUSR2 logrotate sends during a stop left its crash spool and the pool's exit was called clean. The stop's own
SIGTERM ending a worker still starting (its handlers not in place: nothing held) is the stop, not a failure."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import ROOT
from .redis_helpers import RedisServer
from .test_sdnotify_pool import _stop, _worker_pids
from .test_serve import free_port, wait_ready


def _pool(tmp_path, redis):
    err_path, ready = tmp_path / "stderr.log", tmp_path / "ready"
    err = open(err_path, "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data", "--smpp-listen",
                          f"127.0.0.1:{free_port()}", "--sip-listen", "off", "--log", tmp_path / "v.jsonl",
                          "--ready-file", ready, "--control-socket", "off", "--workers", "2", "--state", redis.url],
                         cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    return err, err_path, ready, p


def test_a_worker_killed_during_the_pools_stop_is_said_and_the_exit_status_is_not_clean(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    err, err_path, ready, p = _pool(tmp_path, redis)
    try:
        wait_ready(p, ready, err_path)
        w1 = _worker_pids(err_path, 1)[-1]
        os.kill(w1, signal.SIGSTOP)             # alive, but held, when the stop begins
        p.send_signal(signal.SIGTERM)
        end = time.monotonic() + 30
        while "stopped" not in err_path.read_text() and time.monotonic() < end:
            time.sleep(0.05)                    # worker 0 drained and stopped: the supervisor is in its stop
        os.kill(w1, signal.SIGKILL)
        assert p.wait(30) == 1, err_path.read_text()[-2000:]
        said = [ln for ln in err_path.read_text().splitlines() if f"worker 1 (pid {w1}) ended by signal 9" in ln]
        assert len(said) == 1 and "during the stop: not drained" in said[0], err_path.read_text()[-2000:]
    finally:
        _stop(p, err_path)
        err.close()
        redis.stop()


def test_a_worker_still_starting_ended_by_the_stops_sigterm_is_a_clean_stop(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    fifo = tmp_path / "data" / "smpp" / "held_receipts.w1.msgpack"     # read at every start: its open(2) blocks
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    err, err_path, ready, p = _pool(tmp_path, redis)
    try:
        end = time.monotonic() + 60
        while not Path(f"{ready}.w0").exists() and p.poll() is None and time.monotonic() < end:
            time.sleep(0.05)                    # worker 0 ready, worker 1 held in its start
        assert Path(f"{ready}.w0").exists() and not ready.exists(), err_path.read_text()[-2000:]
        w1 = _worker_pids(err_path, 1)[-1]
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0, err_path.read_text()[-2000:]
        assert f"pid {w1}) ended by signal" not in err_path.read_text()
    finally:
        _stop(p, err_path)
        err.close()
        redis.stop()
