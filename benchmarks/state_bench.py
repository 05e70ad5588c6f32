"""Shared state (issue 13): `serve --workers 2 --state redis://…` beside one embedded serve.

    python -m benchmarks.state_bench [--n 20000] [--binds 4] [--window 10] [--keys 200000] [--out FILE]

In one run, on 127.0.0.1 only:
- SMPP step: the same closed loop (binds x window submit_sm in flight, distinct texts from
  benchmarks.traffic) against (1) one `telfilter serve` with the embedded store, (2) one
  with `--state redis://…` and (3) `telfilter serve --workers 2 --state redis://…`. Figures: CPU per submit_sm of the serve
  process tree (supervisor + workers), of redis-server, and the achieved rate.
- Memory per counter key: K advertiser-recipient cap keys (limit 3, 24 h, 3 stamps each)
  written through the store's own script, Redis `used_memory` delta / K; the embedded tables'
  `memory_bytes()` / K for the same keys.
- DNC replication delay: a registration published by node A's replicator until node B's lists
  hold it (B follows the stream with XREAD BLOCK), repeated, percentiles in ms.

Output keys (one JSON object; `python -m benchmarks` puts it under "state" in summary.json):
  smpp_embedded / smpp_redis_1 (one process on Redis) / smpp_redis_workers2: {answered, errors (non-zero statuses: drops included),
      msgs_per_s, cpu_us_per_msg_serve, cpu_us_per_msg_redis and redis_batches_per_msg (redis
      only: batch script calls per submit_sm; below 1 when a loop iteration carries several),
      cpu_us_per_msg_total}
  memory_per_key_bytes: {redis, embedded, keys}
  dnc_replication_ms: {p50, p99, max, n}
  redis_version, skipped (why, when redis-server is missing)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .smpp_bench import _free_port, _wait_port
from .smpp_cpu import closed_loop, drops_and_errors
from .traffic import pdus as _pdus
from .util import OWN_GROUP, out_file, positive, run_seconds, scratch_dir, tree_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent


def ensure_redis() -> str | None:
    exe = shutil.which("redis-server") or shutil.which("valkey-server")
    if exe is None:
        try:
            subprocess.run(["apt-get", "install", "-y", "redis-server"], capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            pass
        exe = shutil.which("redis-server")
    return exe


class Redis:
    def __init__(self, exe, tmp):
        self.port = _free_port()
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
        try:                # (not started in time, or a SIGTERM meanwhile: stopped, as nobody else holds it)
            assert _wait_port(self.port, 10), "redis-server did not start"
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def _serve(tmp: Path, sim_port: int, extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    data = tmp / f"data-{port}"
    ready = tmp / f"ready-{port}"
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(data),
                          "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{sim_port}",
                          "--esme-account", "bench:pw", "--sip-listen", "off", "--log", "/dev/null",
                          "--control-socket", "off", "--ready-file", str(ready), *extra],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / f"serve-{port}.log", "w"))
    try:                    # (a SIGTERM while it loads, SystemExit here, or a serve that never got ready: stopped)
        end = time.time() + 120
        while not ready.exists():
            if p.poll() is not None or time.time() > end:
                raise RuntimeError((tmp / f"serve-{port}.log").read_text()[-2000:])
            time.sleep(0.1)
        time.sleep(1.0)     # upstream binds
    except BaseException:
        p.kill()
        p.wait()
        raise
    return p, port


def _commands(port) -> int:
    """Batch script calls so far (EVALSHA: one per batch of messages)."""
    import redis
    c = redis.Redis(host="127.0.0.1", port=port)
    try:
        return int(c.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
    finally:
        c.close()


def smpp_step(tmp, sim_port, pdus, binds, window, extra, redis_pid=None, redis_port=None) -> dict:
    import uvloop
    p, port = _serve(tmp, sim_port, extra)
    try:
        uvloop.run(closed_loop(port, pdus[:2000], binds, window))          # warm-up
        # CPU in ns (schedstat): /proc/PID/stat's 10-ms ticks made a short --n's figures multiples of 10 ms / n
        c0 = tree_cpu_seconds(p.pid, own=run_seconds)
        r0 = run_seconds(redis_pid) if redis_pid else 0.0
        k0 = _commands(redis_port) if redis_port else 0
        statuses: dict = {}
        ok, err, wall = uvloop.run(closed_loop(port, pdus[2000:], binds, window, statuses=statuses))
        cpu = tree_cpu_seconds(p.pid, own=run_seconds) - c0
        rcpu = (run_seconds(redis_pid) - r0) if redis_pid else 0.0
        calls = (_commands(redis_port) - k0) if redis_port else 0
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    n = max(ok + err, 1)
    drops, errors, error_statuses = drops_and_errors(statuses)
    out = {"answered": ok + err, "policy_drops": drops, "errors": errors, "error_statuses": error_statuses,
           "msgs_per_s": round((ok + err) / wall),
           "cpu_us_per_msg_serve": round(cpu / n * 1e6, 1)}
    if redis_pid:
        out["cpu_us_per_msg_redis"] = round(rcpu / n * 1e6, 1)
        out["redis_batches_per_msg"] = round(calls / n, 3)
    out["cpu_us_per_msg_total"] = round((cpu + rcpu) / n * 1e6, 1)
    return out


def memory_per_key(redis: Redis, keys: int) -> dict:
    """K advertiser-recipient keys with 3 stamps each, through the store's script."""
    import msgpack

    from engine.rules.counters import MemoryCounters
    from engine.state.embedded import stable_key
    from engine.state.redis_script import LUA, TTL_SLACK, counter_key
    c = redis.client()
    c.flushall()
    base = c.info("memory")["used_memory"]
    sha = c.script_load(LUA)
    ns = "AD_FREQUENCY_CAP|owner+recipient|24h|None"
    mem = MemoryCounters()
    now = int(time.time())
    B = 500
    for lo in range(0, keys, B):
        ks = [counter_key(ns, stable_key((123456789, 84900000000 + i))) for i in range(lo, min(lo + B, keys))]
        for s in range(3):
            msgs = [[[j + 1, 0, 3, 86400, now + s, 1, 0]] for j in range(len(ks))]
            # the arguments as RedisStore._eval passes them: the counter keys, one riding stream (its blob, MINID
            # and process id), then the batch's own token last (a token seen before is a batch already settled)
            c.evalsha(sha, len(ks) + 1, *ks, "tf:ev", msgpack.packb(msgs), TTL_SLACK, len(ks), b"", "0-0", "bench",
                      f"bench-{lo}-{s}")
    used = c.info("memory")["used_memory"] - base
    written = sum(1 for _ in c.scan_iter(match="tf:c:*", count=1000))
    if written != keys:     # a figure over keys that are not there is no figure
        raise RuntimeError(f"memory per key: {written:,} of {keys:,} counter keys written (batch script arguments?)")
    for i in range(keys):
        for s in range(3):
            mem.add(ns, stable_key((123456789, 84900000000 + i)), now + s, 86400, 3)
    c.flushall()
    c.close()
    return {"keys": keys, "redis_keys": written, "redis": round(used / keys, 1),
            "embedded": round(mem.memory_bytes() / keys, 1)}


