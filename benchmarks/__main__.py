"""Capacity-planning benchmark suite: `python -m benchmarks [--quick] [--out DIR]` (also `telfilter bench`).

Writes benchmarks/results/<timestamp>/ with summary.json, report.md and PNG plots. Every figure
is measured in this run next to a baseline measured in the same run (the machines are shared
and noisy: read the ratios). Load generators target 127.0.0.1 only, are bounded in count and
time, and stop by themselves.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import ports
from .capacity import capacity, sip_pick
from .sip_bench import PROGRESS_PER_RATE
from .util import child, exit_on_sigterm, machine, out_dir, scratch_dir

QUICK = dict(pipeline_n=20_000, pipeline_dnc=1_000_000, dnc_sizes=[1_000_000, 10_000_000], pyset_sizes=[1_000_000],
             long_n=200_000, long_seconds=20, key_n=50_000, snapshot_keys=1_000_000,
             smpp_rates=[], smpp_seconds=1.5, smpp_sat_seconds=5, smpp_fwd_seconds=2, smpp_sat_rate_cap=15_000,
             sip_rates=[500], sip_seconds=3, kamailio="when installed", flood_seconds=3, flood_rounds=1)
FULL = dict(pipeline_n=100_000, pipeline_dnc=10_000_000, dnc_sizes=[1_000_000, 10_000_000, 100_000_000],
            pyset_sizes=[1_000_000, 10_000_000], long_n=400_000, long_seconds=240, key_n=300_000, snapshot_keys=2_000_000,
            smpp_rates=[1000, 2000, 4000, 8000, 16000, 32000], smpp_seconds=4, smpp_sat_seconds=40, smpp_fwd_seconds=10, smpp_sat_rate_cap=20_000,
            sip_rates=[100, 300, 500, 1000, 2000, 4000], sip_seconds=5, kamailio="install", flood_seconds=5,
            flood_rounds=3)


def _progress(total):
    from tqdm import tqdm
    # disable=None: no bar when stderr is not a terminal (a CI log or a file got every '\r' update)
    return tqdm(total=total, desc="benchmarks", unit="step", file=sys.stderr, disable=None)


def ensure_kamailio() -> bool:
    if shutil.which("kamailio"):
        return True
    try:
        subprocess.run(["apt-get", "install", "-y", "kamailio"], capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return shutil.which("kamailio") is not None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0],
                                 epilog=f"{ports.ENV}=LOW-HIGH (e.g. 25000-25999, both ends included): the loopback "
                                 "ports its servers listen on are drawn from that range, so that runs sharing a "
                                 "machine keep apart (default: at random below the kernel's ephemeral range)")
    ap.add_argument("--quick", action="store_true", help="the ~2-minute run (2 cores); without it the full run, ≤ 20 "
                    "minutes, which installs Kamailio with apt-get when it is missing (redis-server too, either run)")
    ap.add_argument("--out", help="results directory (default benchmarks/results/<timestamp>)")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["pipeline", "lists", "longrun", "smpp", "sip", "sip_flood", "state"],
                    help="leave this step out (repeatable)")
    a = ap.parse_args(argv)
    if os.environ.get(ports.ENV, "").strip():
        try:        # (said before minutes of measuring, not at the first server's start)
            ports.port_range(os.environ[ports.ENV])
        except ValueError as e:
            ap.error(str(e))
    a.stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    a.out = Path(a.out) if a.out else Path(__file__).resolve().parent / "results" / a.stamp
    out_dir(ap, a.out)  # before minutes of measuring: a results directory that cannot be written is said at once
    previous = exit_on_sigterm()
    try:
        return _run(a)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(a) -> int:
    cfg = QUICK if a.quick else FULL
    stamp, out = a.stamp, a.out
    steps = (2 if "pipeline" not in a.skip else 0) \
        + (len(cfg["dnc_sizes"]) + len(cfg["pyset_sizes"]) if "lists" not in a.skip else 0) \
        + (2 if "longrun" not in a.skip else 0) \
        + (2 + len(cfg["smpp_rates"]) + 3 if "smpp" not in a.skip else 0) \
        + (PROGRESS_PER_RATE * len(cfg["sip_rates"]) if "sip" not in a.skip else 0) + (1 if "sip_flood" not in a.skip else 0) \
        + (1 if "state" not in a.skip else 0)
    prog = _progress(steps)
    t_start = time.time()
    res = {"mode": "quick" if a.quick else "full", "started": stamp, "machine": machine(), "config": cfg,
           "step_seconds": {}}
    marks = [("start", time.time())]

    order = ("pipeline", "lists", "longrun", "smpp", "sip", "sip_flood", "state")
    to_run = [n for n in order if n not in a.skip]

    def step(name):
        # wall time per step (where a run's minutes go), and the machine's load when each began
        if getattr(prog, "disable", False) and name != "end":   # no bar (stderr not a terminal): a line a step
            print(f"benchmarks: step {to_run.index(name) + 1}/{len(to_run)}: {name} "
                  f"({round(time.time() - t_start)} s so far)", file=sys.stderr, flush=True)
        prev, t0 = marks[-1]
        if prev != "start":
            res["step_seconds"][prev] = round(time.time() - t0, 1)
        marks.append((name, time.time()))
        res.setdefault("load_average", {})[name] = os.getloadavg()[0]
        prog.set_description(name)

    failed = res["failed_steps"] = {}

    def guarded(name, fn):
        """Run one step; a step that fails is said (here, in summary.json and report.md) and the next one runs."""
        try:
            fn()
        except Exception as e:      # noqa: BLE001 -- any failure of a step is that step's result
            failed[name] = f"{type(e).__name__}: {e}".strip()
            print(f"benchmarks: step {name} failed: {failed[name]}", file=sys.stderr)

    def pipeline():
        from .pipeline_bench import run as pipeline_run
        res["pipeline"] = pipeline_run(cfg["pipeline_n"], cfg["pipeline_dnc"])
        prog.update(2)

    def lists():
        res["lists"] = {"roaring": [], "python_set": []}
        for n in cfg["dnc_sizes"]:
            with scratch_dir() as td:
                b = child("benchmarks.lists_bench", "build", n, td, timeout=1800)
                l = child("benchmarks.lists_bench", "load", td, timeout=1800)
                res["lists"]["roaring"].append({"n": n, **b, **l})
            prog.update(1)
        for n in cfg["pyset_sizes"]:
            res["lists"]["python_set"].append({"n": n, **child("benchmarks.lists_bench", "pyset", n, timeout=1800)})
            prog.update(1)
        res["counters"] = child("benchmarks.lists_bench", "counters", 1_000_000, timeout=1800)

    def longrun():
        res["counter_keys"] = child("benchmarks.longrun", "keys", cfg["key_n"], timeout=600)
        res["snapshot"] = child("benchmarks.snapshot_bench", cfg["snapshot_keys"], 3, timeout=600)
        prog.update(1)
        res["longrun"] = child("benchmarks.longrun", cfg["long_n"], cfg["long_seconds"], timeout=cfg["long_seconds"] + 600)
        prog.update(1)

    def smpp():
        from .smpp_bench import run as smpp_run
        res["smpp"] = smpp_run(cfg["smpp_rates"], cfg["smpp_seconds"], cfg["smpp_sat_seconds"], cfg["smpp_fwd_seconds"],
                               sat_rate_cap=cfg["smpp_sat_rate_cap"], progress=prog)

    def sip():
        from .sip_bench import run as sip_run
        kam = ensure_kamailio() if cfg["kamailio"] == "install" else shutil.which("kamailio") is not None
        res["sip"] = sip_run(cfg["sip_rates"], cfg["sip_seconds"], progress=prog, kamailio=kam)
        if res["sip"].get("error"):             # sipp missing: no figure, and said so
            failed["sip"] = res["sip"]["error"]

    def sip_flood():    # a second caller's calls through a flood, the per-source shares on vs off (sip_flood.py)
        from .sip_flood import run as flood_run
        res["sip_flood"] = flood_run(cfg["flood_seconds"], rounds=cfg["flood_rounds"])
        prog.update(1)

    def state():        # issue 13: --workers 2 on Redis beside one embedded serve (benchmarks/state_bench.py)
        from .state_bench import run as state_run
        res["state"] = state_run(n=6000 if a.quick else 40000, keys=50_000 if a.quick else 200_000)
        prog.update(1)
        if res["state"].get("skipped"):         # redis-server missing
            failed["state"] = res["state"]["skipped"]

    interrupted = None
    try:
        fns = {"pipeline": pipeline, "lists": lists, "longrun": longrun, "smpp": smpp, "sip": sip,
               "sip_flood": sip_flood, "state": state}
        for name in to_run:
            step(name)
            guarded(name, fns[name])
    except (KeyboardInterrupt, SystemExit) as e:
        # Ctrl-C (SIGINT), or SIGTERM (util.exit_on_sigterm): the step's own `finally` blocks have stopped what it
        # started; the steps done before it are still written below, the interrupted one is said
        interrupted = (130 if isinstance(e, KeyboardInterrupt) else (e.code if isinstance(e.code, int) else 1),
                       "SIGINT (Ctrl-C)" if isinstance(e, KeyboardInterrupt)
                       else "SIGTERM" if e.code == 128 + signal.SIGTERM else f"exit {e.code}", marks[-1][0])
        failed[interrupted[2]] = f"interrupted by {interrupted[1]}: partial results (the steps before it) only"
        res["interrupted"] = {"signal": interrupted[1], "step": interrupted[2]}
    step("end")
    prog.close()
    res["duration_s"] = round(time.time() - t_start, 1)
    res["summary"] = summarise(res)
    res["capacity"] = capacity(res)
    from .report import write_report
    write_report(out, res)
    (out / "summary.json").write_text(json.dumps({**res["summary"], "state": res.get("state"),
                                                  "failed_steps": failed, "skipped_steps": sorted(set(a.skip)),
                                                  "machine": res["machine"], "mode": res["mode"],
                                                  "duration_s": res["duration_s"], "capacity": res["capacity"],
                                                  "interrupted": res.get("interrupted")},
                                                 indent=2) + "\n")
    (out / "results.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    if interrupted:
        print(f"benchmarks: interrupted by {interrupted[1]} during step {interrupted[2]}; partial results (the steps "
              f"before it): {out}", file=sys.stderr)
        return interrupted[0]
    print(json.dumps(res["summary"], indent=2))
    print(f"results: {out}", file=sys.stderr)
    if failed:
        print("benchmarks: failed steps (no figures from them; see report.md): "
              + "; ".join(f"{k}: {v}" for k, v in failed.items()), file=sys.stderr)
    return 1 if failed else 0


def _r(v, nd=1):
    return None if v is None else round(v, nd)


def added_p99(step, name) -> tuple[float | None, str | None]:
    """(p99 latency `name` adds at this ladder step, None) or (None, why there is no figure). The figure is
    `name`'s p99 minus the straight line's, each from its own run at the same rate one after the other (the
    loopback peers cannot be measured in one run): a stall during the straight line's run puts its p99 above
    the other's and the difference below zero, which no hop can add. That is a failed measurement, not a figure."""
    a = (step.get(f"{name}_added_us") or {}).get("p99")
    if a is None:
        return None, None
    if a < 0:
        p, d = step[name]["latency_us"]["p99"], step["direct"]["latency_us"]["p99"]
        return None, (f"failed (noisy) measurement at {step['offered']:,}/s offered: the straight line's p99 "
                      f"({d:,.1f} µs) was above the {name}'s ({p:,.1f} µs), each from its own run, so their difference "
                      "is below zero, which no hop adds: rerun the benchmark")
    return _r(a), None


