"""Pipeline in process: µs per stage (normalise, lists, rules, ML) and verdicts/s on one core,
with scikit-learn's own single-message predict_proba as the ML baseline. The messages are the
realistic mix of benchmarks/traffic.py (distinct p2p texts, campaigns with varied content), not
a small pool of replayed texts, which would measure the score cache and the flood rules."""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from .traffic import SHARES, records, seed_data
from .util import pct, scratch_dir


def build_pipeline(dnc_size: int, tmp: Path):
    from engine.app import build
    nums = seed_data(tmp, dnc_size)          # the registry, blacklist and DNC the mix refers to
    return build(data_dir=tmp, persist=False), nums


def run(n: int, dnc_size: int, progress=None) -> dict:
    from engine.context import MessageContext
    from engine.records import parse_record
    with scratch_dir() as td:
        pipe, nums = build_pipeline(dnc_size, Path(td))
        recs = list(records(n, dnc_sample=nums[:: max(1, len(nums) // 10_000)]))
        mix = [r.pop("mix") for r in recs]
        objs = [parse_record(r) for r in recs]
        L, tz, sc = pipe.lists, pipe.tz, pipe.shortcode
        st = {"normalise": [], "lists": [], "rules": [], "ml": [], "judge": [], "judge_cpu": []}
        pc = time.perf_counter
        # per stage; stateful rules see the stream in order, as they would live
        for i, m in enumerate(objs):
            t0 = pc()
            ctx = MessageContext(m, L, tz, sc)
            ctx.folded, ctx.hosts, ctx.local_seconds                     # the normalised facts
            t1 = pc()
            L.in_dnc(ctx.recipient_num, "S"), L.number_blacklisted(ctx.sender_num)
            L.domain_blacklisted(ctx.hosts), ctx.registry_problem, ctx.owner
            t2 = pc()
            pipe.rules.evaluate(ctx, pipe.state)
            t3 = pc()
            if pipe.model is not None and m.kind == "sms" and m.text:
                pipe.model.score(m.text)
            t4 = pc()
            st["normalise"].append((t1 - t0) * 1e6)
            st["lists"].append((t2 - t1) * 1e6)
            st["rules"].append((t3 - t2) * 1e6)
            st["ml"].append((t4 - t3) * 1e6)
            if progress:
                progress.update(1)
        # end to end, fresh state, one core
        from engine.pipeline import EngineState
        pipe.state = EngineState()
        verdicts = defaultdict(Counter)
        t0 = pc()
        tc = time.thread_time_ns
        for m, k in zip(objs, mix):
            a, ta = pc(), tc()
            v = pipe.judge(m)
            # wall time (what a message waits: other tenants' preemptions included) and the
            # thread's CPU time (what judging costs)
            st["judge_cpu"].append((tc() - ta) / 1e3)
            st["judge"].append((pc() - a) * 1e6)
            verdicts[k][str(v.action)] += 1
            if progress:
                progress.update(1)
        wall = pc() - t0
        texts160 = [t[:160] for t in (m.text for m in objs) if len(t) >= 100][:2000]
        # scikit-learn's own per-message predict_proba for the same model (the ML baseline), on the same texts
        sk_us = sklearn_baseline(texts160[:400], pipe.model)
        ml160 = []
        for t in texts160:
            a = pc()
            pipe.model._score(t)              # uncached: the arithmetic itself
            ml160.append((pc() - a) * 1e6)
    # the slowest 1% of judge() calls by thread CPU: which kinds of message they are, against
    # their share of the mix (what the p99 tail is made of)
    jc = np.array(st["judge_cpu"])
    kinds = np.array(mix[:len(jc)])
    tail = jc >= np.percentile(jc, 99) if len(jc) else jc.astype(bool)
    tail_mix = {k: {"tail_share": round(float((kinds[tail] == k).mean()), 4) if tail.any() else 0.0,
                    "mix_share": round(float((kinds == k).mean()), 4),
                    "cpu_p50_us": round(float(np.percentile(jc[kinds == k], 50)), 1),
                    "cpu_p99_us": round(float(np.percentile(jc[kinds == k], 99)), 1)}
                for k in sorted(set(mix)) if (kinds == k).any()}
    stages = {k: {**pct(v), "mean": float(np.mean(v))} for k, v in st.items()}
    return {"n": n, "dnc_size": dnc_size, "stages_us": stages, "msgs_per_s": n / wall,
            "ml_us_per_msg_160": float(np.median(ml160)) if ml160 else None, "ml_sklearn_us_per_msg": sk_us,
            "mix_shares": SHARES, "judge_cpu_tail_by_mix": tail_mix, "verdicts_by_mix": {k: dict(v) for k, v in verdicts.items()}}


def sklearn_baseline(texts, model) -> float | None:
    """The same model as scikit-learn objects (engine.ml.bench.sklearn_twin, the parity reference),
    one message at a time through predict_proba."""
    if model is None:
        return None
    from engine.ml.bench import sklearn_twin
    from engine.ml.features import matrix
    decision, cal = sklearn_twin(model)
    times = []
    for t in texts:
        a = time.perf_counter()
        cal.predict_proba(decision(matrix([t])).reshape(-1, 1))
        times.append((time.perf_counter() - a) * 1e6)
    return float(np.median(times))
