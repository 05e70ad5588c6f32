"""The SMPP load generator, in its own process: `python -m benchmarks.smpp_load --port P [options]`.

Binds `--binds` transceivers (4 by default), each with its own window (`--window`, 10), and
sends submit_sm of the realistic mix (benchmarks.traffic), fresh content for every message,
generated before the clock starts. Open loop (`--rate R`): every message has a scheduled send
time (`--arrivals`: `uniform`, one every 1/R s, or `poisson`, exponential gaps of mean 1/R from
a seeded generator), message i on bind i mod binds; `latency_us` runs from when it was sent to
its submit_sm_resp, `sojourn_us` from when it was due, so waiting for a full window counts.
Closed loop (`--rate 0`): every window is kept full for `--seconds`; this is the saturating run.

How an open loop paces its sends (`--pacing`):
  thread  (the default) a sender thread with its own clock sleeps (timer slack set to 1 µs)
          writes each message to its socket at its own time, the event loop only reads the
          answers; `--spin-us N` busy-waits the last N µs before a send for precision (0 by
          default: on a 2-core machine shared with the proxy a spinning generator steals its CPU).
          The thread holds the GIL at most a switch interval of 100 µs when the reader has it.
  timer   the event loop sends, pacing with asyncio.sleep, i.e. uvloop's 1-ms timers: messages
          leave in clumps of rate/1000 and each waits for the ones before it (the old mode).
The JSON says which (`pacing`, `arrivals`) and how the sends left: `send_late_us` (percentiles of
send time less due time) and `clumped_share` (sends less than 20 µs after the one before). Every response is matched to its request by sequence_number: a response to
nothing outstanding is counted as `unexpected` (a request answered twice), an outstanding
request at the end as `unanswered`. `--watch NAME=PID` samples those processes' CPU time each
second. Bounded in count and time (sending stops 5 s after the last scheduled time at the latest,
and the drain after the last send is at most 5 s); loopback only.
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import select
import socket
import struct
import sys
import time

import numpy as np

from .smpp_peers import frames
from .util import cpu_seconds

_HDR = struct.Struct(">IIII")
SUBMIT_SM_RESP, DELIVER_SM, ENQUIRE_LINK = 0x80000004, 0x00000005, 0x00000015


class Bind(asyncio.Protocol):
    def __init__(self):
        self.buf = bytearray()
        self.inflight: dict[int, tuple] = {}     # seq -> (scheduled time, send time)
        self.lat: list[float] = []                 # from send to submit_sm_resp
        self.soj: list[float] = []                 # from scheduled time to submit_sm_resp
        self.ok = self.err = self.unexpected = 0
        self.statuses: dict[int, int] = {}
        self.bound = asyncio.get_running_loop().create_future()
        self.space = asyncio.Event()
        self.seq = 1
        self.sends: list[tuple] = []               # (due, sent) of every submit_sm sent

    def connection_made(self, t):
        self.t = t
        t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        if not self.bound.done():
            self.bound.set_exception(ConnectionError("closed before bind_resp"))
        self.space.set()

    def data_received(self, data):
        buf = self.buf
        buf += data
        now = time.perf_counter()
        out = []
        for f in frames(buf):
            if type(f) is int:
                del buf[:f]
                break
            off, _, cid, seq = f
            if cid == SUBMIT_SM_RESP:
                t = self.inflight.pop(seq, None)
                if t is None:
                    self.unexpected += 1
                    continue
                self.soj.append(now - t[0])
                self.lat.append(now - t[1])
                status = _HDR.unpack_from(buf, off)[2]
                if status == 0:
                    self.ok += 1
                else:
                    self.err += 1
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                self.space.set()
            elif cid == 0x80000009:
                if not self.bound.done():
                    self.bound.set_result(_HDR.unpack_from(buf, off)[2])
            elif cid in (DELIVER_SM, ENQUIRE_LINK):
                out.append(_HDR.pack(16 + (1 if cid == DELIVER_SM else 0), cid | 0x80000000, 0, seq)
                           + (b"\0" if cid == DELIVER_SM else b""))
        if out:
            self.t.write(b"".join(out))

    def send(self, raw: bytes, due: float, now: float) -> None:
        seq = self.seq
        self.seq = seq + 1 if seq < 0x7FFFFFFF else 1
        self.inflight[seq] = (due, now)
        self.sends.append((due, now))
        self.t.write(raw[:12] + seq.to_bytes(4, "big") + raw[16:])

    def send_now(self, raw: bytes, due: float) -> float:
        """From the sender thread: straight to the socket (the loop thread only reads it, and
        answers a deliver_sm / enquire_link with whole frames of its own). Returns the send time."""
        seq = self.seq
        self.seq = seq + 1 if seq < 0x7FFFFFFF else 1
        data = raw[:12] + seq.to_bytes(4, "big") + raw[16:]
        now = time.perf_counter()
        self.inflight[seq] = (due, now)         # before the write: the answer may come at once
        self.sends.append((due, now))
        while data:
            try:
                data = data[self.sock.send(data):]
            except BlockingIOError:             # the loop made the socket non-blocking
                select.select([], [self.sock], [], 0.01)
        return now


def _bind_pdu(system_id: str, password: str) -> bytes:
    body = system_id.encode() + b"\0" + password.encode() + b"\0" + b"\0" + bytes([0x34, 0, 0]) + b"\0"
    return _HDR.pack(16 + len(body), 0x00000009, 0, 1) + body          # SMPP 3.4 §4.1.5 bind_transceiver


def _due_offsets(n: int, rate: float, arrivals: str, seed: int) -> np.ndarray:
    """Send times of n messages, in seconds from the start."""
    if arrivals == "poisson":
        gaps = np.random.default_rng(seed).exponential(1.0 / rate, n)
        return np.concatenate(([0.0], np.cumsum(gaps[:-1])))
    return np.arange(n) / rate


def _set_timer_slack_1us() -> None:
    # Linux prctl(PR_SET_TIMERSLACK) for this thread: sleeps end within ~1 µs of their time
    # rather than the default 50 µs (best effort: elsewhere the sleeps are just coarser)
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(29, 1000, 0, 0, 0)
    except Exception:
        pass


def _paced_sender(bs, pdus, dues, start, deadline, window, spin, out) -> None:
    """The sender thread: message i leaves on bind i mod len(bs) at start + dues[i] (or when its
    bind's window has room); records the send times. Stops at the deadline."""
    _set_timer_slack_1us()
    sleep, clock = time.sleep, time.perf_counter
    binds = len(bs)
    for i in range(len(dues)):
        due = start + float(dues[i])
        b = bs[i % binds]
        now = clock()
        if due - now > spin:
            sleep(due - now - spin)
        while clock() < due:
            pass
        while len(b.inflight) >= window and clock() < deadline:
            sleep(0.00005)
        if clock() >= deadline or b.t.is_closing():
            break
        b.send_now(pdus[i], due)
        out["sent"][i % binds] += 1


async def offer(port, rate, seconds, window, binds, pdus, watch, system_id="bench", password="pw", cycle=False,
                pacing="thread", arrivals="uniform", spin_us=0.0, seed=1):
    loop = asyncio.get_running_loop()
    bs: list[Bind] = []
    paced = rate > 0 and pacing == "thread"
    for _ in range(binds):
        if paced:                   # our own socket object: the sender thread writes to it
            sock = socket.create_connection(("127.0.0.1", port))
            _, b = await loop.create_connection(Bind, sock=sock)
            b.sock = sock
        else:
            _, b = await loop.create_connection(Bind, "127.0.0.1", port)
        b.t.write(_bind_pdu(system_id, password))
        b.seq = 2
        st = await asyncio.wait_for(b.bound, 10)
        if st != 0:
            raise RuntimeError(f"bind refused: 0x{st:02x}")
        bs.append(b)
    closed = rate <= 0
    pool = len(pdus)
    total = pool if not cycle else 1 << 62
    start = time.perf_counter() + 0.05
    stop_sending = start + seconds
    deadline = stop_sending + 5.0
    series = []
    cpu0 = {k: cpu_seconds(p) for k, p in watch.items()}

    async def sampler():
        while True:
            await asyncio.sleep(max(0.0, start + len(series) - time.perf_counter()))
            series.append({"t": round(time.perf_counter() - start, 3), "answered": sum(b.ok + b.err for b in bs),
                           "cpu_s": {k: cpu_seconds(p) for k, p in watch.items()}})

    async def run(b: Bind, idx):
        k = 0                                   # this bind sends pdus idx, idx+binds, ...
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        while True:
            i = idx + k * binds
            now = time.perf_counter()
            if i >= total or now >= (stop_sending if closed else deadline) or b.t.is_closing():
                break
            due = now if closed else start + i / rate
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
            b.send(pdus[i % pool], due, now)
            k += 1
            if closed and k % 64 == 0:
                await asyncio.sleep(0)          # let responses in between bursts
        drain_end = time.perf_counter() + 5.0         # answers to what was sent get 5 s after the last send
        while b.inflight and time.perf_counter() < drain_end and not b.t.is_closing():
            await asyncio.sleep(0.005)
        return k

    async def run_paced():
        n = min(pool, int(rate * seconds) + 1) if not cycle else int(rate * seconds) + 1
        dues = _due_offsets(n, rate, arrivals, seed)
        dues = dues[dues < seconds]
        out = {"sent": [0] * binds}
        # `cycle` reuses the pool in turn, as the timer mode does
        msgs = pdus if len(dues) <= pool else [pdus[i % pool] for i in range(len(dues))]
        sys.setswitchinterval(0.0001)           # the reader thread yields the GIL within 100 µs
        await loop.run_in_executor(None, _paced_sender, bs, msgs, dues, start, deadline, window,
                                   spin_us / 1e6, out)
        for b in bs:
            drain_end = time.perf_counter() + 5.0
            while b.inflight and time.perf_counter() < drain_end and not b.t.is_closing():
                await asyncio.sleep(0.005)
        return sum(out["sent"])

    smp = asyncio.create_task(sampler())
    g0 = time.process_time()
    if paced:
        sent = await run_paced()
    else:
        sent = sum(await asyncio.gather(*(run(b, i) for i, b in enumerate(bs))))
    gen_cpu = time.process_time() - g0
    wall = max(time.perf_counter() - start, 1e-9)
    cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in watch.items()}
    smp.cancel()
    lat = np.array([x for b in bs for x in b.lat]) * 1e6
    soj = np.array([x for b in bs for x in b.soj]) * 1e6
    ok, err = sum(b.ok for b in bs), sum(b.err for b in bs)
    statuses = {}
    for b in bs:
        for s, v in b.statuses.items():
            statuses[f"0x{s:02X}"] = statuses.get(f"0x{s:02X}", 0) + v
    sends = np.array([x for b in bs for x in b.sends]).reshape(-1, 2)       # (due, sent) of every send
    gaps = np.diff(np.sort(sends[:, 1])) if len(sends) > 1 else np.array([])
    res = {"offered": rate if not closed else None, "mode": "closed" if closed else "open", "window": window,
           "pacing": None if closed else pacing, "arrivals": None if closed else arrivals,
           "spin_us": spin_us if paced else None,
           "send_late_us": None if closed else _pct((sends[:, 1] - sends[:, 0]) * 1e6),
           "clumped_share": None if closed or not len(gaps) else round(float(np.mean(gaps < 20e-6)), 4),
           "binds": binds, "generated": pool, "cycled": cycle, "sent": sent,
           "ran_out_of_messages": not cycle and sent >= pool, "ok": ok, "errors": err, "error_statuses": statuses,
           "unanswered": sum(len(b.inflight) for b in bs), "unexpected": sum(b.unexpected for b in bs),
           "wall_s": wall, "achieved": (ok + err) / wall, "latency_us": _pct(lat), "sojourn_us": _pct(soj), "cpu_s": cpu,
           "generator_cpu_s": gen_cpu, "series": series}
    for b in bs:
        b.t.close()
    return res


