"""`serve --workers N` under systemd Type=notify (engine/sdnotify.py PoolNotify, engine/supervisor.py): the supervisor,
the unit's main process, says READY=1 once both workers did, pings the watchdog from its own loop, RELOADING=1 /
READY=1 around a SIGHUP and STOPPING=1 at SIGTERM; every datagram systemd gets is from the supervisor's pid
(NotifyAccess=main). A worker SIGSTOPped (its loop stuck) is killed after $WATCHDOG_USEC and restarted while the
supervisor keeps pinging. Before, the supervisor never notified: under the shipped unit a pool's start hung for
TimeoutStartSec, failed and Restart= looped, with nothing in the log saying why."""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from engine.app import build
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import ROOT
from .redis_helpers import RedisServer, ports_in

PORTS = (27000, 27999)      # this file's loopback ports (redis-server, the pool's SMPP port); the SMSC's is the OS's


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    srv = RedisServer(tmp_path_factory.mktemp("redis"), port=ports_in(*PORTS, 1)[0])
    yield srv.url
    srv.stop()


class Systemd:
    """systemd's end: an abstract datagram socket that learns each sender's pid (SO_PASSCRED, as systemd does to
    apply NotifyAccess=)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        name = f"telfilter-pooltest-{os.getpid()}-{time.monotonic_ns()}"
        self.sock.bind("\0" + name)
        self.env = "@" + name
        self.got: list[tuple[float, int, dict]] = []        # (when, sender pid, NAME -> value)

    def read(self, until, timeout=60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                break
            pid = next(struct.unpack("iII", d[:12])[0] for lvl, kind, d in anc
                       if lvl == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
            msg = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.got.append((time.monotonic(), pid, msg))
            if until(msg):
                return msg
        raise AssertionError(f"not seen; got {[m for _, _, m in self.got]}")

    def idle(self, seconds):
        try:
            self.read(lambda m: False, timeout=seconds)
        except AssertionError:
            pass

    def pings(self, since=0.0):
        return [t for t, _, m in self.got if m.get("WATCHDOG") == "1" and t >= since]

    def close(self):
        self.sock.close()


def _pool(tmp_path, sd, url, smsc_port, watchdog_usec):
    ready, err = tmp_path / "ready", tmp_path / "stderr.log"
    e = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    e.update(NOTIFY_SOCKET=sd.env, WATCHDOG_USEC=str(watchdog_usec))
    with open(err, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data",
                              "--smpp-listen", f"127.0.0.1:{ports_in(*PORTS, 1)[0]}",
                              "--smsc", f"127.0.0.1:{smsc_port}",
                              "--esme-account", "t:pw", "--sip-listen", "off", "--log", tmp_path / "v.jsonl",
                              "--state", url, "--workers", "2", "--ready-file", ready],
                             cwd=ROOT, stderr=f, stdout=subprocess.DEVNULL, env=e)
    return p, ready, err


def _worker_pids(err, i):
    return [int(line.rsplit("pid ", 1)[1].rstrip(")")) for line in err.read_text().splitlines()
            if f"worker {i} started (pid" in line]


def _stop(p, err, wait=30):
    pids = _worker_pids(err, 0) + _worker_pids(err, 1)
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    for pid in pids:                    # a worker left SIGSTOPped by a failed test: never outlives it
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_pool_says_ready_once_both_workers_are_pings_reloads_and_stops(tmp_path, url):
    sd = Systemd()
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
    p, ready, err = _pool(tmp_path, sd, url, sim.port, 400000)
    try:
        msg = sd.read(lambda m: m.get("READY") == "1")
        # both workers' ready files (each written before its own READY=1) are there, and the pool's, written before
        # its READY=1 as a single serve's is (it came a round later: a script or test that stopped the pool at
        # READY=1 raced the supervisor reading worker 0's, which the worker removes as it stops: the pool exited 2)
        assert (tmp_path / "ready.w0").exists() and (tmp_path / "ready.w1").exists(), err.read_text()
        assert ready.read_text().startswith("smpp ") and ready.read_text().endswith("workers 2\n")
        assert msg.get("STATUS") == "2 workers ready"
        t0 = time.monotonic()
        sd.idle(1.5)
        assert len(sd.pings(t0)) >= 5, sd.got               # every 0.2 s (half of 0.4 s) from the supervisor
        p.send_signal(signal.SIGHUP)
        msg = sd.read(lambda m: "RELOADING" in m)
        assert msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0
        sd.read(lambda m: "READY" in m, timeout=30)         # both workers reloaded
        assert "did not say their reload was over" not in err.read_text()
        p.send_signal(signal.SIGTERM)
        assert sd.read(lambda m: "STOPPING" in m) == {"STOPPING": "1", "STATUS": "draining"}
        assert p.wait(40) == 0, err.read_text()
        assert [k for _, _, m in sd.got for k in ("READY", "RELOADING", "STOPPING") if k in m] == \
            ["READY", "RELOADING", "READY", "STOPPING"]
        assert {pid for _, pid, _ in sd.got} == {p.pid}     # NotifyAccess=main: the workers never speak to systemd
    finally:
        _stop(p, err)
        sim.stop()
        sd.close()


def test_a_stuck_worker_is_killed_and_restarted_while_the_supervisor_pings(tmp_path, url):
    sd = Systemd()
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
    p, ready, err = _pool(tmp_path, sd, url, sim.port, 1000000)
    try:
        sd.read(lambda m: m.get("READY") == "1")
        stuck = _worker_pids(err, 1)[-1]
        t0 = time.monotonic()
        os.kill(stuck, signal.SIGSTOP)                      # its event loop runs no more: no pings
        sd.read(lambda m: "worker 1 restarting" in m.get("STATUS", ""), timeout=30)
        from engine.control_client import request                  # the other worker serves on meanwhile
        assert request(tmp_path / "data" / "control.sock", {"cmd": "stats"})["smpp"]
        sd.read(lambda m: m.get("STATUS") == "2 workers ready", timeout=60)
        log = err.read_text()
        assert "worker 1 (pid %d) sent no watchdog ping" % stuck in log, log
        assert "SIGKILL" in log and len(_worker_pids(err, 1)) == 2, log
        with pytest.raises(ProcessLookupError):
            os.kill(stuck, 0)
        assert _worker_pids(err, 0) == _worker_pids(err, 0)[:1]        # the other worker served on, untouched
        pings = [t0] + sd.pings(t0)
        assert max(b - a for a, b in zip(pings, pings[1:])) < 1.0, pings    # within WATCHDOG_USEC all along
        assert p.poll() is None
    finally:
        _stop(p, err)
        sim.stop()
        sd.close()
    assert p.returncode == 0, err.read_text()


def test_the_private_socket_takes_only_its_workers_and_nothing_reaches_systemd_without_notify_socket(tmp_path):
    from engine.sdnotify import PoolNotify
    # without $NOTIFY_SOCKET the workers still say READY=1 to the supervisor (its start deadline), no watchdog
    off = PoolNotify(2, {"WATCHDOG_USEC": "1000000"})
    assert not off.active and set(off.env) == {"TELFILTER_NOTIFY_SOCKET"} and off.poll(time.monotonic()) == []
    off.close()
    sd = Systemd()
    pool = PoolNotify(1, {"NOTIFY_SOCKET": sd.env, "WATCHDOG_USEC": "1000000"})
    try:
        assert set(pool.env) == {"TELFILTER_NOTIFY_SOCKET", "TELFILTER_WATCHDOG_USEC"}
        assert pool.env["TELFILTER_WATCHDOG_USEC"] == "1000000"
        to = "\0" + pool.env["TELFILTER_NOTIFY_SOCKET"][1:]
        send = ("import socket,sys; sys.stdin.read(1); "
                "socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1\\n', %r)" % to)
        w = subprocess.Popen([sys.executable, "-c", send], stdin=subprocess.PIPE)
        pool.started(0, w.pid)
        stranger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stranger.sendto(b"READY=1\n", to)                   # not a worker's pid: dropped
        stranger.close()
        time.sleep(0.1)
        pool.poll(time.monotonic())
        assert not pool.pool_ready and pool.dropped == 1
        w.communicate(b"x", timeout=10)
        time.sleep(0.1)
        now = time.monotonic()
        heard_before = []                   # what systemd had heard when the pool's before_ready ran: no READY=1
        pool.before_ready = lambda: (sd.idle(0.05), heard_before.append([m for _, _, m in sd.got if "READY" in m]))
        assert pool.poll(now) == []
        assert pool.pool_ready and heard_before == [[]]
        assert pool.poll(now + 1.1) == [0]                  # no WATCHDOG=1 for longer than 1 s: stuck, said once
        assert pool.poll(now + 1.2) == []
        sd.idle(0.2)
        assert [m for _, _, m in sd.got if "READY" in m] == [{"READY": "1", "STATUS": "1 worker ready"}]
    finally:
        pool.close()
        sd.close()


def test_a_sighup_while_the_workers_start_kills_none_and_the_pool_comes_up(tmp_path, url):
    """A SIGHUP (a reload, `systemctl reload` during the start) passed on while the workers are still starting: each
    ignores it until its loop's handlers are in place (cmd_serve's SIG_IGN, inherited from the exec on), as a single
    serve does, so none dies (each died of it, status -1, before its cmd_serve ran, and was restarted after 1 s)."""
    sd = Systemd()
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
    p, ready, err = _pool(tmp_path, sd, url, sim.port, 0)
    try:
        end = time.monotonic() + 30
        while "worker 1 started" not in err.read_text():
            assert time.monotonic() < end and p.poll() is None, err.read_text()
            time.sleep(0.005)
        p.send_signal(signal.SIGHUP)                        # passed on at once: the workers' Python is starting
        sd.read(lambda m: m.get("READY") == "1")
        assert "exited with status" not in err.read_text(), err.read_text()
        assert len(_worker_pids(err, 0)) == len(_worker_pids(err, 1)) == 1
    finally:
        _stop(p, err)
        sim.stop()
        sd.close()
    assert p.returncode == 0, err.read_text()


def test_a_sigterm_the_moment_the_pool_says_ready_stops_it_cleanly(tmp_path, url):
    """A SIGTERM sent as READY=1 arrives (a script that stops what it started, `systemctl restart` right after a
    start): the pool drains and exits 0 with no ready file left. Before, the pool's ready file was written a round
    after its READY=1 from worker 0's, which the worker removes as it stops: read as it went, the pool exited 2."""
    sd = Systemd()
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
    p, ready, err = _pool(tmp_path, sd, url, sim.port, 0)
    try:
        sd.read(lambda m: m.get("READY") == "1")
        p.send_signal(signal.SIGTERM)
        assert p.wait(40) == 0, err.read_text()
        assert not any(tmp_path.glob("ready*")) and not any(tmp_path.glob(".ready*")), sorted(tmp_path.iterdir())
    finally:
        _stop(p, err)
        sim.stop()
        sd.close()
