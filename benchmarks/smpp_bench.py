"""SMPP through the proxy against the same load straight to the SMSC simulator.

Three processes, all on 127.0.0.1: the SMSC simulator (`python -m benchmarks.smpp_bench sim PORT`),
`telfilter serve` (the proxy, one process = one core), and this asyncio load generator, which
is open-loop: it offers a fixed rate across several binds, each with its own window, and
measures every submit_sm from its *scheduled* send time to its submit_sm_resp (so queueing
in a full window counts). Bounded in count and time; stops by itself.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .gen import BODIES, NAMES, OPENERS
from .util import cpu_seconds, pct


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _pdus(n=2000, seed=5):
    from engine.smpp_proxy.codec import encode
    from engine.smpp_proxy.codec import pdu as P
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = f"{rng.choice(OPENERS).format(n=rng.choice(NAMES))} {rng.choice(BODIES).format(h=rng.randrange(1, 12), r=rng.randrange(100, 600), d=rng.randrange(1, 29))} #{i}"
        out.append(encode(P.SubmitSm(sequence_number=0, source_addr_ton=1, source_addr_npi=1,
                                     source_addr=f"849{rng.randrange(10**8):08d}", dest_addr_ton=1, dest_addr_npi=1,
                                     destination_addr=f"849{rng.randrange(10**8):08d}", short_message=text.encode())))
    return out


class _Bind(asyncio.Protocol):
    def __init__(self):
        from engine.smpp_proxy.codec import SmppConnection
        self.conn = SmppConnection(1 << 20)
        self.inflight = {}
        self.lat = []
        self.ok = self.err = 0
        self.statuses = {}
        self.bound = asyncio.get_running_loop().create_future()
        self.space = asyncio.Event()

    def connection_made(self, t):
        self.t = t
        t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        from engine.smpp_proxy.codec import NEED_DATA
        from engine.smpp_proxy.codec import constants as C
        self.conn.receive_data(data)
        now = time.perf_counter()
        while True:
            ev = self.conn.next_event()
            if ev is NEED_DATA:
                break
            cid = ev.command_id
            if cid == C.BIND_TRANSCEIVER_RESP:
                if not self.bound.done():
                    self.bound.set_result(ev.command_status)
            elif cid == C.SUBMIT_SM_RESP:
                t0 = self.inflight.pop(ev.sequence_number, None)
                if t0 is not None:
                    self.lat.append(now - t0)
                    if ev.command_status == 0:
                        self.ok += 1
                    else:
                        self.err += 1
                        self.statuses[ev.command_status] = self.statuses.get(ev.command_status, 0) + 1
                    self.space.set()
            elif cid == C.DELIVER_SM:
                from engine.smpp_proxy.codec import encode, pdu as P
                self.t.write(encode(P.DeliverSmResp(sequence_number=ev.sequence_number)))
            elif cid == C.ENQUIRE_LINK:
                from engine.smpp_proxy.codec import encode, pdu as P
                self.t.write(encode(P.EnquireLinkResp(sequence_number=ev.sequence_number)))


async def offer(port, rate, seconds, window, binds, pdus, system_id="bench", password="pw"):
    """Open-loop load; returns achieved OK/s, error count and latency percentiles (µs)."""
    from engine.smpp_proxy.codec import encode, with_sequence
    from engine.smpp_proxy.codec import pdu as P
    loop = asyncio.get_running_loop()
    bs = []
    for i in range(binds):
        _, b = await loop.create_connection(_Bind, "127.0.0.1", port)
        b.t.write(encode(P.BindTransceiver(sequence_number=b.conn.next_sequence(), system_id=system_id,
                                           password=password, interface_version=0x34)))
        st = await asyncio.wait_for(b.bound, 10)
        if st != 0:
            raise RuntimeError(f"bind refused: 0x{st:02x}")
        bs.append(b)
    total = int(rate * seconds)
    per = [total // binds + (1 if i < total % binds else 0) for i in range(binds)]
    start = time.perf_counter() + 0.05
    deadline = start + seconds + 5.0

    async def run(b: _Bind, n, offset):
        interval = binds / rate
        k = 0
        while k < n and time.perf_counter() < deadline:
            now = time.perf_counter()
            due = start + offset * interval / binds + k * interval
            if due > now:
                await asyncio.sleep(min(due - now, 0.002))
                continue
            if len(b.inflight) >= window:
                b.space.clear()
                try:
                    await asyncio.wait_for(b.space.wait(), 0.05)
                except asyncio.TimeoutError:
                    pass
                continue
            seq = b.conn.next_sequence()
            b.inflight[seq] = due
            b.t.write(with_sequence(pdus[(k * binds + offset) % len(pdus)], seq))
            k += 1
        while b.inflight and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)

    await asyncio.gather(*(run(b, per[i], i) for i, b in enumerate(bs)))
    wall = max(time.perf_counter() - start, 1e-9)
    lat = [x * 1e6 for b in bs for x in b.lat]
    ok = sum(b.ok for b in bs)
    err = sum(b.err for b in bs)
    lost = sum(len(b.inflight) for b in bs)
    for b in bs:
        b.t.close()
    statuses = {}
    for b in bs:
        for k, v in b.statuses.items():
            statuses[f"0x{k:02X}"] = statuses.get(f"0x{k:02X}", 0) + v
    return {"offered": rate, "window": window, "binds": binds, "sent": total, "ok": ok, "errors": err,
            "error_statuses": statuses,
            "unanswered": lost, "achieved": ok / wall, "latency_us": pct(lat)}


def _sim_main(port):
    import uvloop
    from engine.smpp_proxy.simulator import SmscSimulator

    async def main():
        s = SmscSimulator(receipt_delay=None)
        await s.start("127.0.0.1", port)
        # the simulator does not keep what it received here (memory bounded for long runs)
        s.received = _Null()
        await asyncio.Event().wait()
    uvloop.run(main())


class _Null(list):
    def append(self, x):
        pass


def run(steps, windows, seconds, binds=4, progress=None) -> dict:
    import uvloop
    sim_port, proxy_port = _free_port(), _free_port()
    sim = subprocess.Popen([sys.executable, "-m", "benchmarks.smpp_bench", "sim", str(sim_port)])
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-"))
    proxy = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(tmp / "data"),
                              "--smpp-listen", f"127.0.0.1:{proxy_port}", "--smsc", f"127.0.0.1:{sim_port}",
                              "--esme-account", "bench:pw", "--sip-listen", "off", "--log", os.devnull,
                              "--ready-file", str(tmp / "ready")], stderr=subprocess.DEVNULL)
    try:
        t_end = time.time() + 30
        while not (tmp / "ready").exists() and time.time() < t_end:
            time.sleep(0.05)
        time.sleep(0.5)                          # upstream bind
        out = []
        for wi, w in enumerate(windows):
            for si, r in enumerate(steps):
                # fresh, distinct messages for every step: a replayed stream would (rightly)
                # trip FLOOD_SAME_CONTENT and measure the policy instead of the proxy
                pdus = _pdus(int(r * seconds) + 1, seed=1000 * wi + si)
                row = {}
                for target, port in (("direct", sim_port), ("proxy", proxy_port)):
                    c0 = {p.pid: cpu_seconds(p.pid) for p in (sim, proxy)}
                    res = uvloop.run(offer(port, r, seconds, w, binds, pdus))
                    res["cpu_s"] = {"simulator": cpu_seconds(sim.pid) - c0[sim.pid],
                                    "proxy": cpu_seconds(proxy.pid) - c0[proxy.pid]}
                    row[target] = res
                    if progress:
                        progress.update(1)
                p, d = row["proxy"]["latency_us"], row["direct"]["latency_us"]
                row["added_us"] = {k: (p[k] - d[k]) if p[k] is not None and d[k] is not None else None for k in p}
                row["offered"], row["window"] = r, w
                out.append(row)
        return {"steps": out, "binds": binds, "seconds_per_step": seconds}
    finally:
        for p in (proxy, sim):
            p.send_signal(signal.SIGTERM)
        for p in (proxy, sim):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    if sys.argv[1] == "sim":
        _sim_main(int(sys.argv[2]))
