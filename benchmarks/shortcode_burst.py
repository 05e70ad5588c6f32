"""What a burst of 5656 commands costs the rest of the traffic: written off the loop (group commit,
engine/groupcommit.py) against written on it (the way before: one fsync per command on the loop).

    python -m benchmarks.shortcode_burst [--commands 2000] [--submits 400] [--rounds 3] [--dir DIR]

Theory of operation: one proxy (engine/smpp_proxy) and its SMSC simulator on one event loop, in this
process, on loopback, with the lists and reports in a data dir on disk (DIR: a real file system --
a tmpfs makes every fsync free; default a temporary directory under /var/tmp). The SMSC delivers
COMMANDS `DK DNC` / spam reports from distinct subscribers to 5656 as fast as its window allows,
while an ESME sends SUBMITS submit_sm one after another (each waits for its answer) and a ticker
on the loop wakes every millisecond. Reported per mode, alternating rounds: the time until every
command is answered, the ESME's round trips during the burst (p50 / p99 / max, ms), the loop's
longest gap between two ticks (every SMPP and SIP message in flight waited that long), and the
writes made (fsyncs of the journal and of reports.jsonl). Prints one JSON object; bounded in count
and time; loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from pathlib import Path


CHUNK = 10          # deliver_sm the SMSC writes per loop iteration


def _pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def one_round(root: Path, mode: str, n_cmd: int, n_sub: int) -> dict:
    import smpplib.client
    import smpplib.consts

    from engine.app import build
    from engine.smpp_proxy.accounts import SmppSettings
    from engine.smpp_proxy.codec import pdu as P
    from engine.smpp_proxy.harness import ProxyHarness
    from engine.verdictlog import VerdictLog

    d = Path(tempfile.mkdtemp(dir=root, prefix=f"burst-{mode}-"))
    pipe = build(data_dir=d)
    writes = {"n": 0}
    real_j, real_r = pipe.store.journal, pipe.reports.append_many

    def journal(ch):
        writes["n"] += 1
        real_j(ch)

    def append_many(recs):
        writes["n"] += 1
        real_r(recs)
    pipe.store.journal, pipe.reports.append_many = journal, append_many
    h = ProxyHarness(pipe, settings=SmppSettings(confirm_shortcode=False),
                     verdict_log=VerdictLog(io.StringIO())).start()
    try:
        if mode == "on-loop":
            h.proxy.commands = None                 # the way before: each command's fsync on the loop
        gap = {"worst": 0.0, "stop": False}

        async def ticker():
            last = time.perf_counter()
            while not gap["stop"]:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gap["worst"] = max(gap["worst"], now - last)
                last = now
        tick = h.run(lambda: asyncio.ensure_future(ticker()))
        c = smpplib.client.Client("127.0.0.1", h.port, timeout=10)
        c.connect()
        c.bind_transmitter(system_id="esme1", password="secret")
        time.sleep(0.05)
        gap["worst"] = 0.0
        t0 = time.perf_counter()

        async def flood():
            # as an SMSC would: a window's worth at a time (CHUNK per loop iteration), not all in one write
            s = next(s for s in h.sim.sessions if s.bound)
            for i in range(n_cmd):
                src = f"8491{i:07d}"
                text = b"DK DNC" if i % 2 == 0 else f"S 0987654{i % 1000:03d} vay tien lai thap".encode()
                s.send(P.DeliverSm(sequence_number=s.conn.next_sequence(), source_addr_ton=1, source_addr_npi=1,
                                   source_addr=src, destination_addr="5656", data_coding=0, short_message=text))
                if i % CHUNK == CHUNK - 1:
                    await asyncio.sleep(0)
        h.run(lambda: asyncio.ensure_future(flood()))
        rtt = []
        for i in range(n_sub):
            t = time.perf_counter()
            c.send_message(source_addr_ton=1, source_addr_npi=1, source_addr="84901234567", dest_addr_ton=1,
                           dest_addr_npi=1, destination_addr="84912345678", data_coding=0,
                           short_message=b"Hi Lan, the meeting moved to 3pm tomorrow. See you there")
            c.read_pdu()
            rtt.append((time.perf_counter() - t) * 1000)
            if len(h.sim.mo_responses) >= n_cmd and i >= 50:
                break
        end = time.perf_counter() + 120
        while len(h.sim.mo_responses) < n_cmd and time.perf_counter() < end:
            time.sleep(0.005)
        answered = len(h.sim.mo_responses)
        burst_s = time.perf_counter() - t0
        gap["stop"] = True
        h.run(tick.cancel)
        ok = sum(1 for r in list(h.sim.mo_responses) if r.command_status == 0)
        c.unbind()
        c.disconnect()
        return {"mode": mode, "commands_answered": answered, "commands_ok": ok, "burst_s": round(burst_s, 3),
                "commands_per_s": round(answered / burst_s, 1), "writes": writes["n"],
                "esme_rtt_ms": {"n": len(rtt), "p50": round(statistics.median(rtt), 3),
                                "p99": round(_pct(rtt, 0.99), 3), "max": round(max(rtt), 3)},
                "loop_worst_gap_ms": round(gap["worst"] * 1000, 2)}
    finally:
        h.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.shortcode_burst", description=__doc__.split("\n\n")[0])
    ap.add_argument("--commands", type=int, default=2000, help="5656 commands in the burst (default 2000)")
    ap.add_argument("--submits", type=int, default=400, help="most submit_sm the ESME sends meanwhile")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per mode (default 3)")
    ap.add_argument("--dir", default="/var/tmp", help="where the data dirs go (a real file system)")
    a = ap.parse_args(argv)
    if not 1 <= a.commands <= 100_000 or not 1 <= a.submits <= 100_000 or not 1 <= a.rounds <= 20:
        ap.error("--commands and --submits 1..100000, --rounds 1..20")
    from .util import scratch_dir
    with scratch_dir(dir=a.dir, prefix="telfilter-burst-") as root:
        runs = []
        for r in range(a.rounds):
            for mode in (("off-loop", "on-loop") if r % 2 == 0 else ("on-loop", "off-loop")):
                runs.append(one_round(Path(root), mode, a.commands, a.submits))
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for mode in ("off-loop", "on-loop"):
        rs = [x for x in runs if x["mode"] == mode]
        summary[mode] = {k: statistics.median(x[k] for x in rs) for k in ("burst_s", "commands_per_s", "writes",
                                                                          "loop_worst_gap_ms")}
        summary[mode]["esme_rtt_p99_ms"] = statistics.median(x["esme_rtt_ms"]["p99"] for x in rs)
        summary[mode]["esme_rtt_p50_ms"] = statistics.median(x["esme_rtt_ms"]["p50"] for x in rs)
    print(json.dumps({"commands": a.commands, "rounds": a.rounds, "median": summary}))
    return 0


if __name__ == "__main__":
    from .util import exit_on_sigterm
    exit_on_sigterm()       # the servers it started are stopped in its finally blocks
    raise SystemExit(main())
