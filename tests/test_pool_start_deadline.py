"""`serve --workers N`: a worker must say READY=1 within --start-timeout of its start (engine/supervisor.py,
sdnotify.PoolNotify), with or without systemd, at the pool's first start as after a restart. One stuck starting is
killed (SIGABRT, SIGKILL 5 s later) and restarted while the others serve on. Before, a worker was watched only from
its first READY=1: one that hung while starting was never killed, the pool served with N-1 workers for good and its
STATUS= said "restarting" for good.

The hang is a fault in the data dir, no test hook: worker 1's held-receipts stop file (smpp/held_receipts.w1.msgpack,
read at every start) is a FIFO nobody writes, so its open(2) blocks as a read from a stuck disk or mount would.
Removing it lets the next start through."""
import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from engine.app import build
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import ROOT
from .redis_helpers import RedisServer, ports_in
from .test_sdnotify_pool import Systemd, _worker_pids
from .test_sdnotify_pool import _stop as _stop_pool

PORTS = (28000, 28499)      # this file's loopback ports (redis-server, the pool's SMPP port); the SMSC's is the OS's
DEADLINE = 20               # --start-timeout: a start takes ~3.5 s here; wide for a loaded CI host


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    srv = RedisServer(tmp_path_factory.mktemp("redis"), port=ports_in(*PORTS, 1)[0])
    yield srv.url
    srv.stop()


def _no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))    # SIGABRT's core dump (inherited by the workers): not here


def _pool(tmp_path, url, smsc_port, sd=None):
    err = tmp_path / "stderr.log"
    e = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    if sd is not None:
        e.update(NOTIFY_SOCKET=sd.env)
    port = ports_in(*PORTS, 1)[0]
    with open(err, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data",
                              "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{smsc_port}",
                              "--esme-account", "t:pw", "--sip-listen", "off", "--log", tmp_path / "v.jsonl",
                              "--state", url, "--workers", "2", "--ready-file", tmp_path / "ready",
                              "--start-timeout", str(DEADLINE)],
                             cwd=ROOT, stderr=f, stdout=subprocess.DEVNULL, env=e, preexec_fn=_no_core)
    return p, port, err


def _wait(what, timeout, p, err):
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, err.read_text()[-4000:]
        assert p.poll() is None, err.read_text()[-4000:]
        time.sleep(0.1)


def _stop(p, err):
    _stop_pool(p, err, wait=40)


def _hang_worker_1(tmp_path):
    fifo = tmp_path / "data" / "smpp" / "held_receipts.w1.msgpack"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    return fifo


def _submit(c):
    c.send_message(source_addr_ton=1, source_addr="84912000001", dest_addr_ton=1, destination_addr="84912000002",
                   short_message=f"hello {os.urandom(3).hex()}".encode())
    return c.read_pdu().status


def test_a_worker_stuck_at_the_first_start_is_killed_and_restarted_without_systemd(tmp_path, url):
    import smpplib.client
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
    fifo = _hang_worker_1(tmp_path)
    p, port, err = _pool(tmp_path, url, sim.port)
    c = None
    try:
        _wait(lambda: (tmp_path / "ready.w0").exists(), 90, p, err)
        hung = _worker_pids(err, 1)[0]
        c = smpplib.client.Client("127.0.0.1", port, timeout=10)     # worker 0 serves (1 never listened)
        c.connect()
        c.bind_transceiver(system_id="t", password="pw")
        assert _submit(c) == 0
        said = f"worker 1 (pid {hung}) not ready {DEADLINE}s after its start (--start-timeout"
        _wait(lambda: said in err.read_text(), DEADLINE + 90, p, err)
        fifo.unlink()                   # the disk answers again: the next start gets through
        _wait(lambda: (tmp_path / "ready").exists(), 3 * DEADLINE + 120, p, err)      # both workers ready
        log = err.read_text()
        assert "SIGABRT" in log and "worker 1 (pid %d) exited with status" % hung in log, log
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)
        assert len(_worker_pids(err, 1)) >= 2, log
        assert len(_worker_pids(err, 0)) == 1, log          # the other worker served on, untouched
        assert _submit(c) == 0                              # on the same bind, all along
    finally:
        if c is not None:
            c.disconnect()
        _stop(p, err)
        sim.stop()
    assert p.returncode == 0, err.read_text()


def test_a_worker_stuck_starting_after_a_restart_is_killed_and_the_pool_is_whole_again(tmp_path, url):
    """Under systemd (Type=notify): the worse case, a worker restarted after a crash that then hangs while starting.
    STATUS= names the deadline while it restarts, and says "2 workers ready" again once the next start got through."""
    from engine.control_client import request
    sd = Systemd()
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
    p, port, err = _pool(tmp_path, url, sim.port, sd)
    try:
        assert sd.read(lambda m: m.get("READY") == "1", timeout=90).get("STATUS") == "2 workers ready"
        fifo = _hang_worker_1(tmp_path)
        crashed = _worker_pids(err, 1)[0]
        os.kill(crashed, signal.SIGKILL)
        sd.read(lambda m: "worker 1 restarting (exited with status -9)" in m.get("STATUS", ""), timeout=30)
        sd.read(lambda m: f"worker 1 restarting (killed: not ready within {DEADLINE}s)" in m.get("STATUS", ""),
                timeout=DEADLINE + 90)
        assert request(tmp_path / "data" / "control.sock", {"cmd": "stats"})["smpp"]      # worker 0 serves on
        fifo.unlink()
        sd.read(lambda m: m.get("STATUS") == "2 workers ready", timeout=3 * DEADLINE + 120)
        log = err.read_text()
        hung = _worker_pids(err, 1)[1]
        assert f"worker 1 (pid {hung}) not ready {DEADLINE}s after its start" in log, log
        assert len(_worker_pids(err, 0)) == 1, log
        assert [m for _, _, m in sd.got if "READY" in m] == [{"READY": "1", "STATUS": "2 workers ready"}]
        assert p.poll() is None
    finally:
        _stop(p, err)
        sim.stop()
        sd.close()
    assert p.returncode == 0, err.read_text()


