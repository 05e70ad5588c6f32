"""The closed-loop acceptance check of issue 10, as an outside tester would run it, in one run.

    python -m benchmarks.smpp_check [--seconds 40] [--campaign-share 0.4] [--edge 10] [--code DIR ...] [--config DIR]

Theory of operation: what the independent check measures, with nothing of ours in the loop
but `telfilter serve`: the lean responder is the SMSC (benchmarks.smpp_peers, its own process),
the generator is benchmarks.smpp_load (its own process, its own SMPP encoder, no engine code)
with 4 binds × window 10 kept full for `--seconds` (closed loop), fresh messages of the realistic
mix with spam campaigns at `--campaign-share` of them (campaign-heavy: 0.4 by default; the mix's
own share is 0.17). Each `--code` checkout (default this one; give two to compare a change with
its baseline in the same run) serves in turn as shipped: Decree 91 pack, bundled model, a
seeded registry/blacklist/DNC, verdict log to a file, through benchmarks.proxy_runner (GC pauses).

Reported per checkout: CPU µs per submit_sm over the whole run (process CPU / submit_sm
answered), over the first and the last `--edge` seconds and their ratio (growth), answered
per second, every submit_sm answered once (`unanswered`, `unexpected` both 0), and one verdict
line per judged message (answers other than ESME_RTHROTTLED, which is answered unjudged).
The proxy judges by its own clock: outside 07:00-22:00 Vietnam time every advertisement is
dropped, so the printed local time (in --config's timezone when given) says which policy the run saw. Prints one JSON object.

How this differs from the other SMPP benchmarks: `python -m benchmarks` (smpp step, full
run) has the same closed loop (4 × 10, 40 s) with the mix's campaign share and a proxy whose
state was grown by nothing before; benchmarks.smpp_cpu runs the proxy in process with empty
lists and a verdict log to /dev/null (it isolates the proxy's own cost: forwarder / trivial /
real); benchmarks.smpp_p99 is open loop at one offered rate (latency, not CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from .smpp_bench import THROTTLED, _free_port, _growth, _load, _per_msg, _wait_port
from .util import OWN_GROUP, checkout, config_dir, positive, scratch_dir, stop_all


def _serve(code: str, tmp: Path, k: int, r_port: int, config: str | None = None):
    d = tmp / f"p{k}"
    subprocess.run(["cp", "-r", str(tmp / "seed"), str(d)], check=True)
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "benchmarks.proxy_runner", str(tmp / f"gc{k}.json"), "serve",
                          "--data-dir", str(d), "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{r_port}",
                          "--esme-account", "bench:pw", "--sip-listen", "off", "--log", str(tmp / f"v{k}.jsonl"),
                          "--ready-file", str(tmp / f"ready{k}")] + (["--config", config] if config else []),
                         cwd=code, env=dict(os.environ, PYTHONPATH=code), stderr=subprocess.DEVNULL)
    try:                             # (a SIGTERM while it loads, SystemExit here, stops it too)
        end = time.time() + 90
        while not (tmp / f"ready{k}").exists() and time.time() < end and p.poll() is None:
            time.sleep(0.1)
        if not (tmp / f"ready{k}").exists():
            raise RuntimeError(f"telfilter serve from {code} did not start")
        time.sleep(0.5)              # its upstream bind
    except BaseException:
        p.kill()
        p.wait()
        raise
    return p, port


def _stop(p) -> None:
    stop_all([p])


def _timezone(config: str | None) -> str:
    """The [engine] timezone the proxy judges by: --config's, or the shipped one's."""
    from engine.config import load_settings
    return load_settings(config).timezone


def growth_edge(seconds: float, edge: float | None) -> float | None:
    """The seconds at each end of the run whose CPU per message makes the growth ratio: `edge` as given, by default
    10 s or a third of a shorter run; None when the two ends would overlap (the ratio of the same seconds)."""
    if edge is None:
        edge = min(10.0, seconds / 3)
    return edge if 2 * edge <= seconds else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.smpp_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=positive(float), default=40, help="closed loop per checkout (default 40)")
    ap.add_argument("--edge", type=positive(float), help="seconds at each end for the growth ratio (default 10, or "
                    "a third of a shorter --seconds)")
    ap.add_argument("--campaign-share", type=positive(float, zero=True), default=0.4,
                    help="share of spam-campaign messages, 0-1 (default 0.4; the mix's own 0.17)")
    ap.add_argument("--binds", type=positive(), default=4)
    ap.add_argument("--window", type=positive(), default=10)
    ap.add_argument("--rate-cap", type=positive(float), default=20_000, help="fresh messages generated: this × seconds")
    ap.add_argument("--dnc", type=positive(), default=1_000_000, help="DNC numbers seeded (default 1,000,000)")
    ap.add_argument("--config", type=config_dir, metavar="DIR", help="the config directory every checkout serves with "
                    "(default: each one's shipped config/), e.g. a copy with another [engine] timezone")
    ap.add_argument("--code", action="append", default=None, type=checkout,
                    help="a checkout whose engine serves (repeatable)")
    a = ap.parse_args(argv)
    if a.campaign_share > 1:
        ap.error(f"--campaign-share {a.campaign_share:g}: a share, 0 to 1")
    edge = growth_edge(a.seconds, a.edge)
    if edge is None:
        ap.error(f"--seconds {a.seconds:g} --edge {a.edge:g}: the first and the last --edge seconds overlap (the growth "
                 "would compare the same seconds): give --edge at most half of --seconds")
    from engine.config import ConfigError
    try:
        tz = _timezone(a.config)
    except ConfigError as e:
        ap.error(f"--config: {e}")
    codes = [str(Path(c).resolve()) for c in (a.code or [os.getcwd()])]
    with scratch_dir(prefix="tf-check-") as td:
        out = _measure(a, Path(td), codes, edge, tz)
    print(json.dumps(out))
    return 0


def _measure(a, tmp: Path, codes: list, edge: float, tz: str) -> dict:
    """Each checkout in `codes` serving in turn behind one responder, with the data seeded in `tmp`; the figures."""
    from .traffic import seed_data
    nums = seed_data(tmp / "seed", a.dnc)
    sample = tmp / "dnc_sample.npy"
    np.save(sample, nums[:: max(1, len(nums) // 10_000)])
    r_port = _free_port()
    resp = subprocess.Popen([sys.executable, "-m", "benchmarks.smpp_peers", "responder", str(r_port)], **OWN_GROUP)
    out = {"seconds": a.seconds, "edge_s": edge, "binds": a.binds, "window": a.window, "campaign_share": a.campaign_share,
           "proxy_local_time": datetime.now(ZoneInfo(tz)).strftime("%H:%M"), "runs": {}}
    try:
        if not _wait_port(r_port):
            raise RuntimeError("the responder did not start")
        for k, code in enumerate(codes):
            p, port = _serve(code, tmp, k, r_port, a.config)
            try:
                r = _load(port, 0, a.seconds, {"proxy": p.pid}, 700 + k, sample, count=int(a.seconds * a.rate_cap),
                          campaign_share=a.campaign_share, timeout=a.seconds + 300)
            finally:
                _stop(p)
            vlog = tmp / f"v{k}.jsonl"
            lines = sum(1 for _ in open(vlog, "rb")) if vlog.exists() else 0
            throttled = r["error_statuses"].get(THROTTLED, 0)
            judged = r["ok"] + r["errors"] - throttled
            gc_file = tmp / f"gc{k}.json"
            growth = _growth(r["series"], "proxy", edge)
            out["runs"][code] = {
                "cpu_us_per_msg": _per_msg(r, "proxy"), "first_us": growth and growth["first_us"],
                "last_us": growth and growth["last_us"], "growth": growth and growth["growth"],
                "answered_per_s": r["achieved"], "sent": r["sent"], "ran_out_of_messages": r["ran_out_of_messages"],
                "unanswered": r["unanswered"], "unexpected": r["unexpected"], "error_statuses": r["error_statuses"],
                "judged": judged, "verdict_lines": lines, "one_line_per_judged": lines == judged,
                "gc_max_ms": json.loads(gc_file.read_text())["max_ms"] if gc_file.exists() else None,
                "per_second_us": [round(x, 1) if x else x for x in growth["per_second_us"]] if growth else None}
    finally:
        _stop(resp)
    return out


if __name__ == "__main__":
    from .util import run_main
    sys.exit(run_main(main, "python -m benchmarks.smpp_check"))     # SIGTERM, Ctrl-C: what it started is stopped
