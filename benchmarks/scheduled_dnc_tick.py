"""The scheduled ads' DNC look (smpp_proxy/dnc_cancel.py `_scheduled_tick`) after one DNC add, and the full look
after a reload: CPU, the longest turn of the event loop and the ads judged (`Pipeline.dnc_judge` calls), by how many
ads with their recipient's consent are scheduled to DNC numbers.

    python -m benchmarks.scheduled_dnc_tick [--sizes 1000,10000,100000] [--days 30]

Theory of operation: in process, for each size N, a pipeline whose sender registry has SHOPABC (QC, owner Shop ABC)
and whose DNC S list holds N numbers, each with consent to Shop ABC; the scheduled ads' index holds one ad from
SHOPABC to each (indexed, then one tick looks at them all: the state any later look starts from), all delivered
a day ahead (--days D: spread over D days). Then one unrelated number is added to DNC S (a subscriber's `DK DNC` to
5656) and the next tick is timed: before the incremental look every such tick judged all N ads again
(O(ads-with-consent-to-DNC-numbers) each second a 5656 command came); after it, the ads to the numbers added only. The
full look (the Lists object replaced: a reload) is timed in the same run for comparison. A look runs a slice per
turn of the loop (loop.call_soon): the fake loop here runs the turns one after another, each timed (`turns`,
`longest_turn_ms` wall, `longest_turn_cpu_ms` this thread's CPU; `ms`, `cpu_ms`: all of them). Nothing listens,
nothing is sent. Prints one JSON object.

Measured (this host, 2 shared cores, 2026-12-07): before the incremental look, after one unrelated DK DNC: 1k ads
6.8 ms / 1,000 dnc_barred calls, 10k 66 ms / 10,000, 100k 1,075 ms / 100,000. After it, in one run beside the full
look (`after_reload`, what every change cost before): 1k 0.025 ms / 0 calls (full 6.3 ms), 10k 0.045 ms / 0 (full
61 ms), 100k 0.049 ms / 0 (full 632 ms); after a DK DNC of an ad's recipient, that ad only: 1 call, 0.02-0.06 ms.
The full look before the sliced look, alternated with after it in one session (2 runs each, load ~3.5 on the 2
cores; CPU of this thread): 100k ads one turn of 687-720 ms -> 420-481 ms in 782 turns, the longest 1.6-2.7 ms (wall
2.4-2.7 ms); 200k one turn of 1,685-1,767 ms -> 984-1,113 ms in 1,563 turns, the longest 2.5 ms (wall 6.1-6.7 ms: the
other jobs' preemption). --days 30: 100k 721-934 ms -> 481-525 ms, the longest turn 1.5-1.8 ms; 200k 1,642-1,663 ms
-> 1,221-1,439 ms, the longest 2.3-2.7 ms.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace as NS

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.dnc_cancel import DncCancel
from engine.smpp_proxy.dnc_look import DncLook
try:
    from engine.smpp_proxy.dnc_retry import Retries
except ImportError:         # (before the retries' heap: a dict)
    Retries = dict
from engine.smpp_proxy.scheduled import BOUND, PendingAd, ScheduledAds

SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\n"
FIRST = 84_912_000_000
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone(timedelta(hours=7)))


class _Proxy(DncCancel):
    """What `_scheduled_tick` reads of SmppProxy (server.py), no links: a barred ad would wait for one. Its loop runs
    the look's slices (call_soon) one turn after another, each timed."""

    def __init__(self, pipeline, bound: int):
        self.pipeline, self.settings = pipeline, NS(cancel_scheduled_on_dnc=True)
        self.clock = lambda: NOW
        self.scheduled = ScheduledAds(bound)
        self.stats = Counter()
        self._scheduled_at = self._scheduled_said = float("-inf")
        self._scheduled_lists = self._scheduled_seen = None
        for k, v in (("_scheduled_rules", None), ("_scheduled_more", set())):     # (after the incremental look)
            setattr(self, k, v)
        self._scheduled_retry, self._cancel_tries, self._cancelling = Retries(), {}, set()
        self._look, self._look_soon, self._expire_soon = DncLook(), False, False   # (after the sliced look)
        self.stopping = False
        self._cancel_held = {}
        self.soon: list = []
        self.loop = NS(call_soon=self.soon.append)
        self.barred = 0

    def _cancel_scheduled(self, ad, why):
        self.barred += 1

    def turns(self, now: float) -> list:
        """The tick at `now`, then every slice it left for the loop's later turns: each turn's (seconds, CPU
        seconds)."""
        out, run = [], lambda: self._scheduled_tick(now)
        while run is not None:
            t, cpu = time.perf_counter(), time.thread_time()
            run()
            out.append((time.perf_counter() - t, time.thread_time() - cpu))
            run = self.soon.pop(0) if self.soon else None
        return out


