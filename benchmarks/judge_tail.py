"""What the in-process judge's p99 is made of: the same messages judged in several processes, per message.

    python -m benchmarks.judge_tail [--n 200000] [--runs 3] [--dnc 1000000]

Theory of operation: judge_cpu_p99_us (benchmarks.longrun) is one run's thread CPU per judge() call, and on a
shared VM one run's slowest 1% is mostly other tenants (steal, caches they evicted), not the message. Here `--runs`
child processes each build the pipeline as the long run does (serve's collector set-up) and judge the same
`--n` messages of the realistic mix in the same order, recording per message its thread CPU, the minor page faults
and context switches its call took (getrusage per thread) and whether a collection ran in it. The per-message
minimum over the runs is what the message itself costs: its p99 is the structural tail, and the slowest 1% of it is
described by text length, first-seen sender, page faults and collections. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .util import run_stopping_gently, scratch_dir


def child(n: int, dnc: int, out: str) -> None:
    import gc
    import resource
    import time

    from engine.app import build
    from engine.records import parse_record
    from engine.serve import GC_THRESHOLDS

    from .traffic import records, seed_data
    with scratch_dir() as td:
        nums = seed_data(Path(td), dnc)
        pipe = build(data_dir=td, persist=False)
        sample = nums[:: max(1, len(nums) // 10_000)]
        msgs = []
        for r in records(n, seed=23, dnc_sample=sample, rate=2000.0):
            mix = r.pop("mix")
            msgs.append((parse_record(r), mix, r.get("sender")))
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        ran = [0]

        def collected(phase, info):
            if phase == "start":
                ran[0] = 1
        gc.callbacks.append(collected)
        cpu, flt, csw, gcs = (np.zeros(len(msgs)) for _ in range(4))
        tl, new, mixes = np.zeros(len(msgs)), np.zeros(len(msgs), dtype=bool), []
        seen, ru, who, tt = set(), resource.getrusage, resource.RUSAGE_THREAD, time.thread_time_ns
        for i, (m, mix, sender) in enumerate(msgs):
            new[i], tl[i] = sender not in seen, len(m.text or "")
            seen.add(sender)
            mixes.append(mix)
            ran[0] = 0
            r0 = ru(who)
            a = tt()
            pipe.judge(m)
            cpu[i] = (tt() - a) / 1e3
            r1 = ru(who)
            flt[i], gcs[i] = r1.ru_minflt - r0.ru_minflt, ran[0]
            csw[i] = r1.ru_nvcsw - r0.ru_nvcsw + r1.ru_nivcsw - r0.ru_nivcsw
        gc.callbacks.remove(collected)
    np.savez(out, cpu=cpu, flt=flt, csw=csw, gc=gcs, tl=tl, new=new, mix=np.array(mixes))


def describe(runs: list) -> dict:
    c = np.min([r["cpu"] for r in runs], axis=0)
    flt = np.min([r["flt"] for r in runs], axis=0)
    gcs = np.min([r["gc"] for r in runs], axis=0)
    d = runs[0]
    top = c >= np.percentile(c, 99)
    pct = lambda a: {f"p{q:g}": round(float(v), 1) for q, v in zip((50, 99, 99.9), np.percentile(a, (50, 99, 99.9)))}
    each = [r["cpu"] for r in runs]
    again = [float(np.mean((a >= np.percentile(a, 99))[b >= np.percentile(b, 99)])) for a, b in zip(each, each[1:])]
    clean = [a[(r["flt"] == 0) & (r["csw"] == 0) & (r["gc"] == 0)] for a, r in zip(each, runs)]
    mixes, counts = np.unique(d["mix"][top], return_counts=True)
    return {"messages": len(c), "runs": len(runs), "per_run_us": [pct(a) for a in each],
            "per_run_clean_p99_us": [round(float(np.percentile(a, 99)), 1) for a in clean],
            "slowest_1pct_again_in_next_run": [round(x, 3) for x in again],
            "min_of_runs_us": pct(c),
            "min_tail": {"mix": {str(k): int(v) for k, v in zip(mixes, counts)},
                         "text_120_plus_share": round(float(np.mean(d["tl"][top] >= 120)), 3),
                         "text_120_plus_share_all": round(float(np.mean(d["tl"] >= 120)), 3),
                         "new_sender_share": round(float(np.mean(d["new"][top])), 3),
                         "new_sender_share_all": round(float(np.mean(d["new"])), 3),
                         "page_fault_share": round(float(np.mean(flt[top] > 0)), 3),
                         "page_fault_share_all": round(float(np.mean(flt > 0)), 3),
                         "collection_share": round(float(np.mean(gcs[top] > 0)), 3),
                         "collections_all": int(np.sum(gcs > 0))}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.judge_tail", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="messages of the realistic mix (default 200,000)")
    ap.add_argument("--runs", type=int, default=3, help="processes judging them, in turn (default 3)")
    ap.add_argument("--dnc", type=int, default=1_000_000, help="DNC numbers seeded (default 1,000,000)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.n < 100 or a.runs < 2 or a.dnc < 1:
        ap.error("--n of at least 100, --runs of at least 2, --dnc of at least 1")
    if a.child:
        child(a.n, a.dnc, a.child)
        return 0
    with scratch_dir() as td:
        outs = [os.path.join(td, f"run{k}.npz") for k in range(a.runs)]
        for out in outs:
            p = run_stopping_gently([sys.executable, "-m", "benchmarks.judge_tail", "--n", str(a.n), "--dnc",
                                     str(a.dnc), "--child", out])     # (the child's data dir: removed on SIGTERM)
            if p.returncode:
                raise subprocess.CalledProcessError(p.returncode, p.args)
        print(json.dumps(describe([dict(np.load(o)) for o in outs])))
    return 0


if __name__ == "__main__":
    from .util import exit_on_sigterm
    exit_on_sigterm()       # its TemporaryDirectory is removed on SIGTERM (timeout(1), util.child) too
    sys.exit(main())
