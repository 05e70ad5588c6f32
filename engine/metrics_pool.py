"""A `serve --workers N` pool on worker 0's `--metrics-listen`: one scrape shows every worker (engine/supervisor.py).

Theory of operation. Each worker counts its own verdicts and reads its own components at scrape time, as a single
serve does (engine/metrics.py, metrics_collect.py). A worker i > 0 has no HTTP listener: it answers
{"cmd": "metrics"} on its control socket with its registry's families as JSON (`families`, the same collectors) and
its own /healthz verdict (`health`). A scrape of worker 0's /metrics or /healthz asks every other worker at once, all
of them within POOL_TIMEOUT_S in total, and exposes each family once with every worker's samples, each labelled
worker="i" (worker 0's too): a sample is one worker's and no other's, so `sum without (worker) (...)` is the pool's
figure and nothing is counted twice. telfilter_worker_up{worker="i"} is 1 when worker i's samples are in this
scrape. A worker restarting (its socket refuses) or stuck (it never answers) costs the scrape at most POOL_TIMEOUT_S
and its own samples only; /healthz then says which worker and why (503), as for any worker whose own health fails
(its SMSC links, its disk writes). Scrapes and probes arriving together share one round of questions, so worker 0
holds at most one control connection per worker (a control socket serves MAX_CONNECTIONS peers at once).

Not prometheus_client's multiprocess mode: it aggregates only values written through its Counter/Gauge/Histogram
classes (a lock and an mmap write per increment, where the verdict counters are plain ints read at scrape time), and
nothing the collectors read from the components at scrape time (binds, SMSC links, tables, the process's memory).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("telfilter")

POOL_TIMEOUT_S = 0.5             # all the other workers' answers, together: a scrape of a pool waits no longer
MAX_ANSWER = 16 * 1024 * 1024    # one worker's families (~30 KB with a few hundred symbols)


def families(registry) -> list:
    """A registry's families as JSON-able lists: [name, type, help, [[sample name, labels, value], ...]]."""
    return [[f.name, f.type, f.documentation, [[s.name, s.labels, s.value] for s in f.samples]]
            for f in registry.collect()]


def answer(metrics) -> dict:
    """A worker's answer to {"cmd": "metrics"} (control.py)."""
    if metrics is None:
        return {"ok": False, "error": "no --metrics-listen: this serve counts nothing"}
    if not metrics.ready:       # its state, files and listeners not all up yet (a worker restarting): not "counts nothing"
        return {"ok": False, "starting": True, "error": "not ready (starting; worker 0: or stopping)"}
    ok, why = metrics.health()
    return {"ok": True, "families": families(metrics.registry), "health": [ok, why]}


async def _ask(path: Path) -> dict | str:
    pause = 0.01
    while True:
        try:
            r, w = await asyncio.open_unix_connection(str(path), limit=MAX_ANSWER)
        except (FileNotFoundError, ConnectionRefusedError):
            return "does not answer on its control socket (restarting?)"
        try:
            w.write(b'{"cmd": "metrics"}\n')
            line = await r.readline()
        finally:
            w.close()
        if not line:
            return "closed its control connection without an answer"
        ans = json.loads(line)
        if not ans.get("busy"):
            break
        # its MAX_CONNECTIONS slots taken by operators' `ctl` commands (a script's, in parallel): asked again, within
        # the round's POOL_TIMEOUT_S (Pool._ask_all cancels this), as `ctl` does; refused once, it was 503 and no samples
        await asyncio.sleep(pause)
        pause = min(0.1, pause * 2)
    if not ans.get("ok"):
        return str(ans.get("error") or "refused")     # starting (taking files over), busy all the round
    return ans


class Pool:
    """Worker 0's view of the other workers: `sockets` {i: control socket path}."""

    def __init__(self, sockets: dict, timeout: float = POOL_TIMEOUT_S):
        self.sockets, self.timeout = dict(sockets), timeout
        self._round: asyncio.Future | None = None

    async def ask(self) -> dict:
        """{i: the worker's answer (a dict) or why there is none (a str)}, within `timeout` in all."""
        if self._round is None or self._round.done():
            self._round = asyncio.ensure_future(self._ask_all())
        return await asyncio.shield(self._round)      # a scrape that gives up leaves the round to the others

    async def _ask_all(self) -> dict:
        tasks = {i: asyncio.ensure_future(_ask(p)) for i, p in sorted(self.sockets.items())}
        if tasks:
            await asyncio.wait(tasks.values(), timeout=self.timeout)
        out = {}
        for i, t in tasks.items():
            if not t.done():
                t.cancel()
                out[i] = f"no answer within {self.timeout:g}s (stuck, or busy)"
            elif t.exception() is not None:
                e = t.exception()
                out[i] = f"its control socket failed: {e.__class__.__name__}: {e}"
            else:
                out[i] = t.result()
        return out


def pool_of(ctl_base) -> Pool:
    """Worker 0's Pool: the other workers' control sockets beside its own `ctl_base` (None: --control-socket off)."""
    if ctl_base is None:
        log.warning("--control-socket off in a --workers pool: /metrics and /healthz show worker 0 only")
        return Pool({})
    from .control import worker_socket
    n = int(os.environ.get("TELFILTER_WORKERS", "1"))
    return Pool({i: worker_socket(ctl_base, i) for i in range(1, n)})


class _PoolCollector:
    def __init__(self, own, answers: dict):
        self.own, self.answers = own, answers

    def collect(self):
        merged: dict[str, Metric] = {}
        up = GaugeMetricFamily("telfilter_worker_up", "1 when this worker of the --workers pool answered worker 0 "
                               "in time and its series are in this scrape, 0 when not", labels=["worker"])

        def add(fams, w: str) -> None:
            for name, typ, doc, samples in fams:
                m = merged.get(name)
                if m is None:
                    m = merged[name] = Metric(name, doc, typ)
                elif m.type != typ:         # (workers of two versions mid-upgrade: one type per family)
                    continue
                for sname, labels, value in samples:
                    m.add_sample(sname, {**labels, "worker": w}, value)
        add(families(self.own), "0")
        up.add_metric(["0"], 1)
        for i, a in sorted(self.answers.items()):
            if isinstance(a, dict):
                add(a.get("families") or (), str(i))
            up.add_metric([str(i)], 1 if isinstance(a, dict) else 0)
        yield from merged.values()
        yield up


def exposition(own_registry, answers: dict) -> bytes:
    """The pool's /metrics body: worker 0's families and the others' answers, each sample labelled with its worker."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_PoolCollector(own_registry, answers))
    return generate_latest(reg)


def health(own: tuple[bool, str], answers: dict) -> tuple[bool, str]:
    """The pool's /healthz: 200 only when every worker answered and is healthy; else each reason, by worker."""
    why = [] if own[0] else [f"worker 0: {own[1]}"]
    for i, a in sorted(answers.items()):
        if not isinstance(a, dict):
            why.append(f"worker {i}: {a}")
        else:
            ok, said = a.get("health") or (False, "its answer has no health")
            if not ok:
                why.append(f"worker {i}: {said}")
    return (False, "; ".join(why)) if why else (True, "ok")
