"""SMPP capacity: telfilter against a raw forwarder and a straight line to the SMSC, same run.

Processes, all on 127.0.0.1, each separately measurable: the lean responder (the SMSC,
benchmarks.smpp_peers), the raw forwarder (SMPP framing only, benchmarks.smpp_peers),
`telfilter serve` (the proxy under test: shipped Decree 91 pack, bundled model, a seeded
registry/blacklist/DNC, verdict log to a file; run through benchmarks.proxy_runner, which times its
GC pauses) and the load generator (benchmarks.smpp_load,
4 binds × window 10, the realistic mix). Steps:

1. saturation: closed loop (every window kept full) through a fresh proxy, then through the
   forwarder, then straight to the responder: the most each can answer, and CPU µs per
   submit_sm = process CPU time / submit_sm answered. The proxy's per-second series gives the
   cost growth between the first and the last part of the run.
2. the ladder: open-loop offered rates up to and past the proxy's saturation (the configured rates,
   5k/s, half and 1.25× the measured saturation); at each rate straight, forwarder and proxy, so added latency is read
   against the same generator at the same rate. A target stops being offered more once it has
   saturated (answered < 90% of offered).
3. accounting: every submit_sm answered once (no unanswered, no unexpected responses) and one
   verdict line per message the proxy judged.
"""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from . import ports
from .util import OWN_GROUP, scratch_dir

THROTTLED = "0x58"


def _free_port():
    return ports.free_port()


