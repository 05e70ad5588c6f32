"""How long a state snapshot stops the event loop: forked writer against the in-process copy.

    python -m benchmarks.snapshot_bench KEYS [REPEATS]

Theory of operation: an embedded state store (engine/state/embedded.py) in a temporary data dir
gets KEYS advertiser-recipient counter keys and KEYS per-recipient keys (two namespaces of
AD_FREQUENCY_CAP's shape), as a busy day at the bounds would leave. Then, alternating, snapshots are
taken the two ways `serve` can: forked (the timer's way: a child writes a copy-on-write image) and
copied (the fallback where fork is refused, and the clean stop's way: every table copied on the
loop, written by a thread). A ticker task wakes every millisecond and records the longest gap
between its wake-ups while each snapshot runs: the pause every message and call in flight sees.
Also reported: wall time until the snapshot is installed, the table bytes and the snapshot file's
size. Prints one JSON object.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

NS_PAIR, NS_ONE, W, LIM = "AD|owner+recipient|24h", "RCPT|recipient|1h", 86400.0, 3


async def _ticked(coro_fn) -> tuple[float, float]:
    """(longest loop gap in ms while coro_fn() and its background install run, wall seconds)."""
    worst, stop = [0.0], [False]

    async def ticker():
        last = time.perf_counter()
        while not stop[0]:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last)
            last = now
    t = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    worst[0] = 0.0
    t0 = time.perf_counter()
    await coro_fn()
    wall = time.perf_counter() - t0
    stop[0] = True
    await t
    return worst[0] * 1000, wall


async def _run(keys: int, repeats: int) -> dict:
    from engine.state.embedded import EmbeddedStore
    from .util import scratch_dir
    with scratch_dir() as td:
        s = EmbeddedStore(Path(td))
        now = 1_790_000_000
        for i in range(keys):
            s.counters.add(NS_PAIR, (i, 77), now, W, LIM)
            s.counters.add(NS_ONE, i, now, 3600.0, 10)
        del s.buf[:]                            # the fill is not what is measured: no journal for it
        table_bytes = s.counters.memory_bytes()
        out = {"keys": 2 * keys, "table_bytes": table_bytes, "fork": [], "copy": []}

        async def forked():
            await s.snapshot()
            await s.settled()

        async def copied():
            await s.snapshot(fork=False)
        for _ in range(repeats):
            for name, fn in (("fork", forked), ("copy", copied)):
                pause, wall = await _ticked(fn)
                out[name].append({"loop_pause_ms": round(pause, 2), "wall_s": round(wall, 3)})
        out["snapshot_file_bytes"] = (Path(td) / "state" / "snapshot").stat().st_size
        out["write_errors"] = s.write_errors
        await s.close()
    for name in ("fork", "copy"):
        out[f"{name}_max_pause_ms"] = max(r["loop_pause_ms"] for r in out[name])
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    keys = int(argv[0])
    repeats = int(argv[1]) if len(argv) > 1 else 3
    print(json.dumps(asyncio.run(_run(keys, repeats))))
    return 0


if __name__ == "__main__":
    from .util import exit_on_sigterm
    exit_on_sigterm()       # its TemporaryDirectory is removed on SIGTERM (timeout(1), util.child) too
    sys.exit(main())
