"""The flat state tables alone: CPU µs per message spent in the counter, history and call tables.

The pipeline judges the realistic mix (benchmarks/traffic.py) once, recording every call it
makes into its counters and recipient history (count / add / distinct / add_distinct / share /
add, with their arguments). That sequence is then replayed against fresh tables, timed with the
thread's CPU clock: the same work per message as in the pipeline, without the rest of the
judge. `--compare` replays it on the pure-Python tables and the compiled ones in the same run
(the compiled ones are engine/rules/_slotsfast.c; without them both columns are Python).

    python -m benchmarks.tables_bench [N] [--repeat R]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


class _Recorder:
    """Wraps a state object, recording (method, args) of the table calls before forwarding."""

    def __init__(self, inner, log, names):
        self._inner, self._log, self._names = inner, log, names

    def __getattr__(self, name):
        f = getattr(self._inner, name)
        if name not in self._names:
            return f
        log = self._log

        def rec(*a):
            log.append((name, a))
            return f(*a)
        return rec


def capture(n: int, dnc_size: int = 20_000):
    """The ops the pipeline makes into its tables while judging n messages of the mix."""
    from engine.records import parse_record
    from .pipeline_bench import build_pipeline
    from .traffic import records
    from .util import scratch_dir
    with scratch_dir() as td:
        pipe, nums = build_pipeline(dnc_size, Path(td))
        recs = list(records(n, dnc_sample=nums[:: max(1, len(nums) // 10_000)]))
        for r in recs:
            r.pop("mix", None)
        objs = [parse_record(r) for r in recs]
        log: list = []
        st = pipe.state
        st.counters = _Recorder(st.counters, log, {"count", "add", "distinct", "add_distinct"})
        st.history = _Recorder(st.history, log, {"share", "add"})
        tags = []
        for m in objs:
            tags.append(len(log))
            pipe.judge(m)
        hist = {"share", "add"}
        ops = [(("h_" + name) if name in hist and len(a) == 4 else name, a) for name, a in log]
        return ops, len(objs)


def replay(ops, counters, history) -> float:
    """CPU seconds to apply `ops` to the given (fresh) tables."""
    bound = {"count": counters.count, "add": counters.add, "distinct": counters.distinct,
             "add_distinct": counters.add_distinct, "h_share": history.share, "h_add": history.add}
    calls = [(bound[name], a) for name, a in ops]
    t0 = time.thread_time()
    for f, a in calls:
        f(*a)
    return time.thread_time() - t0


def results(ops, counters, history) -> list:
    """Every read's answer (for parity between implementations)."""
    bound = {"count": counters.count, "add": counters.add, "distinct": counters.distinct,
             "add_distinct": counters.add_distinct, "h_share": history.share, "h_add": history.add}
    return [bound[name](*a) for name, a in ops]


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m benchmarks.tables_bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=60_000, metavar="N",
                    help="messages of the realistic mix judged to record the table calls (default 60000)")
    ap.add_argument("--repeat", type=int, default=3, metavar="R", help="timed replays of each (default 3)")
    ap.add_argument("--compare", action="store_true",
                    help="Python and compiled tables in the same run (always done when the compiled ones are built)")
    a = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if a.n < 1 or a.repeat < 1:
        ap.error("N and --repeat must be at least 1")
    n, repeat = a.n, a.repeat
    from engine.rules import slots
    from engine.rules.counters import MemoryCounters
    from engine.rules.history import RecipientHistory
    ops, msgs = capture(n)
    kinds: dict = {}
    for name, _ in ops:
        kinds[name] = kinds.get(name, 0) + 1
    print(f"{msgs} messages, {len(ops)} table calls ({len(ops) / msgs:.2f} per message): {kinds}")
    impls = [("python", False)]
    if getattr(slots, "_fast", None) is not None:
        impls.append(("compiled", True))
    ref = None
    for r in range(repeat):
        line = []
        for label, fast in impls:
            with slots.use_fast(fast):
                c, h = MemoryCounters(), RecipientHistory()
                cpu = replay(ops, c, h)
                mem = c.memory_bytes() + h.memory_bytes()
                if r == 0:
                    got = results(ops, MemoryCounters(), RecipientHistory())
                    if ref is None:
                        ref = got
                    elif got != ref:
                        bad = next(i for i, (a, b) in enumerate(zip(got, ref)) if a != b)
                        raise SystemExit(f"{label}: answer {bad} differs: {got[bad]} != {ref[bad]} ({ops[bad]})")
            line.append(f"{label} {cpu / msgs * 1e6:6.2f} µs/msg ({mem / 1e6:.1f} MB)")
        print(f"run {r + 1}: " + " | ".join(line))


if __name__ == "__main__":
    from .util import exit_on_sigterm
    exit_on_sigterm()       # its TemporaryDirectory is removed on SIGTERM (timeout(1), util.child) too
    main()
