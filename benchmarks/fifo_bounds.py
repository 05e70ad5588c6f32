"""The bounded memories that forget their oldest entry: CPU per operation below their bound and at it.

    python -m benchmarks.fifo_bounds [--times 3]

Theory of operation: in process, each memory is fed distinct keys, first a slice well below its bound, then, once
full, `--times` bounds' worth more (each forgets its oldest): SMPP concatenation reassembly (concat.Reassembly, part
1 of 2 never completed, max_pending_concat 20,000), the SIP INVITE transactions in flight (SipScreen.ringing, a
next hop that answers none, RINGING 65,536) and the counts the Redis mirror took alone in an outage
(SharedCounters.local, LOCAL_MAX 100,000). Each is run as it is and, in the same run, with its table a plain dict
(the way before): a plain dict's first key is no queue (each key deleted leaves a hole that next(iter()) steps over
until the next resize), so its cost at the bound grows with the bound. O(1) is `at_bound / below` near 1. Nothing
listens, nothing is sent. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace as NS


def _per_op_us(fn, keys) -> float:
    t = time.perf_counter()
    for k in keys:
        fn(k)
    return (time.perf_counter() - t) / len(keys) * 1e6


def _run(make, op, bound: int, times: int, below: int) -> dict:
    mem = make()
    b = _per_op_us(lambda k: op(mem, k), range(below))
    _per_op_us(lambda k: op(mem, k), range(below, bound))
    a = _per_op_us(lambda k: op(mem, k), range(bound, bound + times * bound))
    return {"below_bound_us": round(b, 2), "at_bound_us": round(a, 2), "ratio": round(a / b, 1)}


class _Timer:
    def cancel(self):
        pass


def _concat(plain: bool):
    from engine.smpp_proxy.concat import Reassembly
    r = Reassembly(lambda key: r.take(key))
    if plain:
        r.pending = {}
    return r


def _concat_add(r, k):
    r.add(k, 2, 1, ("peer", "text"), 20_000, lambda key: _Timer(), size=10)


def _ringing(plain: bool):
    from collections import OrderedDict
    return NS(ringing={} if plain else OrderedDict(), finals_seen=set())


def _invite(scr, k):
    from engine.sip_screen.draining import Draining
    Draining._invite_sent(scr, NS(first={"call-id": f"c{k}@h", "cseq": "1 INVITE"}), False, 1.0)


def _local(plain: bool):
    from engine.state.redis_counters import SharedCounters
    s = SharedCounters(None, None)
    if plain:
        s.local = {}
    return s


def _count(s, k):
    s.committed_locally(NS(ns="ad", key=f"k{k}", now=k))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fifo_bounds", description=__doc__.split("\n\n")[0])
    ap.add_argument("--times", type=int, default=3, help="bounds' worth of keys fed once full (default 3)")
    a = ap.parse_args(argv)
    if not 1 <= a.times <= 20:
        ap.error("--times 1..20")
    from engine.sip_screen.draining import RINGING
    from engine.state.redis_counters import LOCAL_MAX
    out = {}
    for name, make, op, bound, below in (("concat_pending", _concat, _concat_add, 20_000, 2_000),
                                         ("sip_ringing", _ringing, _invite, RINGING, 6_000),
                                         ("redis_local", _local, _count, LOCAL_MAX, 10_000)):
        out[name] = {"bound": bound, "now": _run(lambda: make(False), op, bound, a.times, below),
                     "plain_dict": _run(lambda: make(True), op, bound, a.times, below)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
