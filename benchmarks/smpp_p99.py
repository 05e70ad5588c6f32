"""Added latency of the SMPP proxy at one offered rate, next to the straight line, in one run.

    python -m benchmarks.smpp_p99 [--rate 5000] [--seconds 8] [--repeat 2] [--pacing thread,timer]
                                  [--arrivals uniform] [--code DIR ...]

Theory of operation: the lean responder (the SMSC) and one `telfilter serve` per checkout
(`--code DIR`, default this one; give two to compare a change with its baseline in the same
run) start on 127.0.0.1, as in the smpp step of `python -m benchmarks` (shipped pack, bundled
model, seeded registry, blacklist and DNC of `--dnc`, verdict log to a file). Then, `--repeat`
times and in turn, the load generator offers `--rate` submit_sm/s (open loop, 4 binds × window
10, fresh messages of the realistic mix) straight to the responder and through each proxy. The
added latency is the proxy's percentile less the straight line's at the same rate in the same
round; CPU µs per submit_sm is the proxy's process CPU over the messages it answered; worst GC
pauses come from benchmarks.proxy_runner when the proxies exit. Each round runs every generator
pacing of `--pacing` in turn (benchmarks.smpp_load: `thread` sends each message at its own time,
`timer` is the event loop's 1-ms timers, which send in clumps), with `--arrivals` uniform or
poisson; a round's rows are keyed by pacing, each with its own direct baseline. Prints one JSON
object.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .smpp_bench import _free_port, _load, _per_msg, _wait_port
from .util import OWN_GROUP, checkout, positive, scratch_dir, stop_all


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.smpp_p99", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=positive(float), default=5000, help="offered submit_sm/s (default 5000)")
    ap.add_argument("--seconds", type=positive(float), default=8, help="of load per rung (default 8)")
    ap.add_argument("--repeat", type=positive(), default=2, help="rounds (default 2)")
    ap.add_argument("--dnc", type=positive(), default=1_000_000, help="DNC numbers seeded (default 1,000,000)")
    ap.add_argument("--trace", action="store_true", help="run the proxies under benchmarks.smpp_trace (stages per message)")
    ap.add_argument("--code", action="append", default=None, type=checkout,
                    help="a checkout whose engine serves (repeatable)")
    ap.add_argument("--pacing", default="thread,timer", help="generator pacings to run each round, comma-separated")
    ap.add_argument("--arrivals", choices=("uniform", "poisson"), default="uniform")
    a = ap.parse_args(argv)
    if not a.pacing or set(a.pacing.split(",")) - {"thread", "timer"}:
        ap.error(f"--pacing {a.pacing!r}: thread and/or timer, comma-separated")
    codes = [str(Path(c).resolve()) for c in (a.code or [os.getcwd()])]
    from .traffic import seed_data
    with scratch_dir(prefix="tf-p99-") as td:
        tmp = Path(td)
        py = sys.executable
        procs, proxies = [], []
        try:
            nums = seed_data(tmp / "seed", a.dnc)
            sample = tmp / "dnc_sample.npy"
            np.save(sample, nums[:: max(1, len(nums) // 10_000)])
            r_port = _free_port()
            procs.append(subprocess.Popen([py, "-m", "benchmarks.smpp_peers", "responder", str(r_port)], **OWN_GROUP))
            for k, code in enumerate(codes):
                d = tmp / f"p{k}"
                subprocess.run(["cp", "-r", str(tmp / "seed"), str(d)], check=True)
                port = _free_port()
                env = dict(os.environ, PYTHONPATH=code)
                p = subprocess.Popen([py, "-m", "benchmarks.smpp_trace" if a.trace else "benchmarks.proxy_runner",
                                      str(tmp / f"gc{k}.json"), "serve",
                                      "--data-dir", str(d), "--smpp-listen", f"127.0.0.1:{port}",
                                      "--smsc", f"127.0.0.1:{r_port}", "--esme-account", "bench:pw",
                                      "--sip-listen", "off", "--log", str(tmp / f"v{k}.jsonl"),
                                      "--ready-file", str(tmp / f"ready{k}")],
                                     cwd=code, env=env, stderr=subprocess.DEVNULL)
                procs.append(p)
                proxies.append((code, port, p))
            end = time.time() + 90
            while not all((tmp / f"ready{k}").exists() for k in range(len(codes))) and time.time() < end:
                time.sleep(0.1)
            if not _wait_port(r_port) or not all((tmp / f"ready{k}").exists() for k in range(len(codes))):
                raise RuntimeError("a proxy or the responder did not start")
            time.sleep(0.5)
            seed = iter(range(500, 10_000))
            rounds = []
            for _ in range(a.repeat):
                by_pacing = {}
                for pacing in a.pacing.split(","):
                    extra = ("--pacing", pacing, "--arrivals", a.arrivals)
                    direct = _load(r_port, a.rate, a.seconds, {}, next(seed), sample,
                                   count=min(int(a.rate * a.seconds), 10_000), cycle=True, extra=extra)
                    row = {"direct_latency_us": direct["latency_us"], "direct_achieved": direct["achieved"],
                           "direct_send_late_us": direct.get("send_late_us"),
                           "direct_clumped_share": direct.get("clumped_share")}
                    for k, (code, port, p) in enumerate(proxies):
                        r = _load(port, a.rate, a.seconds, {"proxy": p.pid}, next(seed), sample, extra=extra)
                        row[code] = {"achieved": r["achieved"], "latency_us": r["latency_us"],
                                     "sojourn_us": r["sojourn_us"],
                                     "added_us": {q: r["latency_us"][q] - direct["latency_us"][q]
                                                  for q in r["latency_us"]},
                                     "cpu_us_per_msg": _per_msg(r, "proxy"), "unanswered": r["unanswered"],
                                     "errors": r["error_statuses"], "send_late_us": r.get("send_late_us"),
                                     "clumped_share": r.get("clumped_share")}
                    by_pacing[pacing] = row
                rounds.append(by_pacing)
        finally:
            stop_all(procs, 15)
            gc_by = {code: json.loads((tmp / f"gc{k}.json").read_text()) if (tmp / f"gc{k}.json").exists() else None
                     for k, (code, _, _) in enumerate(proxies)}
    print(json.dumps({"rate": a.rate, "seconds": a.seconds, "arrivals": a.arrivals, "rounds": rounds, ("proxy_trace" if a.trace else "proxy_gc"): gc_by}))
    return 0


if __name__ == "__main__":
    from .util import run_main
    sys.exit(run_main(main, "python -m benchmarks.smpp_p99"))     # SIGTERM, Ctrl-C: what it started is stopped
