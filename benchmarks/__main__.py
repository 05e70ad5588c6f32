"""Capacity-planning benchmark suite: `python -m benchmarks [--quick] [--out DIR]` (also `telfilter bench`).

Writes benchmarks/results/<timestamp>/ with summary.json, report.md and PNG plots. Every figure
is measured in this run next to a baseline measured in the same run (the machines are shared
and noisy: read the ratios). Load generators target 127.0.0.1 only, are bounded in count and
time, and stop by themselves.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .util import child, machine

QUICK = dict(pipeline_n=20_000, pipeline_dnc=1_000_000, dnc_sizes=[1_000_000, 10_000_000], pyset_sizes=[1_000_000, 10_000_000],
             smpp_steps=[1000, 2000, 4000], smpp_windows=[10, 50], smpp_seconds=2, sip_rates=[200, 600], sip_seconds=3,
             kamailio=False)
FULL = dict(pipeline_n=100_000, pipeline_dnc=10_000_000, dnc_sizes=[1_000_000, 10_000_000, 100_000_000],
            pyset_sizes=[1_000_000, 10_000_000], smpp_steps=[1000, 2000, 4000, 8000, 16000, 32000], smpp_windows=[10, 50],
            smpp_seconds=5, sip_rates=[100, 300, 1000, 2000, 4000, 8000], sip_seconds=5, kamailio=True)


def _progress(total):
    from tqdm import tqdm
    return tqdm(total=total, desc="benchmarks", unit="step", file=sys.stderr)


def ensure_kamailio() -> bool:
    if shutil.which("kamailio"):
        return True
    try:
        subprocess.run(["apt-get", "install", "-y", "kamailio"], capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return shutil.which("kamailio") is not None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the ≤2-minute run (2 cores)")
    ap.add_argument("--out", help="results directory (default benchmarks/results/<timestamp>)")
    ap.add_argument("--skip", action="append", default=[], choices=["pipeline", "lists", "smpp", "sip"])
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(a.out) if a.out else Path(__file__).resolve().parent / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    steps = (2 if "pipeline" not in a.skip else 0) + len(cfg["dnc_sizes"]) + len(cfg["pyset_sizes"]) \
        + (2 * len(cfg["smpp_steps"]) * len(cfg["smpp_windows"]) if "smpp" not in a.skip else 0) \
        + (2 * len(cfg["sip_rates"]) if "sip" not in a.skip else 0)
    prog = _progress(steps)
    t_start = time.time()
    res = {"mode": "quick" if a.quick else "full", "started": stamp, "machine": machine(), "config": cfg}

    if "pipeline" not in a.skip:
        from .pipeline_bench import run as pipeline_run
        prog.set_description("pipeline")
        res["pipeline"] = pipeline_run(cfg["pipeline_n"], cfg["pipeline_dnc"])
        prog.update(2)
    if "lists" not in a.skip:
        prog.set_description("lists")
        res["lists"] = {"roaring": [], "python_set": []}
        for n in cfg["dnc_sizes"]:
            with tempfile.TemporaryDirectory() as td:
                b = child("benchmarks.lists_bench", "build", n, td, timeout=1800)
                l = child("benchmarks.lists_bench", "load", td, timeout=1800)
                res["lists"]["roaring"].append({"n": n, **b, **l})
            prog.update(1)
        for n in cfg["pyset_sizes"]:
            res["lists"]["python_set"].append({"n": n, **child("benchmarks.lists_bench", "pyset", n, timeout=1800)})
            prog.update(1)
        res["counters"] = child("benchmarks.lists_bench", "counters", 1_000_000, timeout=1800)
    if "smpp" not in a.skip:
        from .smpp_bench import run as smpp_run
        prog.set_description("smpp")
        res["smpp"] = smpp_run(cfg["smpp_steps"], cfg["smpp_windows"], cfg["smpp_seconds"], progress=prog)
    if "sip" not in a.skip:
        from .sip_bench import run as sip_run
        prog.set_description("sip")
        kam = ensure_kamailio() if cfg["kamailio"] else False
        res["sip"] = sip_run(cfg["sip_rates"], cfg["sip_seconds"], progress=prog, kamailio=kam)
    prog.close()
    res["duration_s"] = round(time.time() - t_start, 1)
    res["summary"] = summarise(res)
    res["capacity"] = capacity(res)
    from .report import write_report
    write_report(out, res)
    (out / "summary.json").write_text(json.dumps({**res["summary"], "machine": res["machine"], "mode": res["mode"],
                                                  "duration_s": res["duration_s"], "capacity": res["capacity"]},
                                                 indent=2) + "\n")
    (out / "results.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(json.dumps(res["summary"], indent=2))
    print(f"results: {out}", file=sys.stderr)
    return 0


def summarise(res) -> dict:
    s = {k: None for k in ("pipeline_msgs_per_s", "pipeline_p99_us", "ml_us_per_msg", "ml_sklearn_us_per_msg",
                           "smpp_tps", "smpp_baseline_tps", "smpp_p99_added_us", "sip_cps", "sip_baseline_cps",
                           "dnc_10m_rss_mb", "dnc_10m_load_s")}
    p = res.get("pipeline")
    if p:
        s["pipeline_msgs_per_s"] = round(p["msgs_per_s"], 1)
        s["pipeline_p99_us"] = round(p["stages_us"]["judge"]["p99"], 1)
        s["ml_us_per_msg"] = round(p["ml_us_per_msg_160"], 1) if p["ml_us_per_msg_160"] else None
        s["ml_sklearn_us_per_msg"] = round(p["ml_sklearn_us_per_msg"], 1) if p["ml_sklearn_us_per_msg"] else None
        s["stage_p99_us"] = {k: round(v["p99"], 1) for k, v in p["stages_us"].items()}
    for r in (res.get("lists") or {}).get("roaring", []):
        if r["n"] == 10_000_000:
            s["dnc_10m_rss_mb"], s["dnc_10m_load_s"] = round(r["rss_mb"], 1), round(r["load_s"], 3)
        if r["n"] == 100_000_000:
            s["dnc_100m_rss_mb"], s["dnc_100m_load_s"] = round(r["rss_mb"], 1), round(r["load_s"], 3)
    if res.get("counters"):
        s["counters_1m_recipients_mb"] = round(res["counters"]["rss_mb"], 1)
    sm = res.get("smpp")
    if sm:
        good = lambda r, k: r[k]["achieved"] >= 0.95 * r["offered"] and r[k]["errors"] == 0 and r[k]["unanswered"] == 0
        s["smpp_tps"] = round(max(r["proxy"]["achieved"] for r in sm["steps"]), 1)
        s["smpp_baseline_tps"] = round(max(r["direct"]["achieved"] for r in sm["steps"]), 1)
        # added p99 at (about) half the proxy's sustained rate
        half = s["smpp_tps"] / 2
        ok = [r for r in sm["steps"] if good(r, "proxy")]
        pick = min(ok or sm["steps"], key=lambda r: abs(r["offered"] - half))
        s["smpp_p99_added_us"] = round(pick["added_us"]["p99"], 1) if pick["added_us"]["p99"] is not None else None
        s["smpp_p99_added_at_offered"] = pick["offered"]
    sp = res.get("sip")
    if sp and sp.get("steps"):
        ok = [r for r in sp["steps"] if r["mixed"]["failed"] <= 0.01 * r["mixed"]["calls"]]
        s["sip_cps"] = round(max((r["mixed"]["cps"] for r in ok), default=0.0), 1)
        kam = [r["kamailio"]["cps"] for r in sp["steps"] if r.get("kamailio") and r["kamailio"]["failed"] <= 0.01 * r["kamailio"]["calls"]]
        s["sip_baseline_cps"] = round(max(kam), 1) if kam else None
    return s


def capacity(res) -> dict:
    """Cores for given loads from this run's per-core figures (assumptions in the report)."""
    out = {"assumptions": [
        "one proxy process is one core; the proxy CPU per submit_sm is measured at the highest step without errors",
        "the SIP screen CPU per call (INVITE..BYE, 6 messages) is measured the same way",
        "a core is planned at 70% utilisation to keep p99 inside the budget",
        "more than one process per role: each keeps its own counters, so split ESME accounts (SMS) or trunks (calls) "
        "across processes so that one advertiser/recipient pair stays on one process, until a shared counter store "
        "replaces the in-process one; lists are loaded by every process (30 MB per 10M DNC numbers)",
    ], "sms": [], "calls": []}
    sm = res.get("smpp")
    if sm:
        rows = [r for r in sm["steps"] if r["proxy"]["errors"] == 0 and r["proxy"]["ok"] > 0]
        if rows:
            r = max(rows, key=lambda r: r["proxy"]["achieved"])
            cpu_per_msg = r["proxy"]["cpu_s"]["proxy"] / max(1, r["proxy"]["ok"])
            per_core = 0.7 / cpu_per_msg
            out["sms_per_core"] = round(per_core)
            for load in (1000, 5000, 10000, 50000, 100000):
                out["sms"].append({"sms_per_s": load, "cores": math.ceil(load / per_core)})
    sp = res.get("sip")
    if sp and sp.get("steps"):
        rows = [r["mixed"] for r in sp["steps"] if r["mixed"]["ok"] > 0]
        if rows:
            r = max(rows, key=lambda r: r["cps"])
            per_core = 0.7 / (r["server_cpu_s"] / max(1, r["ok"]))
            out["cps_per_core"] = round(per_core)
            for load in (100, 500, 1000, 5000):
                out["calls"].append({"cps": load, "cores": math.ceil(load / per_core)})
    return out


if __name__ == "__main__":
    sys.exit(main())
