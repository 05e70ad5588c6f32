"""DNC sets at national scale: RSS, snapshot size, load time, lookup cost; a Python set as baseline.

Each measurement runs in its own process so RSS is that of the structure alone:
    python -m benchmarks.lists_bench build N DIR      build N numbers, save the DNC snapshot in DIR
    python -m benchmarks.lists_bench load DIR         load it through ListStore, measure
    python -m benchmarks.lists_bench pyset N          the baseline
    python -m benchmarks.lists_bench counters N       the pack's counter state after N distinct recipients
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from .gen import dnc_numbers
from .util import rss_mb


def _lookups(contains, present, n=200_000):
    rng = random.Random(3)
    probe = [int(present[rng.randrange(len(present))]) if i % 2 else 84_300_000_000 + rng.randrange(700_000_000)
             for i in range(n)]
    t = time.perf_counter()
    hits = sum(1 for x in probe if contains(x))
    return (time.perf_counter() - t) / n * 1e6, hits


def main(argv):
    mode = argv[0]
    if mode == "build":
        from pyroaring import BitMap64
        from engine.lists import Lists, ListStore
        n, d = int(argv[1]), Path(argv[2])
        nums = dnc_numbers(n)
        L = Lists()
        half = len(nums) // 2
        L.dnc_s = BitMap64(nums)                  # every number for S, half of them for V too (SV)
        L.dnc_v = BitMap64(nums[:half])
        t = time.perf_counter()
        ListStore(d).save(L, ("dnc",))
        save_s = time.perf_counter() - t
        np.save(d / "sample.npy", nums[:: max(1, len(nums) // 100_000)])
        print(json.dumps({"n": n, "save_s": save_s, "snapshot_mb": (d / "lists" / "dnc.snap").stat().st_size / 2**20}))
    elif mode == "load":
        from engine.lists import ListStore
        d = Path(argv[1])
        sample = np.load(d / "sample.npy")
        r0 = rss_mb()
        t = time.perf_counter()
        L = ListStore(d).load()
        load_s = time.perf_counter() - t
        r1 = rss_mb()
        us, hits = _lookups(lambda x: L.in_dnc(x, "S"), sample)
        print(json.dumps({"load_s": load_s, "rss_mb": r1 - r0, "lookup_us": us, "hits": hits,
                          "size": len(L.dnc_s | L.dnc_v)}))
    elif mode == "counters":
        # the pack's counter state after N distinct recipients: the advertiser cap keyed by
        # owner+recipient (24 h), the flood counter keyed by sender+recipient+content (5 min),
        # and the per-sender recipient history (1 h), one message per recipient
        from engine.rules.counters import MemoryCounters, RecipientHistory
        n = int(argv[1])
        c, h = MemoryCounters(), RecipientHistory()
        r0 = rss_mb()
        t = time.perf_counter()
        ts = 1_790_000_000.0
        for i in range(n):
            rcpt = 84_900_000_000 + i
            sender = 84_800_000_000 + i // 50
            c.add("AD_FREQUENCY_CAP", ("o:shop abc", rcpt), ts + i * 0.01, 86400.0, 3)
            c.add("FLOOD_SAME_CONTENT", (sender, rcpt, "xin chao ban"), ts + i * 0.01, 300.0, 3)
            h.add(sender, rcpt, ts + i * 0.01, 3600.0)
        dt = time.perf_counter() - t
        print(json.dumps({"recipients": n, "rss_mb": rss_mb() - r0, "keys": c.memory_keys(),
                          "us_per_message": dt / n * 1e6}))
    elif mode == "pyset":
        n = int(argv[1])
        nums = dnc_numbers(n)
        r0 = rss_mb()
        t = time.perf_counter()
        s = set(nums.tolist())
        build_s = time.perf_counter() - t
        r1 = rss_mb()
        us, hits = _lookups(s.__contains__, nums[:: max(1, n // 100_000)])
        print(json.dumps({"rss_mb": r1 - r0, "build_s": build_s, "lookup_us": us}))


def _usage_error(argv) -> str | None:
    """What is wrong with the arguments, before anything is built (an unknown mode printed nothing and exited 0; a
    missing or non-numeric count was a traceback)."""
    forms = {"build": ("N", "DIR"), "load": ("DIR",), "pyset": ("N",), "counters": ("N",)}
    if not argv or argv[0] not in forms:
        return f"a mode is needed: one of {', '.join(forms)}"
    if len(argv) != 1 + len(forms[argv[0]]):
        return f"{argv[0]} takes {' '.join(forms[argv[0]])}"
    for what, v in zip(forms[argv[0]], argv[1:]):
        if what == "N" and not (v.isdigit() and int(v) > 0):
            return f"N must be a count above 0: {v!r}"
    if argv[0] == "load" and not (Path(argv[1]) / "sample.npy").is_file():
        return f"{argv[1]!r} holds no list built by `build N DIR` (no sample.npy)"
    return None


if __name__ == "__main__":
    from .util import exit_on_sigterm
    usage = "usage:\n" + "\n".join(ln for ln in __doc__.splitlines() if ln.startswith("    python -m"))
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(usage)
        sys.exit(0)
    if (why := _usage_error(sys.argv[1:])) is not None:
        print(usage, file=sys.stderr)
        print(f"python -m benchmarks.lists_bench: error: {why}", file=sys.stderr)
        sys.exit(2)
    exit_on_sigterm()       # its TemporaryDirectory is removed on SIGTERM (timeout(1), util.child) too
    main(sys.argv[1:])
