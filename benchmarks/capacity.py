"""The capacity model: cores for a load of SMS/s and calls/s, from one benchmark run's per-core figures.

    python -m benchmarks.capacity RESULTS_DIR --sms 20000 --cps 800     # cores for that load, from that run

Theory of operation: one `serve` process runs one event loop, so it is one core. A core is planned at 70% of its
time. SMS: the cost per submit_sm falls with the rate (at a moderate rate fewer messages share each wake-up; README,
Known limits), so it is read where one core is UTILISATION busy, between the measured rates the proxy kept up with
(answered ≥ 99% of offered) and the saturating run (sms_plan_us); a rate it fell behind at reads its saturated
cost and is not used. The SIP cost per call is read at SIP_AT calls/s. SMS and calls are planned as
separate processes (SMS nodes with `--sip-listen off`, call nodes whose SMPP listener gets no binds), so their cores
add up.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

SIP_AT = 500            # the SIP figures are read at this offered rate (issue #11's target load)
UTILISATION = 0.7       # of a core, planned
KEPT_UP = 0.99          # an open-loop rate the proxy answered at least this share of
SMS_LOADS = (1000, 5000, 10000, 50000, 100000)
CPS_LOADS = (100, 500, 1000, 5000)
MIXED_LOADS = ((5000, 100), (10000, 500), (50000, 1000), (100000, 5000))


def sip_pick(steps):
    """The SIP step the summary reads: SIP_AT calls/s offered (its failed share is reported with it),
    else the highest rate with ≤ 1% failed calls."""
    at = [r for r in steps if r["offered_cps"] == SIP_AT and r["allowed"]["ok"]]      # failures are reported beside it
    ok = [r for r in steps if r["allowed"]["ok"] and r["allowed"]["failed"] <= 0.01 * r["allowed"]["calls"]]
    return at[0] if at else (max(ok, key=lambda r: r["offered_cps"]) if ok else None)


def _dnc_10m_mb(res):
    return next((r["rss_mb"] for r in (res.get("lists") or {}).get("roaring", []) if r["n"] == 10_000_000), None)


def sms_plan_us(sm) -> tuple[float | None, str]:
    """(CPU µs per submit_sm to plan with, where it was measured). Each rate the proxy kept up with (and the
    saturating run) is a point: rate answered, share of a core used (rate × CPU per submit_sm). The rate one core
    carries at UTILISATION is read between the two points around that share (linear); with every point above it,
    from the lowest rate's cost (the nearest, as the cost per message falls with the rate); with every point below
    it, from the highest rate's."""
    sat = sm.get("proxy_cpu_us_per_msg")
    if not sat:
        return None, ""
    pts = [((sm.get("saturation") or {}).get("proxy", {}).get("achieved") or 0, sat, "the saturating run")]
    for r in sm.get("steps") or []:
        p = r.get("proxy")
        n = (p["ok"] + p["errors"]) if p else 0
        if p and n and p["achieved"] >= KEPT_UP * r["offered"]:
            pts.append((p["achieved"], p["cpu_s"]["proxy"] / n * 1e6, f"{r['offered']:,}/s offered, open loop"))
    pts = sorted((rate, us, rate * us / 1e6, where) for rate, us, where in pts if rate > 0) \
        or [(0, sat, 1.0, "the saturating run")]
    below = [x for x in pts if x[2] <= UTILISATION]
    above = [x for x in pts if x[2] > UTILISATION and (not below or x[0] > below[-1][0])]
    if below and above:
        (r0, _, u0, w0), (r1, _, u1, w1) = below[-1], above[0]
        rate = r0 + (UTILISATION - u0) / (u1 - u0) * (r1 - r0)
        return UTILISATION / rate * 1e6, (f"between {w0} ({r0:,.0f}/s answered, {u0:.0%} of a core) and {w1} "
                                          f"({r1:,.0f}/s, {u1:.0%})")
    rate, us, u, where = above[0] if above else below[-1]
    return us, f"{where} ({rate:,.0f}/s answered, {u:.0%} of a core)"


def cores(sms: float, cps: float, c: dict) -> int | None:
    """Cores for `sms` submit_sm/s and `cps` calls/s with the per-core figures of capacity(); None when a load is
    asked of a role the run did not measure."""
    if (sms and not c.get("sms_per_core")) or (cps and not c.get("cps_per_core")):
        return None
    return (math.ceil(sms / c["sms_per_core"]) if sms else 0) + (math.ceil(cps / c["cps_per_core"]) if cps else 0)


