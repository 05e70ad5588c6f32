"""`telfilter ctl reload` (and `ml promote`'s reload: control_client.request_pool) asks every worker of a
`serve --workers N` pool at once: stuck workers (their control socket takes the connection and never answers) cost
the command its --timeout once, not once each in turn (three stuck workers and `--timeout 1` took 3.0 s). What it
says is as before: each worker's answer under `workers` in worker order, one that gives none reported (`ok` null)
and not fatal (exit 0), one that refuses failing the command (exit 1), no worker 0 exit 2.

Real Unix sockets in the test's tmp dir (tests/test_ctl_stats_pool_stuck_workers.py's): worker 0 and the workers
that answer do so from a thread; the stuck ones listen and never accept. Every socket is closed by the test."""
import json
import time

from engine.cli_parser import parser
from engine.control import worker_socket
from engine.control_client import cmd_ctl

from .test_ctl_stats_pool_stuck_workers import TIMEOUT, answering, stuck_workers

RELOADED = {"ok": True, "rules": {"ok": True, "errors": [], "rules": 3}}


def _reload(base, capsys):
    args = parser().parse_args(["ctl", "--socket", str(base), "--timeout", str(TIMEOUT), "reload", "rules"])
    t = time.monotonic()
    rc = cmd_ctl(args)
    took = time.monotonic() - t
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if out.out else None), out.err, took


def _close(socks, threads):
    for t in threads:
        t.join(5)
    for s in socks:
        s.close()


def test_stuck_workers_cost_a_reload_one_timeout_together(tmp_path, capsys):
    base = tmp_path / "control.sock"
    w0, t0 = answering(base, RELOADED)
    stuck = stuck_workers(base, (1, 2, 3))
    try:
        rc, ans, err, took = _reload(base, capsys)
    finally:
        _close([w0, *stuck], [t0])
    assert rc == 0 and ans["ok"] is True and ans["rules"]["rules"] == 3, (ans, err)
    assert list(ans["workers"]) == ["1", "2", "3"], ans
    assert all(w["ok"] is None and "no answer within" in w["error"] for w in ans["workers"].values()), ans
    # asked in turn: 3 timeouts (3 s); at once: one, and the command stays within it
    assert took < TIMEOUT * 1.8, took


def test_a_worker_refusing_fails_the_reload_beside_stuck_ones(tmp_path, capsys):
    base = tmp_path / "control.sock"
    w0, t0 = answering(base, RELOADED)
    stuck = stuck_workers(base, (1, 2))
    w3, t3 = answering(worker_socket(base, 3), {"ok": False, "rules": {"ok": False, "errors": ["r.toml:1:1: bad"]}})
    try:
        rc, ans, err, took = _reload(base, capsys)
    finally:
        _close([w0, w3, *stuck], [t0, t3])
    assert rc == 1 and ans["ok"] is False and "reload refused by a worker" in err, (ans, err)
    assert list(ans["workers"]) == ["1", "2", "3"] and ans["workers"]["3"]["ok"] is False, ans
    assert ans["workers"]["1"]["ok"] is None and ans["workers"]["2"]["ok"] is None, ans
    assert took < TIMEOUT * 1.8, took


def test_no_worker_0_is_no_server(tmp_path, capsys):
    base = tmp_path / "control.sock"
    w1, t1 = answering(worker_socket(base, 1), RELOADED)       # (a pool whose worker 0 is restarting)
    try:
        rc, ans, err, _ = _reload(base, capsys)
    finally:
        _close([w1], [t1])
    assert rc == 2 and ans is None and "no telfilter serve answers on" in err, err