def _one(n: int, tmp: Path, days: int = 0) -> dict:
    d = tmp / f"data{n}"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    pipe = build(data_dir=d, with_model=False)
    p = _Proxy(pipe, n + 2)
    due = int(NOW.timestamp()) + 86400
    for i in range(n):
        pipe.lists.add_dnc(FIRST + i, "S")
        pipe.lists.add_consent("Shop ABC", FIRST + i)
        at = due + (i * 7919) % (days * 86400) if days else due        # (--days: spread over that many days)
        p._index_ad(PendingAd(f"smsc\x1fM{i}", "smsc", f"M{i}", "esme1", at, FIRST + i, "", 5, 0, "SHOPABC",
                              1, 1, str(FIRST + i)))
    calls, make = [0], pipe.dnc_judge

    def counting():
        judge = make()

        def counted(*ad):
            calls[0] += 1
            return judge(*ad)
        return counted
    pipe.dnc_judge = counting
    clock = [1000.0]

    def tick() -> dict:
        clock[0] += 1.0
        calls[0] = p.barred = 0
        turns = p.turns(clock[0])
        wall, cpu = [t for t, _ in turns], [c for _, c in turns]
        return {"ms": round(sum(wall) * 1e3, 3), "cpu_ms": round(sum(cpu) * 1e3, 3),
                "longest_turn_ms": round(max(wall) * 1e3, 3), "longest_turn_cpu_ms": round(max(cpu) * 1e3, 3),
                "turns": len(turns), "judged": calls[0], "barred": p.barred}
    tick()                                          # the first look: every ad (the state later looks start from)
    pipe.lists.add_dnc(FIRST - 1, "S")              # one unrelated DK DNC (no ad to it)
    unrelated = tick()
    p._index_ad(PendingAd("smsc\x1fNEW", "smsc", "NEW", "esme1", due, FIRST + n + 1, "", 5, 0, "SHOPABC", 1, 1,
                          str(FIRST + n + 1)))
    pipe.lists.add_dnc(FIRST + n + 1, "S")          # a DK DNC of a number with an ad and no consent: barred
    barring = tick()
    pipe.lists = pipe.lists.__class__(**{f: getattr(pipe.lists, f) for f in ("dnc_s", "dnc_v", "senders",
                                                                             "consent", "owner_names")})
    full = tick()                                   # the Lists object replaced (a reload): every ad again
    return {"ads": n, "after_unrelated_add": unrelated, "after_add_of_an_ads_number": barring, "after_reload": full}


def _sizes(v: str) -> list:
    try:
        out = [int(n) for n in v.split(",")]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{v!r}: ads per run, whole numbers of at least 1, by commas")
    if max(out) >= BOUND:           # (N ads and one more, the run's new ad, all indexed)
        raise argparse.ArgumentTypeError(f"{v!r}: at most {BOUND - 1:,} ads per run (the scheduled ads' index holds "
                                         f"{BOUND:,}: engine/smpp_proxy/scheduled.py BOUND)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=_sizes, default="1000,10000,100000")
    ap.add_argument("--days", type=int, default=0, help="deliveries spread over this many days (0: all one day)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        out = [_one(n, Path(t), a.days) for n in a.sizes]
    print(json.dumps({"scheduled_dnc_tick": out}, indent=1))


if __name__ == "__main__":
    main()
