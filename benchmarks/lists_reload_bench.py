"""What a lists reload of a running serve costs when one small list changed beside big ones (README, Known limits).

    python -m benchmarks.lists_reload_bench build DIR [--dnc N] [--registry N] [--blacklist N]
        a data dir with DNC numbers (default 10M, every one S, half of them V too), registry rows (200k) and
        blacklist entries (1M: half numbers, half domains), and 100 advertisers' consent of 1,000 numbers each
    python -m benchmarks.lists_reload_bench run DIR [--full] [--rounds N]
        the lists loaded as serve loads and freezes them; then N times: `telfilter lists add blacklist` of one
        domain (the CLI, another process, waited for), then the reload serve makes when it picks that change up
        (`reload_lists`; `--full`: every list read again, as before reloads read only what changed), timed, with
        the event loop's worst stall over the reload (a 1 ms ticker on the loop; the loop does nothing else).

One JSON line per round and one with the worst figures. Runs the `engine` it imports: from another checkout's
directory (`cd CHECKOUT && python PATH/TO/lists_reload_bench.py run DIR`) to measure that one.
"""
from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time
from pathlib import Path


def build(d: Path, n_dnc: int, n_reg: int, n_bl: int) -> dict:
    import numpy as np
    from pyroaring import BitMap64
    from engine.lists import Lists, ListStore, SenderEntry
    rng = np.random.default_rng(1)
    nums = np.unique(84_300_000_000 + rng.integers(0, 700_000_000, size=n_dnc + n_dnc // 20, dtype=np.uint64))[:n_dnc]
    L = Lists()
    L.dnc_s, L.dnc_v = BitMap64(nums), BitMap64(nums[: len(nums) // 2])
    for i in range(n_reg):
        L.add_sender(SenderEntry(f"BR{i:07d}"[-11:], f"Owner {i % 5000}", "QC" if i % 3 else "CSKH", None, None,
                                 frozenset()))
    L.bl_numbers = BitMap64(84_200_000_000 + rng.integers(0, 99_999_999, size=n_bl // 2, dtype=np.uint64))
    L.bl_domains = {f"d{i}.spam{i % 997}.example" for i in range(n_bl - n_bl // 2)}
    for o in range(100):
        L.consent[f"owner {o}"] = BitMap64(84_900_000_000 + np.arange(o * 1000, o * 1000 + 1000, dtype=np.uint64))
        L.owner_names[f"owner {o}"] = f"Owner {o}"
    t = time.perf_counter()
    ListStore(d).save(L)
    return {"dnc": len(L.dnc_s), "registry": len(L.senders), "blacklist": len(L.bl_numbers) + len(L.bl_domains),
            "save_s": round(time.perf_counter() - t, 2),
            "snapshot_mb": {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted((d / "lists").glob("*.snap"))}}


async def _rounds(d: Path, full: bool, rounds: int) -> list:
    import engine
    from engine.app import build as build_pipe
    from engine.serve import GC_THRESHOLDS, reload_lists
    root = Path(engine.__file__).resolve().parent.parent
    pipe = build_pipe(None, d, with_model=False, seed=False)
    gc.collect()
    gc.freeze()                     # as serve's start does
    gc.set_threshold(*GC_THRESHOLDS)
    worst = [0.0]

    async def ticker():
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last)
            last = now
    tick = asyncio.ensure_future(ticker())
    out = []
    for i in range(rounds):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "engine.cli", "lists", "add", "blacklist", f"r{i}-{time.time_ns()}.example",
                        "--data-dir", str(d)], cwd=root, check=True)
        cli_s = time.perf_counter() - t
        await asyncio.sleep(0.05)
        worst[0] = 0.0
        t = time.perf_counter()
        err = await (reload_lists(pipe, full=True) if full else reload_lists(pipe))
        took = time.perf_counter() - t
        await asyncio.sleep(0.05)       # (the replaced lists are freed in a worker thread after the swap)
        out.append({"round": i, "cli_add_s": round(cli_s, 2), "reload_s": round(took, 3),
                    "worst_loop_stall_ms": round(worst[0] * 1000, 1), "error": err,
                    "read": (getattr(pipe, "lists_reloads", None) or {}).get("last_read")})
    tick.cancel()
    return out


def main(argv) -> None:
    import argparse
    from benchmarks.util import positive
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lists_reload_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("build", help="make the data dir")
    b.add_argument("dir", type=Path)
    b.add_argument("--dnc", type=positive(), default=10_000_000)
    b.add_argument("--registry", type=positive(), default=200_000)
    b.add_argument("--blacklist", type=positive(), default=1_000_000)
    r = sub.add_parser("run", help="the reloads, measured")
    r.add_argument("dir", type=Path)
    r.add_argument("--full", action="store_true", help="every list read again at each reload")
    r.add_argument("--rounds", type=positive(), default=3)
    a = ap.parse_args(argv)
    if a.mode == "build":
        print(json.dumps(build(a.dir, a.dnc, a.registry, a.blacklist)))
        return
    if not (a.dir / "lists").is_dir():
        ap.error(f"{a.dir}: no lists (make them with `build {a.dir}`)")
    out = asyncio.run(_rounds(a.dir, a.full, a.rounds))
    for x in out:
        print(json.dumps(x))
    print(json.dumps({"full": a.full, "reload_s_max": max(x["reload_s"] for x in out),
                      "worst_loop_stall_ms": max(x["worst_loop_stall_ms"] for x in out)}))


if __name__ == "__main__":
    main(sys.argv[1:])
