"""`serve --workers 2 --metrics-listen`, real processes and a real redis-server: one scrape of worker 0's /metrics
shows the whole pool (each sample labelled with its worker; each worker's verdicts equal its own `ctl stats`, their
sum every message sent: none lost, none counted twice; `ctl stats --pool` sums the same, and says it is partial,
exit 1, while a worker does not answer), and a worker stopped (SIGSTOP: stuck) or killed leaves the
scrape whole with telfilter_worker_up 0 for it and /healthz 503 naming it, until it serves again."""
import json
from contextlib import suppress
import os
import signal
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from engine.control_client import request

from .conftest import ROOT
from .durable_helpers import _hours_config
from .redis_helpers import redis_server  # noqa: F401
from .test_redis_serve import Node, _ad, _client, _plain, url  # noqa: F401  (url: fixture)
from .test_metrics import _get
from .test_serve import free_port, wait_for


def _close(clients):
    for c in clients:
        with suppress(Exception):          # (a bind on the killed worker is gone already)
            c.disconnect()
    clients.clear()


def _scrape(port):
    code, text = _get(port, "/metrics")
    assert code == 200, text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    verdicts: dict = {}
    for s in fams["telfilter_verdicts"].samples:
        if s.labels["channel"] == "sms":
            verdicts[s.labels["worker"]] = verdicts.get(s.labels["worker"], 0) + s.value
    up = {s.labels["worker"]: s.value for s in fams["telfilter_worker_up"].samples}
    return verdicts, up


def _ctl_verdicts(sock):
    st = request(sock, {"cmd": "stats"}, 5)["smpp"]
    return sum(v for k, v in st.items() if k.startswith("verdict_"))


def _pool_stats(pool, *more):
    return subprocess.run([sys.executable, "-m", "engine.cli", "ctl", "--data-dir", pool.data, "stats", "--pool", *more],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def _worker_pid(pool, i):
    return [int(line.rsplit("pid ", 1)[1].rstrip(")")) for line in pool.err.read_text().splitlines()
            if f"worker {i} started (pid" in line][-1]


def test_one_scrape_of_a_pool_shows_every_workers_traffic(tmp_path, url):  # noqa: F811
    cfg = _hours_config(tmp_path)
    mport = free_port()
    pool = Node(tmp_path, "pool", url, cfg, workers=2, extra=["--metrics-listen", f"127.0.0.1:{mport}"])
    socks = {"0": pool.data / "control.sock", "1": pool.data / "control.w1.sock"}
    clients, sent = [], 0
    try:
        pool.start()
        assert wait_for(lambda: _get(mport, "/healthz")[0] == 200, 10), _get(mport, "/healthz")
        # binds until both workers have judged messages (the kernel spreads connections by address hash)
        for _ in range(24):
            c = _client(pool.port)
            clients.append(c)
            for _ in range(3):
                assert _plain(c) == 0
            sent += 3
            if len(clients) >= 4 and all(_ctl_verdicts(p) for p in socks.values()):
                break
        assert all(_ctl_verdicts(p) for p in socks.values()), "the kernel put every bind on one worker"
        for c in clients:             # one ad each to one recipient: the 4th and later are dropped (another action)
            _ad(c, "84912000999")
            sent += 1

        def agree():
            verdicts, up = _scrape(mport)
            ctl = {w: _ctl_verdicts(p) for w, p in socks.items()}
            return up == {"0": 1, "1": 1} and verdicts == ctl and sum(ctl.values()) == sent and (verdicts, ctl)
        assert wait_for(agree, 10), (_scrape(mport), {w: _ctl_verdicts(p) for w, p in socks.items()}, sent)
        r = _pool_stats(pool)
        assert r.returncode == 0, r.stdout + r.stderr
        ans = json.loads(r.stdout)
        total = sum(v for k, v in ans["pool"]["smpp"].items() if k.startswith("verdict_"))
        assert total == sent and sorted(ans["workers"]) == ["0", "1"], ans["pool"]
        ok_before = _scrape(mport)[0]["0"]

        w1 = _worker_pid(pool, 1)
        os.kill(w1, signal.SIGSTOP)                     # stuck: its control socket takes the connection, never answers
        try:
            verdicts, up = _scrape(mport)
            code, why = _get(mport, "/healthz")
            partial = _pool_stats(pool, "--timeout", "1")
        finally:
            os.kill(w1, signal.SIGCONT)
        assert up == {"0": 1, "1": 0} and verdicts == {"0": ok_before}, (verdicts, up)
        assert code == 503 and why.startswith("worker 1: no answer within"), why
        assert partial.returncode == 1 and "worker 1 did not answer" in partial.stderr, partial.stderr
        assert wait_for(lambda: _get(mport, "/healthz")[0] == 200, 10)

        _close(clients)
        os.kill(w1, signal.SIGKILL)                     # restarted by the supervisor: 503 naming it until it serves
        assert wait_for(lambda: (lambda h: h[0] == 503 and "worker 1: " in h[1])(_get(mport, "/healthz")), 10)
        assert _scrape(mport)[1]["0"] == 1
        assert wait_for(lambda: pool.err.read_text().count("worker 1 started") == 2, 15), pool.err.read_text()
        reasons = set()                                 # what /healthz says while worker 1 starts again

        def healthy():
            code, why = _get(mport, "/healthz")
            reasons.add(why.strip())
            return code == 200
        assert wait_for(healthy, 30), _get(mport, "/healthz")
        # (it said "no --metrics-listen: this serve counts nothing" between its control socket and its proxy)
        assert not [r for r in reasons if "--metrics-listen" in r], reasons
        assert _scrape(mport)[1] == {"0": 1, "1": 1}
    finally:
        _close(clients)
        pool.stop()
    assert pool.proc.returncode == 0
