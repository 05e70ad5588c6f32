"""Long-run step in process: does the cost per message stay flat while state accumulates?

    python -m benchmarks.longrun N SECONDS [RATE]     judge up to N messages of the realistic mix
    python -m benchmarks.longrun keys N               bytes of counter state per advertiser-recipient key

Theory of operation: the whole pipeline (shipped Decree 91 pack, bundled model, a seeded registry,
blacklist and DNC) judges the mix of benchmarks.traffic in order, with traffic time advancing at
RATE messages per second (2,000/s by default: 200k messages span 100 s of traffic, so nothing in
a 5-minute or 1-hour window expires and every new sender, recipient and template adds state).
Messages are built in chunks before timing; each chunk's judging is timed with process CPU time
(per-message CPU per slice) and each judge() call with a wall clock (the p99) and the thread's
CPU clock (its worst is the longest stall one message caused: a collection or a state table
growing, whatever it was; the wall clock's worst also holds other tenants' preemptions).
GC pauses are timed with gc.callbacks. After the pipeline is built the collector is set up as
`serve` sets it up after start-up (gc.freeze() and its thresholds), since that is what runs. It stops at N messages or SECONDS of judging, whichever comes first,
and says which. Runs in its own process so that its heap and GC history are its own.
"""
from __future__ import annotations

import gc
import json
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

CHUNK = 5_000


class GcTimer:
    """Time of every collection, by generation (gc.callbacks: start/stop pairs): wall time, which
    holds other tenants' preemptions on a shared machine, and the thread's CPU time, which does not."""

    def __init__(self):
        self.t0 = self.c0 = 0.0
        self.pauses = {0: [], 1: [], 2: []}
        self.cpu = {0: [], 1: [], 2: []}

    def __call__(self, phase, info):
        if phase == "start":
            self.t0, self.c0 = time.perf_counter(), time.thread_time()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self.t0)
            self.cpu[info["generation"]].append(time.thread_time() - self.c0)

    def summary(self) -> dict:
        out = {}
        for g, p in self.pauses.items():
            out[f"gen{g}"] = {"count": len(p), "max_ms": max(p) * 1e3 if p else 0.0,
                              "max_cpu_ms": max(self.cpu[g]) * 1e3 if p else 0.0, "total_ms": sum(p) * 1e3}
        out["max_ms"] = max(v["max_ms"] for k, v in out.items())
        out["max_cpu_ms"] = max(v["max_cpu_ms"] for k, v in out.items() if k.startswith("gen"))
        return out


