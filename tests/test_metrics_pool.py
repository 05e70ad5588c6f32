"""A `serve --workers N` pool's /metrics and /healthz on worker 0 (engine/metrics_pool.py), in one process: worker 0's
Metrics asks "worker 1"'s control socket (a real ControlServer) and labels every sample with its worker; a worker
that is away or never answers leaves worker 0's scrape whole, with telfilter_worker_up 0 and /healthz 503 naming it.
The same through a real pool of processes: tests/test_redis_pool_metrics.py."""
import asyncio

from prometheus_client.parser import text_string_to_metric_families

from engine.app import build
from engine.control import ControlServer
from engine.metrics import Metrics
from engine.metrics_pool import Pool


async def _get(port, path):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = await asyncio.wait_for(r.read(), 5)      # an unbounded ask of the workers would hang here
    w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def _samples(text, name):
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name]


def _verdicts(text):
    return {(s.labels.get("worker"), s.labels["action"]): s.value for s in _samples(text, "telfilter_verdicts_total")}


def _up(text):
    return {s.labels["worker"]: s.value for s in _samples(text, "telfilter_worker_up")}


def _run(tmp_path, body):
    pipe = build(data_dir=tmp_path / "data", with_model=False, persist=False)

    async def main():
        w0, w1 = Metrics(pipe), Metrics(pipe)
        for _ in range(3):
            w0.count("sms", "allow", ["A"], 100)
        for _ in range(5):
            w1.count("sms", "allow", ["A"], 100)
        w1.count("sms", "drop", ["B"], 100)
        ctl = ControlServer(pipe, tmp_path / "control.w1.sock", on_drain=lambda: None)
        ctl.metrics, w1.ready = w1, True
        await ctl.start()
        await w0.start("127.0.0.1:0")
        try:
            return await body(w0, ctl)
        finally:
            await w0.stop()
            await ctl.stop()
    return asyncio.run(main())


def test_a_pool_scrape_has_each_workers_samples_once_labelled_by_worker(tmp_path):
    async def body(w0, ctl):
        single = await _get(w0.port, "/metrics")
        w0.pool = Pool({1: ctl.path})
        return single, await _get(w0.port, "/metrics"), await _get(w0.port, "/healthz")
    (c1, single), (code, text), health = _run(tmp_path, body)
    assert c1 == 200 and 'worker="' not in single          # a single serve's scrape is as it was: no worker label
    assert _verdicts(single) == {(None, "allow"): 3}
    assert code == 200
    assert _verdicts(text) == {("0", "allow"): 3, ("1", "allow"): 5, ("1", "drop"): 1}
    assert _up(text) == {"0": 1, "1": 1}
    # one family per name, every sample of it labelled (a family written twice is refused by Prometheus)
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names))
    assert all("worker" in s.labels for f in text_string_to_metric_families(text) for s in f.samples)
    hist = {s.labels["worker"]: s.value for s in _samples(text, "telfilter_judge_seconds_count")}
    assert hist == {"0": 3, "1": 6}
    assert health == (200, "ok\n")


def test_a_worker_away_or_stuck_leaves_worker_0s_scrape_whole_and_healthz_names_it(tmp_path):
    async def body(w0, ctl):
        await ctl.stop()                                   # away: a restarting worker (its socket gone)
        w0.pool = Pool({1: ctl.path})
        away = await _get(w0.port, "/metrics"), await _get(w0.port, "/healthz")
        stuck_path = str(tmp_path / "stuck.sock")
        held = []

        async def never_answers(r, w):                     # a stuck worker: the connection is taken, nothing said
            held.append(w)
        srv = await asyncio.start_unix_server(never_answers, stuck_path)
        w0.pool = Pool({1: stuck_path})
        # two scrapes at once share one round of questions
        stuck = await asyncio.gather(_get(w0.port, "/metrics"), _get(w0.port, "/healthz"))
        n_conns = len(held)
        srv.close()
        for w in held:
            w.close()
        return away, stuck, n_conns
    away, stuck, n_conns = _run(tmp_path, body)
    for (code, text), (hcode, why) in (away, stuck):
        assert code == 200
        assert _verdicts(text) == {("0", "allow"): 3}
        assert _up(text) == {"0": 1, "1": 0}
        assert hcode == 503 and why.startswith("worker 1: "), why
    assert "restarting" in away[1][1] and "no answer within 0.5s" in stuck[1][1]
    assert n_conns == 1


def test_a_worker_answers_metrics_beside_a_command_under_way(tmp_path):
    """The scrape does not queue behind a worker's reload (a model load holds the command lock for seconds)."""
    async def body(w0, ctl):
        w0.pool = Pool({1: ctl.path})
        async with ctl._lock:                              # a reload under way on worker 1
            return await _get(w0.port, "/metrics")
    code, text = _run(tmp_path, body)
    assert _up(text) == {"0": 1, "1": 1}
    assert _verdicts(text)[("1", "drop")] == 1


def test_a_worker_without_metrics_listen_says_so():
    from engine.metrics_pool import answer
    ans = answer(None)
    assert ans["ok"] is False and "--metrics-listen" in ans["error"]