def _pct(a):
    qs = (50, 99, 99.9)
    if len(a) == 0:
        return {f"p{q:g}": None for q in qs}
    return {f"p{q:g}": float(v) for q, v in zip(qs, np.percentile(a, qs))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.smpp_load")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0.0, help="offered submit_sm/s; 0 = closed loop (saturating)")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--binds", type=int, default=4)
    ap.add_argument("--count", type=int, default=None, help="messages to generate (default rate × seconds)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cycle", action="store_true",
                    help="reuse the generated messages in turn (only for targets that do not judge)")
    ap.add_argument("--dnc-sample", help=".npy of DNC numbers some advertising goes to")
    ap.add_argument("--campaign-share", type=float, default=None,
                    help="spam campaigns' share of the messages (default: the mix's, benchmarks.traffic.SHARES)")
    ap.add_argument("--watch", action="append", default=[], metavar="NAME=PID")
    ap.add_argument("--pacing", choices=("thread", "timer"), default="thread",
                    help="open loop: a sender thread with clock sleeps (each message at its own time) or the "
                         "event loop's 1-ms timers (clumps; the old mode)")
    ap.add_argument("--arrivals", choices=("uniform", "poisson"), default="uniform")
    ap.add_argument("--spin-us", type=float, default=0.0, help="thread pacing: busy-wait this long before each send")
    a = ap.parse_args(argv)
    import uvloop
    from .traffic import campaign_heavy, pdus
    n = a.count or max(1, int(a.rate * a.seconds))
    sample = np.load(a.dnc_sample) if a.dnc_sample else None
    msgs = pdus(n, a.seed, sample, campaign_heavy(a.campaign_share) if a.campaign_share is not None else None)
    watch = {k: int(v) for k, v in (w.split("=", 1) for w in a.watch)}
    res = uvloop.run(offer(a.port, a.rate, a.seconds, a.window, a.binds, msgs, watch, cycle=a.cycle,
                           pacing=a.pacing, arrivals=a.arrivals, spin_us=a.spin_us, seed=a.seed))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