def judge_run(n: int, seconds: float, rate: float = 2000.0, dnc_n: int = 1_000_000) -> dict:
    from engine.app import build
    from engine.records import parse_record
    from .traffic import records, seed_data
    from .util import rss_mb
    from .util import scratch_dir
    with scratch_dir() as td:
        nums = seed_data(Path(td), dnc_n)
        pipe = build(data_dir=td, persist=False)
        from engine.serve import GC_THRESHOLDS
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        sample = nums[:: max(1, len(nums) // 10_000)]
        gen = records(n, seed=23, dnc_sample=sample, rate=rate)
        timer = GcTimer()
        gc.callbacks.append(timer)
        slices, lat, clat = [], np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64)
        by_mix: dict = defaultdict(Counter)
        tagged_symbols: dict = defaultdict(Counter)
        done, judged_s, rss0 = 0, 0.0, rss_mb()
        pc, cpu, tcpu = time.perf_counter, time.process_time, time.thread_time
        stopped_by = "count"
        while done < n:
            if judged_s >= seconds:
                stopped_by = "time"
                break
            chunk = []
            for rec in gen:
                mix = rec.pop("mix")
                chunk.append((parse_record(rec), mix))
                if len(chunk) >= CHUNK:
                    break
            if not chunk:
                break
            c0, w0 = cpu(), pc()
            for i, (m, mix) in enumerate(chunk):
                a, ta = pc(), tcpu()
                v = pipe.judge(m)
                lat[done + i] = pc() - a
                clat[done + i] = tcpu() - ta
                # tallied now and let go, as serve lets a verdict go once logged: a chunk's verdicts kept until
                # its end (5,000 Verdicts, their hits) made the collector run every ~700 messages instead of
                # every ~15,000, and those collections were the run's, not serve's (in the p99, the GC pauses)
                by_mix[mix][str(v.action)] += 1
                for h in v.hits:
                    tagged_symbols[mix][h.symbol] += 1
            c1, w1 = cpu(), pc()
            judged_s += w1 - w0
            slices.append({"messages": done + len(chunk), "cpu_us_per_msg": (c1 - c0) / len(chunk) * 1e6,
                           "wall_us_per_msg": (w1 - w0) / len(chunk) * 1e6})
            done += len(chunk)
        gc.callbacks.remove(timer)
        rss1 = rss_mb()
    lat, clat = lat[:done] * 1e6, clat[:done] * 1e6
    pcts = (50, 99, 99.9)
    caught = lambda mixes: sum(by_mix[m].get(a, 0) for m in mixes for a in ("tag", "drop"))
    total = lambda mixes: sum(sum(by_mix[m].values()) for m in mixes)
    k = max(1, len(slices) // 5)               # first and last fifth of the run
    first = float(np.mean([s["cpu_us_per_msg"] for s in slices[:k]])) if slices else None
    last = float(np.mean([s["cpu_us_per_msg"] for s in slices[-k:]])) if slices else None
    return {"n_target": n, "n": done, "stopped_by": stopped_by, "seconds_cap": seconds, "traffic_rate": rate,
            "dnc_size": dnc_n, "slices": slices, "first_cpu_us": first, "last_cpu_us": last,
            "growth": (last / first) if first else None,
            # wall time per judge() (what a message waits) and the thread's CPU time (what it costs; on a
            # shared machine the wall p99 also holds other tenants' preemptions)
            "judge_us": {f"p{q:g}": float(v) for q, v in zip(pcts, np.percentile(lat, pcts))} if done else {},
            "judge_cpu_us": {f"p{q:g}": float(v) for q, v in zip(pcts, np.percentile(clat, pcts))} if done else {},
            "judge_mean_us": float(lat.mean()) if done else None,
            "judge_max_ms": float(lat.max()) / 1e3 if done else None,
            "judge_cpu_max_ms": float(clat.max()) / 1e3 if done else None,
            "p2p_tagged_or_dropped_pct": 100 * caught(("p2p", "p2p_ucs2")) / max(1, total(("p2p", "p2p_ucs2"))),
            "p2p_shared_template_pct": 100 * sum(tagged_symbols[m].get("SHARED_TEMPLATE", 0) for m in ("p2p", "p2p_ucs2"))
            / max(1, total(("p2p", "p2p_ucs2"))),
            "campaign_caught_pct": 100 * caught(("campaign",)) / max(1, total(("campaign",))),
            "gc": timer.summary(), "rss_growth_mb": rss1 - rss0,
            "verdicts_by_mix": {k: dict(v) for k, v in by_mix.items()},
            "hits_by_mix": {k: dict(v.most_common(6)) for k, v in tagged_symbols.items()}}


def key_bytes(n: int) -> dict:
    """Counter state per advertiser-recipient key (AD_FREQUENCY_CAP: owner + recipient, 24 h, limit 3, counted
    at delivery: rows with room for 6 stamps), one message per key, through the CounterStore interface. Uses the store's own `memory_bytes()`
    when it has one, and tracemalloc (every Python allocation the store retains, which does not
    include the flat tables' anonymous mappings) in any case."""
    from engine.rules.counters import MemoryCounters
    ns, owner, ts = "AD_FREQUENCY_CAP", "o:shop abc", 1_790_000_000.0
    c = MemoryCounters()
    c.add_at(ns, (owner, 84_900_000_000 - 1), ts, ts, 86400.0, 3)      # the namespace itself is not per key
    mb0 = c.memory_bytes() if hasattr(c, "memory_bytes") else None
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        c.add_at(ns, (owner, 84_900_000_000 + i), ts + i * 0.001, ts + i * 0.001, 86400.0, 3)
    t1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    out = {"keys": n, "tracemalloc_bytes_per_key": (t1 - t0) / n}
    if mb0 is not None:
        out["memory_bytes_per_key"] = (c.memory_bytes() - mb0) / n
    # the per-sender recipient history behind SENDER_VOLUME_ANOMALY: one new plain-number sender
    try:
        from engine.rules.counters import RecipientHistory
        h = RecipientHistory()
        h.add(84_800_000_000 - 1, 84_900_000_000 - 1, ts, 3600.0)     # the table itself is not per sender
        b0, k0 = h.memory_bytes(), h.memory_keys()
        m = max(1, n // 4)
        for i in range(m):
            h.add(84_800_000_000 + i, 84_900_000_000 + i, ts + i * 0.001, 3600.0)
        # the flat tables live in anonymous mappings, which tracemalloc does not see: their own count
        out["history_bytes_per_sender"] = (h.memory_bytes() - b0) / (h.memory_keys() - k0)
    except Exception as e:            # the history's interface may have changed: say so, do not guess
        out["history_bytes_per_sender"] = None
        out["history_error"] = repr(e)
    return out


def _usage_error(a) -> bool:
    """Help or arguments that do not fit the two forms of the module docstring (a traceback before)."""
    try:
        if a and a[0] == "keys":
            return len(a) != 2 or int(a[1]) < 1
        if not 2 <= len(a) <= 3:
            return True
        int(a[0]), float(a[1]), [float(x) for x in a[2:]]
        return False
    except ValueError:
        return True


if __name__ == "__main__":
    from .util import exit_on_sigterm
    exit_on_sigterm()       # its TemporaryDirectory is removed on SIGTERM (timeout(1), util.child) too
    a = sys.argv[1:]
    if _usage_error(a):
        print(__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1], file=sys.stdout if a[:1] in (["-h"], ["--help"]) else sys.stderr)
        sys.exit(0 if a[:1] in (["-h"], ["--help"]) else 2)
    if a[0] == "keys":
        print(json.dumps(key_bytes(int(a[1]))))
    else:
        print(json.dumps(judge_run(int(a[0]), float(a[1]), float(a[2]) if len(a) > 2 else 2000.0)))