def test_a_worker_still_starting_says_so_not_that_it_counts_nothing(tmp_path):
    """Found by review: a restarting worker's control socket answers before its proxy is up, and worker 0's /healthz
    said "worker 1: no --metrics-listen: this serve counts nothing" (it does count) until it was."""
    from engine.metrics_pool import answer
    m = Metrics(build(data_dir=tmp_path / "data", with_model=False, persist=False))
    ans = answer(m)
    assert ans["ok"] is False and ans["starting"] and "--metrics-listen" not in ans["error"], ans
    m.ready = True                                         # serve's start done
    assert answer(m)["ok"] is True


def test_worker_0_asks_every_other_worker_of_its_pool(tmp_path, monkeypatch, caplog):
    from engine.metrics_pool import pool_of
    monkeypatch.setenv("TELFILTER_WORKERS", "3")
    base = tmp_path / "ctl.sock"
    assert pool_of(base).sockets == {1: tmp_path / "ctl.w1.sock", 2: tmp_path / "ctl.w2.sock"}
    with caplog.at_level("WARNING", logger="telfilter"):
        assert pool_of(None).sockets == {}                 # --control-socket off: worker 0 alone, said
    assert "--control-socket off" in caplog.text


def test_a_serve_asked_for_metrics_before_its_proxy_is_up_says_starting(tmp_path):
    """A real serve held before its SMPP listener starts (as a restarting worker is while it restores its state):
    its control socket answers `metrics` "starting", not "no --metrics-listen: this serve counts nothing" (which
    worker 0's /healthz showed for a restarting worker 1), and answers it with its families once it serves."""
    import subprocess
    import sys
    import time
    from engine.control_client import request
    from .conftest import ROOT
    from .test_serve import free_port, wait_for
    go, sock = tmp_path / "go", tmp_path / "data" / "control.sock"
    code = ("import asyncio, os, sys, engine.smpp_proxy.server as s\n"
            "start = s.SmppProxy.start\n"
            "async def held(self, *a, **k):\n"
            f"    while not os.path.exists({str(go)!r}):\n        await asyncio.sleep(0.02)\n"
            "    return await start(self, *a, **k)\n"
            "s.SmppProxy.start = held\n"
            "from engine.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    p = subprocess.Popen([sys.executable, "-c", code, "serve", "--data-dir", str(tmp_path / "data"), "--sip-listen",
                          "off", "--smpp-listen", f"127.0.0.1:{free_port()}", "--esme-account", "t:pw",
                          "--metrics-listen", f"127.0.0.1:{free_port()}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        assert wait_for(sock.exists, 30)
        held = request(sock, {"cmd": "metrics"}, 5)
        go.touch()
        end = time.monotonic() + 30
        while (up := request(sock, {"cmd": "metrics"}, 5)).get("starting") and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        p.terminate()
        p.wait(30)
    assert held["ok"] is False and held.get("starting") and "--metrics-listen" not in held["error"], held
    assert up["ok"] is True and any(f[0] == "telfilter_verdicts" for f in up["families"]), up.get("error")


def test_a_workers_metrics_that_fail_are_answered_with_the_error(tmp_path, caplog):
    """Found by review: `metrics`, answered outside the command lock, was outside its try too: a collector's bug
    dropped the connection unanswered (asyncio's "Unhandled exception in client_connected_cb") and worker 0's /healthz
    said "closed its control connection without an answer" instead of the error."""
    class Broken:
        def collect(self):
            raise RuntimeError("a collector bug")

    async def body(w0, ctl):
        ctl.metrics.registry.register(Broken())
        w0.pool = Pool({1: ctl.path})
        return await _get(w0.port, "/healthz")
    with caplog.at_level("ERROR", logger="telfilter"):
        code, why = _run(tmp_path, body)
    assert code == 503 and why == "worker 1: RuntimeError: a collector bug\n", why
    assert "control command 'metrics' failed" in caplog.text


def test_a_worker_busy_with_operators_commands_for_a_moment_is_asked_again(tmp_path):
    """Found by review: a worker whose control slots were all taken by `ctl` commands (a script's, in parallel) answered
    worker 0 "busy" and the pool's /healthz was 503 and its samples missing, for a moment's contention."""
    from engine.control import MAX_CONNECTIONS

    async def body(w0, ctl):
        held = [await asyncio.open_unix_connection(str(ctl.path)) for _ in range(MAX_CONNECTIONS)]
        while ctl.active < MAX_CONNECTIONS:                # every slot taken (a 5th peer is answered busy)
            await asyncio.sleep(0.01)
        asyncio.get_running_loop().call_later(0.1, lambda: [w.close() for _, w in held])   # their commands end
        w0.pool = Pool({1: ctl.path})
        return await _get(w0.port, "/metrics"), await _get(w0.port, "/healthz")
    (code, text), health = _run(tmp_path, body)
    assert _up(text) == {"0": 1, "1": 1} and _verdicts(text)[("1", "drop")] == 1
    assert health == (200, "ok\n")