def capacity(res) -> dict:
    """Cores for given loads from this run's per-core figures (assumptions in the report)."""
    sm = res.get("smpp") or {}
    plan_us, where = sms_plan_us(sm)
    sat_us = sm.get("proxy_cpu_us_per_msg")
    sp = res.get("sip")
    r = sip_pick(sp["steps"]) if sp and sp.get("steps") else None
    call_us = r and r["allowed"]["cpu_us_per_call"]
    out = {"assumptions": [
        "one serve process is one core (one event loop); a core is planned at "
        f"{UTILISATION:.0%} of its time (the latency each measured rate saw is in the SMPP and SIP sections)",
        "SMS: the proxy's process CPU per submit_sm answered on the realistic mix, read where one core is "
        f"{UTILISATION:.0%} busy (the cost per message falls with the rate, as more messages share each wake-up): "
        + (f"{plan_us:,.1f} µs, from {where} (the saturating run's {sat_us:,.1f} µs)" if plan_us
           else "not measured in this run"),
        "calls: the SIP screen's process CPU per call (INVITE..BYE, 6 messages, all allowed) at "
        + (f"{r['offered_cps']:,} calls/s: {call_us:,.1f} µs" if call_us
           else f"{SIP_AT} calls/s: not measured in this run"),
        "SMS and calls in separate processes (SMS nodes with `serve --sip-listen off`, call nodes whose SMPP listener "
        "gets no binds), so their cores add up",
        "more than one process per role: with the embedded store each keeps its own counters, so split ESME accounts "
        "(SMS) or trunks (calls) across processes so that one advertiser/recipient pair stays on one process, or share "
        "the counters with --state redis:// (its cost per message: the shared-state step); lists are loaded by every "
        "process (" + (f"{dnc:,.0f} MB per 10M DNC numbers in this run" if (dnc := _dnc_10m_mb(res)) is not None
                       else "the DNC memory per process: the lists step, not run here") + ")",
    ], "sms": [], "calls": [], "mixed": []}
    if plan_us:
        out["sms_cpu_us_per_msg"], out["sms_cpu_source"] = round(plan_us, 1), where
        out["sms_per_core"] = round(UTILISATION / (plan_us / 1e6))
        out["sms"] = [{"sms_per_s": n, "cores": cores(n, 0, out)} for n in SMS_LOADS]
        # the same run's baseline beside each per-core figure: on a slow or loaded host both rise together
        fwd = sm.get("forwarder_cpu_us_per_msg")
        if fwd:
            out["sms_baseline"] = {"what": "the raw SMPP forwarder", "cpu_us_per_msg": round(fwd, 1),
                                   "ratio": round(plan_us / fwd, 2)}
    if call_us:
        out["cps_per_core"] = round(UTILISATION / (call_us / 1e6))
        out["cps_cpu_us_per_call"], out["cps_cpu_at"] = round(call_us, 1), r["offered_cps"]
        out["calls"] = [{"cps": n, "cores": cores(0, n, out)} for n in CPS_LOADS]
        out["cps_baselines"] = [{"what": what, "cpu_us_per_call": round(b, 1), "ratio": round(call_us / b, 2)}
                                for what, k in (("Kamailio -x tlsf", "kamailio"), ("a trivial UDP relay", "relay"))
                                if (b := (r.get(k) or {}).get("cpu_us_per_call"))]
    if out.get("sms_per_core") and out.get("cps_per_core"):
        out["mixed"] = [{"sms_per_s": n, "cps": m, "cores": cores(n, m, out)} for n, m in MIXED_LOADS]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.capacity",
                                 description="Cores for a load, from one run's capacity model (summary.json).")
    ap.add_argument("results", help="a run's results directory (or its summary.json)")
    ap.add_argument("--sms", type=float, default=0, help="submit_sm/s")
    ap.add_argument("--cps", type=float, default=0, help="calls/s")
    a = ap.parse_args(argv)
    if a.sms < 0 or a.cps < 0 or not (a.sms or a.cps):
        ap.error("give --sms and/or --cps, each ≥ 0, not both 0")
    f = Path(a.results)
    f = f / "summary.json" if f.is_dir() else f
    try:
        c = json.loads(f.read_text())["capacity"]
    except (OSError, ValueError, KeyError) as e:
        ap.error(f"{f}: no capacity model there ({type(e).__name__}: {e})")
    n = cores(a.sms, a.cps, c)
    if n is None:
        ap.error(f"{f}: that run did not measure " + ("SMS" if a.sms and not c.get("sms_per_core") else "calls"))
    print(json.dumps({"sms_per_s": a.sms, "cps": a.cps, "cores": n, "sms_per_core": c.get("sms_per_core"),
                      "sms_cpu_us_per_msg": c.get("sms_cpu_us_per_msg"), "sms_baseline": c.get("sms_baseline"),
                      "cps_per_core": c.get("cps_per_core"), "cps_cpu_us_per_call": c.get("cps_cpu_us_per_call"),
                      "cps_baselines": c.get("cps_baselines"), "assumptions": c["assumptions"]}, indent=2,
                     ensure_ascii=False))      # (µs, ×, ≤ as they are: "166.7 \u00b5s" was printed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