def summarise(res) -> dict:
    s = {k: None for k in ("pipeline_msgs_per_s", "pipeline_p99_us", "ml_us_per_msg", "ml_sklearn_us_per_msg",
                           "judge_p99_us", "gc_max_pause_ms", "snapshot_pause_ms", "counter_bytes_per_key", "smpp_proxy_cpu_us_per_msg",
                           "smpp_forwarder_cpu_us_per_msg", "smpp_cost_growth", "smpp_tps", "smpp_baseline_tps",
                           "smpp_p99_added_us", "smpp_p99_added_us_at_5k", "sip_cpu_us_per_call", "sip_cpu_us_per_msg",
                           "sip_relay_cpu_us_per_call", "sip_kamailio_cpu_us_per_call", "sip_cps", "sip_baseline_cps",
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
    ck = res.get("counter_keys")
    if ck:
        # the store's own account when it keeps one, else every allocation it retains (tracemalloc)
        s["counter_bytes_per_key"] = _r(ck.get("memory_bytes_per_key", ck["tracemalloc_bytes_per_key"]))
        s["counter_bytes_per_key_source"] = "memory_bytes()" if "memory_bytes_per_key" in ck else "tracemalloc"
        s["history_bytes_per_sender"] = _r(ck.get("history_bytes_per_sender"))
    sn = res.get("snapshot")
    if sn:          # the loop pause of a state snapshot: forked writer, and the copy it replaced (same run)
        s["snapshot_pause_ms"], s["snapshot_pause_copy_ms"] = sn["fork_max_pause_ms"], sn["copy_max_pause_ms"]
        s["snapshot_table_mb"] = round(sn["table_bytes"] / 2**20, 1)
    lr = res.get("longrun")
    if lr:
        s["judge_p99_us"] = _r(lr["judge_us"].get("p99"))
        s["judge_cpu_p99_us"] = _r(lr["judge_cpu_us"].get("p99"))
        s["p2p_shared_template_pct"] = _r(lr["p2p_shared_template_pct"], 2)
        s["p2p_tagged_or_dropped_pct"] = _r(lr["p2p_tagged_or_dropped_pct"], 2)
        s["campaign_caught_pct"] = _r(lr["campaign_caught_pct"], 1)
        s["gc_max_pause_ms"] = _r(lr["gc"]["max_ms"], 2)
        s["gc_max_pause_source"] = "in-process long run"
        # the longest stall one message caused (a collection or a state table growing): thread CPU
        s["state_max_pause_ms"] = _r(lr.get("judge_cpu_max_ms"), 2)
        s["gc_max_pause_cpu_ms"] = _r(lr["gc"].get("max_cpu_ms"), 2)
        s["judge_cost_growth"] = _r(lr["growth"], 3)
        s["longrun_messages"] = lr["n"]
        s["smpp_cost_growth"] = s["judge_cost_growth"]
        s["smpp_cost_growth_source"] = (f"in-process judge loop, CPU per message over the first vs the last fifth of "
                                        f"{lr['n']:,} messages")
    sm = res.get("smpp")
    if sm and sm.get("steps") is not None:
        sat = sm["saturation"]
        s["smpp_proxy_cpu_us_per_msg"] = _r(sm["proxy_cpu_us_per_msg"])
        s["smpp_forwarder_cpu_us_per_msg"] = _r(sm["forwarder_cpu_us_per_msg"])
        s["smpp_tps"] = _r(sat["proxy"]["achieved"])
        s["smpp_baseline_tps"] = _r(sat["forwarder"]["achieved"])
        s["smpp_direct_tps"] = _r(sat["direct"]["achieved"])
        g = sm.get("proxy_growth") or {}
        s["smpp_proxy_cost_growth"] = _r(g.get("growth"), 3)
        if g.get("growth") is not None and sat["proxy"]["wall_s"] >= 30:     # the full run's 40-s saturating run
            s["smpp_cost_growth"] = s["smpp_proxy_cost_growth"]
            s["smpp_cost_growth_source"] = (f"the proxy, CPU per submit_sm over the first vs the last {g['edge_s']:g} s "
                                            f"of a {sat['proxy']['wall_s']:.0f}-s saturating run")
        for r in sm["steps"]:
            if "proxy_added_us" not in r:
                continue
            if r["offered"] == 5000:
                s["smpp_p99_added_us_at_5k"], why = added_p99(r, "proxy")
                if why:
                    s["smpp_p99_added_us_at_5k_failed"] = why
                s["smpp_proxy_achieved_at_5k"] = _r(r["proxy"]["achieved"])     # below 5,000: a saturated figure
            if r["half_saturation"]:
                s["smpp_p99_added_us"], why = added_p99(r, "proxy")
                if why:
                    s["smpp_p99_added_us_failed"] = why
                s["smpp_p99_added_at_offered"] = r["offered"]
        pg = sm.get("proxy_gc")
        if pg:
            s["smpp_proxy_gc_max_pause_ms"] = _r(pg["max_ms"], 2)
            if s["gc_max_pause_ms"] is None or pg["max_ms"] > s["gc_max_pause_ms"]:
                s["gc_max_pause_ms"] = _r(pg["max_ms"], 2)
                s["gc_max_pause_source"] = "the proxy process, all SMPP steps"
        acc = sm["accounting"]
        s["smpp_every_submit_answered_once"] = acc["unanswered"] == 0 and acc["unexpected"] == 0
        s["smpp_one_verdict_line_per_judged"] = acc["verdict_lines"] == acc["proxy_judged"]
    sp = res.get("sip")
    if sp and sp.get("steps"):
        ok = [r for r in sp["steps"] if r["mixed"]["failed"] <= 0.01 * r["mixed"]["calls"]]
        # the highest rate with ≤ 1% failed calls; null when no step met that (the report shows every step)
        s["sip_cps"] = _r(max((r["mixed"]["cps"] for r in ok), default=None))
        kam = [r["kamailio"]["cps"] for r in sp["steps"] if r.get("kamailio") and r["kamailio"]["failed"] <= 0.01 * r["kamailio"]["calls"]]
        s["sip_baseline_cps"] = round(max(kam), 1) if kam else None
        r = sip_pick(sp["steps"])
        if r:
            s["sip_cpu_at_cps"] = r["offered_cps"]
            s["sip_failed_pct_at_cps"] = _r(100 * r["allowed"]["failed"] / max(1, r["allowed"]["calls"]), 2)
            s["sip_cpu_us_per_call"] = _r(r["allowed"]["cpu_us_per_call"])
            s["sip_cpu_us_per_msg"] = _r(r["allowed"]["cpu_us_per_msg"])
            s["sip_relay_cpu_us_per_call"] = _r(r["relay"]["cpu_us_per_call"]) if r.get("relay") else None
            s["sip_kamailio_cpu_us_per_call"] = _r(r["kamailio"]["cpu_us_per_call"]) if r.get("kamailio") else None
    for name, r in ((res.get("sip_flood") or {}).get("readers") or {}).items():
        # the share of the second caller's calls judged through the flood, with the shares and without (same run)
        s[f"sip_flood_{name}_pct"] = _r(100 * r["shares_on"]["share"])
        s[f"sip_flood_{name}_off_pct"] = _r(100 * r["shares_off"]["share"])
        s[f"sip_flood_{name}_ratio"] = r["ratio"]
    return s


if __name__ == "__main__":
    sys.exit(main())