def dnc_delay(redis: Redis, tmp: Path, n: int = 50) -> dict:
    from engine.app import build
    from engine.state.replication import DncReplicator

    async def main():
        a = build(data_dir=tmp / "dnc-a", with_model=False)
        b = build(data_dir=tmp / "dnc-b", with_model=False)
        ra, rb = DncReplicator(redis.url, a), DncReplicator(redis.url, b)
        await ra.catch_up()
        await rb.catch_up()
        follow = asyncio.ensure_future(rb.follow())
        await asyncio.sleep(0.3)
        out = []
        for i in range(n):
            num = 84990000000 + i
            t0 = time.perf_counter()
            a.lists.add_dnc(num, "S")
            a.store.append_delta("add", num, "S")
            while num not in b.lists.dnc_s:
                await asyncio.sleep(0.0002)
            out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.02)
        follow.cancel()
        await ra.close()
        await rb.close()
        return out
    d = sorted(asyncio.run(main()))
    return {"n": n, "p50": round(d[len(d) // 2], 2), "p99": round(d[int(len(d) * 0.99) - 1], 2),
            "max": round(d[-1], 2), "includes": "journal fsync on A and on B, XADD, XREAD wake-up"}


def run(n=20000, binds=4, window=10, keys=200_000) -> dict:
    exe = ensure_redis()
    if exe is None:
        return {"skipped": "redis-server not installed and apt-get install -y redis-server failed"}
    with scratch_dir(prefix="state-bench-") as td:       # (a stop while redis-server starts: removed too)
        return _measure(exe, Path(td), n, binds, window, keys)


def _measure(exe, tmp: Path, n, binds, window, keys) -> dict:
    redis = Redis(exe, tmp)
    sim = None
    try:
        sim_port = _free_port()
        sim = subprocess.Popen([sys.executable, "-m", "benchmarks.smpp_peers", "responder", str(sim_port)], cwd=ROOT,
                               **OWN_GROUP)
        assert _wait_port(sim_port, 30)
        pdus = _pdus(n + 2000, seed=11)
        out = {"redis_version": redis.client().info("server")["redis_version"], "n": n, "binds": binds,
               "window": window}
        out["smpp_embedded"] = smpp_step(tmp, sim_port, pdus, binds, window, [])
        out["smpp_redis_1"] = smpp_step(tmp, sim_port, pdus, binds, window, ["--state", redis.url],
                                        redis.proc.pid, redis.port)
        out["smpp_redis_workers2"] = smpp_step(tmp, sim_port, pdus, binds, window,
                                               ["--workers", "2", "--state", redis.url], redis.proc.pid, redis.port)
        out["memory_per_key_bytes"] = memory_per_key(redis, keys)
        out["dnc_replication_ms"] = dnc_delay(redis, tmp)
        return out
    finally:
        if sim is not None:
            sim.kill()
            sim.wait()
        redis.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.state_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=positive(int), default=20000, help="submit_sm per set-up (default 20,000)")
    ap.add_argument("--binds", type=positive(int), default=4)
    ap.add_argument("--window", type=positive(int), default=10)
    ap.add_argument("--keys", type=positive(int), default=200_000, help="advertiser-recipient keys for the memory figure")
    ap.add_argument("--out", type=out_file, help="also write the JSON printed to this file")
    a = ap.parse_args(argv)
    res = run(a.n, a.binds, a.window, a.keys)
    s = json.dumps(res, indent=1)
    print(s)
    if a.out:
        Path(a.out).write_text(s + "\n")
    return 0


if __name__ == "__main__":
    from .util import run_main
    sys.exit(run_main(main, "python -m benchmarks.state_bench"))     # SIGTERM, Ctrl-C: what it started is stopped
