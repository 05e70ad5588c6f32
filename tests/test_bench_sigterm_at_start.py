"""SIGTERM while a benchmark waits for a server it has just started (SystemExit from util.exit_on_sigterm, raised in
that wait) stops the server too. The waits for `serve` to be ready (seconds: it loads its lists) ran before the
`try` whose `finally` stops the servers, so a SIGTERM then left `serve` running, reparented to init, with no end:
sip_bench._one (the SIP step of python -m benchmarks), smpp_check._serve, state_bench._serve and its redis-server
(found by review39). Stand-in processes: nothing is started."""
import subprocess
import time

import pytest

from benchmarks import sip_bench, smpp_check, state_bench


class FakeProc:
    started: list = []

    def __init__(self, cmd, *a, **k):
        self.cmd, self.pid, self.returncode, self.stopped = cmd, 999999, None, False
        FakeProc.started.append(self)

    def poll(self):
        return self.returncode

    def send_signal(self, sig):
        self.stopped, self.returncode = True, -sig

    def terminate(self):
        self.send_signal(15)

    def kill(self):
        self.send_signal(9)

    def wait(self, timeout=None):
        return self.returncode


@pytest.fixture
def sigterm_in_wait(monkeypatch):
    """Popen starts nothing; the first sleep is where SIGTERM lands."""
    FakeProc.started = []
    monkeypatch.setattr(subprocess, "Popen", FakeProc)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))

    def sleep(_s):
        raise SystemExit(143)
    monkeypatch.setattr(time, "sleep", sleep)
    return FakeProc.started


def test_sip_step(tmp_path, monkeypatch, sigterm_in_wait):
    monkeypatch.setattr(sip_bench, "_free_udp", lambda: 56001)
    monkeypatch.setattr(sip_bench, "_free_sip_port", lambda: 56002)
    with pytest.raises(SystemExit):
        sip_bench._one(tmp_path, 10, 1, "allowed", server="screen")
    assert sigterm_in_wait and all(p.stopped for p in sigterm_in_wait), [p.cmd[:4] for p in sigterm_in_wait]


def test_smpp_check(tmp_path, monkeypatch, sigterm_in_wait):
    monkeypatch.setattr(smpp_check, "_free_port", lambda: 56003)
    with pytest.raises(SystemExit):
        smpp_check._serve(str(tmp_path), tmp_path, 0, 56004)
    assert sigterm_in_wait and all(p.stopped for p in sigterm_in_wait)


def test_state_bench(tmp_path, monkeypatch, sigterm_in_wait):
    monkeypatch.setattr(state_bench, "_free_port", lambda: 56005)
    with pytest.raises(SystemExit):
        state_bench._serve(tmp_path, 56006, [])
    assert sigterm_in_wait and all(p.stopped for p in sigterm_in_wait)


def test_state_bench_redis(tmp_path, monkeypatch, sigterm_in_wait):
    monkeypatch.setattr(state_bench, "_free_port", lambda: 56007)

    def wait_port(*a, **k):
        raise SystemExit(143)
    monkeypatch.setattr(state_bench, "_wait_port", wait_port)
    with pytest.raises(SystemExit):
        state_bench.Redis("redis-server", tmp_path)
    assert sigterm_in_wait and all(p.stopped for p in sigterm_in_wait)