def test_a_start_up_error_after_the_pool_came_up_restarts_that_worker_without_a_ready_file(tmp_path, url):
    """Status 2 (a start-up error: a config, a lock, a port) stops the pool at its first start, where every worker
    would hit it. After the pool came up, a restarted worker's status 2 is retried with the backoff while the others
    serve on -- as it was with --ready-file; without one the supervisor never knew the pool had come up and a worker
    restart that failed so stopped every worker and exited 2. Here: worker 1's lock held by another process."""
    import fcntl
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
    e = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    err = tmp_path / "stderr.log"
    with open(err, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data",
                              "--smpp-listen", f"127.0.0.1:{ports_in(*PORTS, 1)[0]}", "--smsc", f"127.0.0.1:{sim.port}",
                              "--esme-account", "t:pw", "--sip-listen", "off", "--log", tmp_path / "v.jsonl",
                              "--state", url, "--workers", "2"],
                             cwd=ROOT, stderr=f, stdout=subprocess.DEVNULL, env=e, preexec_fn=_no_core)
    lock = None
    try:
        listening = lambda: err.read_text().count("SMPP proxy listening on")     # noqa: E731
        _wait(lambda: listening() == 2, 90, p, err)
        # the pool came up (every worker's READY=1 reached the supervisor, which says so): waited for, not slept for
        # -- 2 s after "listening" was a bet on the rest of the workers' start, and a kill before the supervisor had
        # both READY=1 made the restart's status 2 a first-start failure (the pool stopped)
        _wait(lambda: "2 workers ready" in err.read_text(), 90, p, err)
        lock = os.open(tmp_path / "data" / "smpp" / "serve.w1.lock", os.O_RDWR)
        os.kill(_worker_pids(err, 1)[0], signal.SIGKILL)
        fcntl.flock(lock, fcntl.LOCK_EX)            # once the killed worker's lock is gone: the next start fails
        _wait(lambda: "exited with status 2" in err.read_text(), 60, p, err)
        os.close(lock)
        lock = None
        _wait(lambda: listening() == 3, 90, p, err)             # worker 1 again (after 1 s, then 2 s...)
        log = err.read_text()
        assert "stopping the pool" not in log and len(_worker_pids(err, 0)) == 1, log
    finally:
        if lock is not None:
            os.close(lock)
        _stop(p, err)
        sim.stop()
    assert p.returncode == 0, err.read_text()


def test_the_start_deadline_is_kept_without_systemd_and_ends_at_ready(tmp_path):
    """PoolNotify without $NOTIFY_SOCKET: the private socket is there (the workers' READY=1 reaches the supervisor),
    nothing goes to systemd; a worker past its deadline is returned once, one that said READY=1 never."""
    from engine.sdnotify import PoolNotify
    pool = PoolNotify(2, {}, start_timeout=5.0)
    try:
        assert not pool.active and set(pool.env) == {"TELFILTER_NOTIFY_SOCKET"}
        to = "\0" + pool.env["TELFILTER_NOTIFY_SOCKET"][1:]
        send = ("import socket,sys; sys.stdin.read(1); "
                "socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1\\n', %r)" % to)
        w = subprocess.Popen([sys.executable, "-c", send], stdin=subprocess.PIPE)
        pool.started(0, w.pid, now=100.0)
        pool.started(1, w.pid + 1_000_000, now=100.0)       # a pid no process has: never says anything
        assert pool.overdue(104.9) == [] and pool.starting(0) and pool.starting(1)
        w.communicate(b"x", timeout=10)
        time.sleep(0.1)
        assert pool.poll(105.0) == []                       # worker 0's READY=1 read
        assert not pool.starting(0) and pool.starting(1)
        assert pool.overdue(105.1) == [1]                   # worker 1: past 100 + 5 s, said once
        assert pool.overdue(1000.0) == []
        pool.started(1, w.pid + 1_000_001, now=2000.0)      # restarted: its deadline is armed again
        assert pool.overdue(2004.0) == [] and pool.overdue(2005.5) == [1]
        pool.exited(0, "exited with status 1")              # an exit disarms it
        pool.started(0, w.pid, now=3000.0)
        pool.exited(0, "exited with status 1")
        assert pool.overdue(9999.0) == []
        pool.started(1, w.pid + 1_000_002, now=4000.0)
        pool.stopping()                                     # the stop: a worker still starting is stopped, not killed
        assert pool.overdue(9999.0) == []
    finally:
        pool.close()


def test_a_first_start_held_up_by_a_worker_says_why_in_status():
    """Under systemd, before the pool's READY=1: STATUS= names the worker that restarts and why (it said nothing
    until every worker was ready, so `systemctl status` showed a start that hung without a reason)."""
    from engine.sdnotify import PoolNotify
    sd = Systemd()
    pool = PoolNotify(2, {"NOTIFY_SOCKET": sd.env}, start_timeout=5.0)
    try:
        pool.started(0, 1 << 30, now=100.0)
        pool.started(1, (1 << 30) + 1, now=100.0)
        assert pool.overdue(105.5) == [0, 1]
        pool.exited(1, "killed: not ready within 5s")
        sd.idle(0.2)
        assert [m for _, _, m in sd.got] == \
            [{"STATUS": "0 of 2 workers ready; worker 1 restarting (killed: not ready within 5s)"}]
        assert not pool.pool_ready
    finally:
        pool.close()
        sd.close()
