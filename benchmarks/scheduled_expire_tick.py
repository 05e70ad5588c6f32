"""The scheduled ads' housekeeping tick (smpp_proxy/dnc_cancel.py `_scheduled_tick`) when no DNC change came: its
expiry with N ads due in the same second, the index heap's rebuild after N*2/3 ads went (receipts), and N ads whose
cancel backs off, none due. CPU, the longest turn of the event loop and the turns taken.

    python -m benchmarks.scheduled_expire_tick [--sizes 100000,199000]

Theory of operation: in process, as benchmarks/scheduled_dnc_tick.py (its `_Proxy`: no links, a fake loop that runs
the slices left by call_soon one turn after another, each timed), for each size N, three states, each measured by one
tick: `due_at_once`, N ads delivered at the same second (ads held for 07:00) and the clock at it; `rebuild`, N ads
spread over 30 days and 2/3 of them discarded (stale heap items past twice the entries: the heap rebuilt); `retries`,
N ads each with a cancel to try again in an hour (an SMSC answering no cancel_sm), none due. Nothing is sent. Prints
one JSON object. Runs on a tree from before the sliced expiry too (same-run comparisons: run it from each tree).

Measured (this host, 2 shared cores, load 4-6 from other jobs, 2026-12-08; before = 8af5db37, after = the sliced
expiry and the retries' heap; alternated runs, 2-4 each; CPU of this thread): `due_at_once` 100k one turn of 204-368
ms -> 196 turns, the longest 1.4-2.7 ms (one run 13 ms, not seen again); 199k one turn of 399-627 ms -> 389 turns,
the longest 1.7-3.0 ms; in all about the same CPU. `rebuild` 100k (33k live) one turn of 28-44 ms -> 31 turns, the
longest 2.5-3.3 ms; 199k (66k live) 55-90 ms -> 59 turns, the longest 3.5-6.9 ms (a young-generation GC pass, ~2 ms,
lands in some), ~1.5-2x the CPU in all (pushes one by one, not one heapify). `retries`, none due: 100k 11.5-15.8 ms
-> 0.06 ms; 199k 23-32 ms -> 0.06 ms.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from datetime import timedelta
from pathlib import Path

from benchmarks.scheduled_dnc_tick import NOW, SENDERS, _Proxy, _sizes
from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.scheduled import PendingAd

FIRST = 84_913_000_000


def _proxy(tmp: Path, n: int, due) -> _Proxy:
    d = tmp / f"data{n}-{len(list(tmp.iterdir()))}"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Proxy(build(data_dir=d, with_model=False), n + 2)
    for i in range(n):
        p._index_ad(PendingAd(f"smsc\x1fM{i}", "smsc", f"M{i}", "esme1", due(i), FIRST + i, "", 5, 0, "SHOPABC",
                              1, 1, str(FIRST + i)))
    return p


def _timed(p: _Proxy, now: float) -> dict:
    turns = p.turns(now)
    wall, cpu = [t for t, _ in turns], [c for _, c in turns]
    return {"ms": round(sum(wall) * 1e3, 3), "cpu_ms": round(sum(cpu) * 1e3, 3),
            "longest_turn_ms": round(max(wall) * 1e3, 3), "longest_turn_cpu_ms": round(max(cpu) * 1e3, 3),
            "turns": len(turns), "indexed_after": len(p.scheduled)}


def _one(n: int, tmp: Path) -> dict:
    at = int(NOW.timestamp()) + 86400
    out = {"ads": n}
    p = _proxy(tmp, n, lambda i: at)
    _timed(p, 1000.0)                               # (the first look: nothing on the DNC list)
    p.clock = lambda: NOW + timedelta(seconds=86400)
    out["due_at_once"] = _timed(p, 1002.0)
    p = _proxy(tmp, n, lambda i: at + (i * 7919) % (30 * 86400))
    _timed(p, 1000.0)
    for i in range(0, n, 3):
        for k in (f"smsc\x1fM{i}", f"smsc\x1fM{i + 1}"):
            p.scheduled.discard(k)
    out["rebuild"] = _timed(p, 1002.0)
    out["rebuild"]["heap_after"] = len(p.scheduled.heap)
    p = _proxy(tmp, n, lambda i: at + (i * 7919) % (30 * 86400))
    _timed(p, 1000.0)
    for k in p.scheduled.entries:
        p._scheduled_retry[k] = 4600.0 + len(p._scheduled_retry) % 300
    out["retries"] = _timed(p, 1002.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=_sizes, default="100000,199000")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        out = [_one(n, Path(t)) for n in a.sizes]
    print(json.dumps({"scheduled_expire_tick": out}, indent=1))


if __name__ == "__main__":
    main()