def _wait_port(port, timeout=30.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def _load(port, rate, seconds, watch, seed, sample, count=None, cycle=False, timeout=None, campaign_share=None,
          extra=()) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.smpp_load", "--port", str(port), "--rate", str(rate),
           "--seconds", str(seconds), "--seed", str(seed), "--dnc-sample", str(sample), *extra]
    if campaign_share is not None:
        cmd += ["--campaign-share", str(campaign_share)]
    if count:
        cmd += ["--count", str(count)]
    if cycle:
        cmd.append("--cycle")
    for k, pid in watch.items():
        cmd += ["--watch", f"{k}={pid}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or (seconds + 120))
    if p.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _growth(series, name, edge_s):
    """CPU µs per answered message over the first and the last `edge_s` seconds of a series."""
    pts = [(s["t"], s["answered"], s["cpu_s"][name]) for s in series]
    if len(pts) < 3:
        return None
    t_end = pts[-1][0]

    def rate(a, b):
        (_, n0, c0), (_, n1, c1) = a, b
        return (c1 - c0) / (n1 - n0) * 1e6 if n1 > n0 else None
    first = [p for p in pts if p[0] <= edge_s + 0.01]
    last = [p for p in pts if p[0] >= t_end - edge_s - 0.01]
    f, l_ = rate(first[0], first[-1]), rate(last[0], last[-1])
    per_s = [rate(a, b) for a, b in zip(pts, pts[1:])]
    return {"first_us": f, "last_us": l_, "growth": (l_ / f) if f and l_ else None, "edge_s": edge_s,
            "per_second_us": per_s}


def _tally(sample, line: bytes) -> None:
    sample["lines"] += 1
    try:
        rec = json.loads(line)
        sample["actions"][str(rec["action"])] += 1
        for h in rec.get("hits") or ():
            sample["symbols"][h["symbol"] if isinstance(h, dict) else str(h)] += 1
    except (ValueError, KeyError, TypeError):
        sample["unparsed"] += 1


def _per_msg(res, name):
    n = res["ok"] + res["errors"]
    return res["cpu_s"][name] / n * 1e6 if n else None


def _saturated(res) -> bool:
    return res["achieved"] < 0.9 * res["offered"] or res["unanswered"] > 0


def run(rates, seconds, sat_seconds, fwd_seconds, sat_rate_cap=15_000, dnc_n=1_000_000, progress=None) -> dict:
    """`sat_rate_cap`: fresh messages are generated for the proxy's saturating run at this rate × its
    seconds (bounded count); a proxy faster than that ends the run early, which the result says."""
    # ~20 MB of lists a run, removed; kept when the step failed (its error names serve.log there), not when stopped
    with scratch_dir(keep_failed=True, prefix="tf-bench-") as td:
        return _run(Path(td), rates, seconds, sat_seconds, fwd_seconds, sat_rate_cap, dnc_n, progress)


def _run(tmp, rates, seconds, sat_seconds, fwd_seconds, sat_rate_cap, dnc_n, progress) -> dict:
    from .traffic import seed_data
    nums = seed_data(tmp / "data", dnc_n)
    sample = tmp / "dnc_sample.npy"
    np.save(sample, nums[:: max(1, len(nums) // 10_000)])
    vlog = tmp / "verdicts.jsonl"
    r_port, f_port, p_port = _free_port(), _free_port(), _free_port()
    py = sys.executable
    resp = subprocess.Popen([py, "-m", "benchmarks.smpp_peers", "responder", str(r_port)], **OWN_GROUP)
    fwd = subprocess.Popen([py, "-m", "benchmarks.smpp_peers", "forwarder", str(f_port), str(r_port)], **OWN_GROUP)
    gc_file = tmp / "proxy_gc.json"
    proxy = subprocess.Popen([py, "-m", "benchmarks.proxy_runner", str(gc_file), "serve", "--data-dir", str(tmp / "data"),
                              "--smpp-listen", f"127.0.0.1:{p_port}", "--smsc", f"127.0.0.1:{r_port}",
                              "--esme-account", "bench:pw", "--sip-listen", "off", "--log", str(vlog),
                              "--ready-file", str(tmp / "ready")], stderr=open(tmp / "serve.log", "wb"))
    watch_p = {"proxy": proxy.pid, "responder": resp.pid}
    watch_f = {"forwarder": fwd.pid, "responder": resp.pid}
    watch_d = {"responder": resp.pid}
    from datetime import datetime
    from zoneinfo import ZoneInfo
    # the proxy judges by its own clock: outside 07:00-22:00 there every advertisement is dropped
    out = {"binds": 4, "window": 10, "seconds_per_step": seconds, "dnc_size": dnc_n,
           "proxy_local_time": datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%H:%M")}
    seed = iter(range(100, 10_000))
    try:
        t_end = time.time() + 60
        while not (tmp / "ready").exists() and time.time() < t_end:
            time.sleep(0.05)
        if not (tmp / "ready").exists() or not _wait_port(r_port) or not _wait_port(f_port):
            log = (tmp / "serve.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"proxy, responder or forwarder did not start (proxy exit status {proxy.poll()}; "
                               f"{tmp / 'serve.log'}: {' | '.join(log) or 'empty'})")
        time.sleep(0.5)                                  # the proxy's upstream bind
        # 1. saturation, fresh proxy first (its state grows from here on)
        sat = {}
        sat["proxy"] = _load(p_port, 0, sat_seconds, watch_p, next(seed), sample, count=int(sat_seconds * sat_rate_cap))
        if progress:
            progress.update(1)
        # neither judges, so a pool of messages used in turn is an honest load for them
        sat["forwarder"] = _load(f_port, 0, fwd_seconds, watch_f, next(seed), sample, count=20_000, cycle=True)
        sat["direct"] = _load(r_port, 0, fwd_seconds, watch_d, next(seed), sample, count=20_000, cycle=True)
        if progress:
            progress.update(1)
        out["saturation"] = sat
        out["proxy_cpu_us_per_msg"] = _per_msg(sat["proxy"], "proxy")
        out["forwarder_cpu_us_per_msg"] = _per_msg(sat["forwarder"], "forwarder")
        out["responder_cpu_us_per_msg"] = _per_msg(sat["direct"], "responder")
        out["proxy_growth"] = _growth(sat["proxy"]["series"], "proxy", min(10.0, sat_seconds / 3))
        # 2. the ladder
        half = round(sat["proxy"]["achieved"] / 2, -2) or 100
        over = int(round(sat["proxy"]["achieved"] * 1.25, -2)) or 100     # a rung past saturation, whatever the rates
        ladder = sorted({*rates, 5000, int(half), over})
        steps, done = [], set()
        for r in ladder:
            row = {"offered": r, "half_saturation": r == int(half)}
            must = r in (5000, int(half))
            todo = [t for t in ("forwarder", "proxy") if must or t not in done]
            if not todo:
                if progress:
                    progress.update(1)
                continue
            # the straight line is only the baseline of the others at this rate
            for name, port, watch in (("direct", r_port, watch_d), ("forwarder", f_port, watch_f), ("proxy", p_port, watch_p)):
                if name != "direct" and name not in todo:
                    continue
                # the proxy judges, so it gets fresh messages; the others a pool used in turn
                fresh = name == "proxy"
                row[name] = _load(port, r, seconds, watch, next(seed), sample,
                                  count=None if fresh else min(int(r * seconds), 10_000), cycle=not fresh)
                if _saturated(row[name]):
                    done.add(name)
            if progress:
                progress.update(1)
            for name in ("forwarder", "proxy"):
                if name in row and "direct" in row:
                    p, d = row[name]["latency_us"], row["direct"]["latency_us"]
                    row[f"{name}_added_us"] = {k: (p[k] - d[k]) if p[k] is not None and d[k] is not None else None
                                               for k in p}
            steps.append(row)
        out["steps"] = steps
        out["ladder"] = ladder
        out["half_saturation_rate"] = int(half)
    finally:
        for p in (proxy, fwd, resp):
            p.send_signal(signal.SIGTERM)
        for p in (proxy, fwd, resp):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    out["proxy_gc"] = json.loads(gc_file.read_text()) if gc_file.exists() else None
    # 3. accounting: each run's answers, and one verdict line per judged message
    runs = list(out.get("saturation", {}).values()) + [r[k] for r in out.get("steps", []) for k in ("direct", "forwarder", "proxy") if k in r]
    proxy_runs = [out["saturation"]["proxy"]] + [r["proxy"] for r in out.get("steps", []) if "proxy" in r]
    judged = sum(r["ok"] + r["errors"] - r["error_statuses"].get(THROTTLED, 0) for r in proxy_runs)
    lines, sample = 0, {"lines": 0, "unparsed": 0, "actions": Counter(), "symbols": Counter()}
    if vlog.exists():
        with open(vlog, "rb") as f:
            for line in f:
                lines += 1
                if lines <= 50_000:             # what the proxy decided, from the first lines
                    _tally(sample, line)
        vlog.unlink()
    out["accounting"] = {"sent": sum(r["sent"] for r in runs), "unanswered": sum(r["unanswered"] for r in runs),
                         "unexpected": sum(r["unexpected"] for r in runs), "proxy_judged": judged,
                         "verdict_lines": lines, "verdict_sample": sample, "throttled": sum(r["error_statuses"].get(THROTTLED, 0) for r in proxy_runs)}
    return out
