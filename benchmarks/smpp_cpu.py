"""CPU per submit_sm of the SMPP proxy, next to a raw forwarder, in one run.

    python -m benchmarks.smpp_cpu [--n 40000] [--binds 4] [--window 10] [--modes forwarder,trivial,real,real@/other/checkout]
    python -m benchmarks.smpp_cpu --modes trivial,trivial+tls,real,real+tls     # SMPP over TLS against plain

Closed loop on 127.0.0.1: an asyncio load generator keeps `binds` x `window` submit_sm in
flight against, in turn, (1) a raw forwarder (SMPP framing and sequence rewrite only), (2)
the proxy with a trivial verdict (allow, no hits) and (3) the proxy with the real pipeline
(shipped rules, default lists). Each runs in its own process; its CPU (utime + stime) over
the run divided by the submit_sm answered is the figure, with the kernel's part of it beside
(`sys_us_per_msg`: system calls, and loopback TCP, which the kernel processes in the sender's
context). The SMSC is the lean responder in another process. Texts are distinct (a replayed stream would measure flood rules).
A mode ending in `+tls` binds the ESMEs over TLS (the proxy's tls_listen only; a throwaway self-signed ECDSA P-256
certificate made with the openssl CLI; TLS 1.3 as negotiated): the proxy's TLS cost is its CPU less the plain mode's.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

from .smpp_bench import _free_port
from .smpp_load import Bind, _bind_pdu
from .traffic import pdus as _pdus
from .util import OWN_GROUP, checkout, killed_child, positive, run_seconds, scratch_dir

_CHILD = r"""
import asyncio, json, signal, sys, time
import uvloop
mode, sim_port, port, data_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
mode, tls = mode.removesuffix("+tls"), mode.endswith("+tls")
split = len(sys.argv) > 5 and sys.argv[5] == "split"

async def forwarder():
    # SMPP framing + sequence rewrite, nothing else: the floor for a Python proxy here
    from engine.smpp_proxy.codec import encode, with_sequence
    from engine.smpp_proxy.codec import pdu as P
    loop = asyncio.get_running_loop()

    class Up(asyncio.Protocol):
        def __init__(self): self.buf = bytearray(); self.pending = {}; self.seq = 1
        def connection_made(self, t): self.t = t
        def data_received(self, d):
            self.buf += d
            while len(self.buf) >= 16:
                n = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) < n: break
                raw = bytes(self.buf[:n]); del self.buf[:n]
                ent = self.pending.pop(int.from_bytes(raw[12:16], "big"), None)
                if ent: ent[0].t.write(with_sequence(raw, ent[1]))
    _, up = await loop.create_connection(Up, "127.0.0.1", sim_port)
    up.t.write(encode(P.BindTransceiver(sequence_number=1, system_id="fwd", password="x", interface_version=0x34)))
    await asyncio.sleep(0.3)
    up.pending.clear()

    class Down(asyncio.Protocol):
        def __init__(self): self.buf = bytearray()
        def connection_made(self, t): self.t = t
        def data_received(self, d):
            self.buf += d
            while len(self.buf) >= 16:
                n = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) < n: break
                raw = bytes(self.buf[:n]); del self.buf[:n]
                cid = int.from_bytes(raw[4:8], "big")
                if cid == 9:        # bind_transceiver
                    self.t.write(encode(P.BindTransceiverResp(sequence_number=int.from_bytes(raw[12:16], "big"), system_id="f")))
                    continue
                up.seq += 1
                up.pending[up.seq] = (self, int.from_bytes(raw[12:16], "big"))
                up.t.write(with_sequence(raw, up.seq))
    await loop.create_server(Down, "127.0.0.1", port)

async def proxy(real):
    from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
    from engine.smpp_proxy.server import SmppProxy
    from engine.verdictlog import VerdictLog
    from engine.verdict import Action, Verdict
    if real:
        from engine.app import build
        pipe = build(data_dir=data_dir)       # the parent's scratch dir: this process is killed
    else:
        class Trivial:
            settings = type("S", (), {"shortcode": "5656"})()
            state = type("St", (), {"shared": None})()          # no shared state store
            def judge(self, msg, commit=True): return Verdict(Action.ALLOW, 0.0)     # as Pipeline.judge
            def write_commands(self, cmds): return [None] * len(cmds)      # (5656 commands: none here)
        pipe = Trivial()
    s = SmppSettings(smsc=[f"127.0.0.1:{sim_port}"])
    if tls:         # the ESMEs over TLS only (tls.py); the SMSC link stays plain
        import os
        d = os.environ["TELFILTER_BENCH_TLS"]
        s.listen, s.tls_listen, s.tls_cert, s.tls_key = "", f"127.0.0.1:{port}", f"{d}/cert.pem", f"{d}/key.pem"
    a = account_from_arg("bench:pw"); s.accounts[a.system_id] = a
    # --split: the judge's own CPU (thread time), so the proxy's share is the rest, reported on
    # SIGUSR1; the two clock reads are system calls (~1-2 us per message, counted in the total)
    judge, acc = pipe.judge, [0.0, 0]
    def timed_judge(msg, commit=True):
        c0 = time.thread_time()
        try:
            return judge(msg, commit)
        finally:
            acc[0] += time.thread_time() - c0
            acc[1] += 1
    if split:
        pipe.judge = timed_judge
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR1, lambda: print(json.dumps({"judge_s": acc[0], "judged": acc[1]}), flush=True))
    p = SmppProxy(pipe, s, VerdictLog(open("/dev/null", "w")))
    if real:
        try:        # as serve: the message-id map logged as it grows (a tree before it has none)
            from engine.smpp_proxy.idlog import IdLog
            import pathlib
            IdLog(pathlib.Path(pipe.store.dir) / "smpp" / "message_ids.msgpack", p.msgid_account).open(
                asyncio.get_running_loop())
        except ImportError:
            pass
    await p.start(None if tls else f"127.0.0.1:{port}")
    await p.wait_upstream(10)

async def main():
    await (forwarder() if mode == "forwarder" else proxy(mode == "real"))
    import gc
    from engine.serve import GC_THRESHOLDS
    gc.collect(); gc.freeze(); gc.set_threshold(*GC_THRESHOLDS)      # as `serve` does after start-up
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""


def drops_and_errors(statuses: dict) -> tuple[int, int, dict]:
    """(policy drops, errors, the errors' statuses) of non-zero submit_sm_resp statuses {status: count}: a drop
    (ESME_RSUBMITFAIL, ESME_RINVSRCADR: the shipped rules' answers) is the filter at work, not a failure."""
    from .report import POLICY_DROP_STATUSES
    named = {f"0x{k:02X}": v for k, v in statuses.items()}
    drops = sum(v for k, v in named.items() if k in POLICY_DROP_STATUSES)
    others = {k: v for k, v in named.items() if k not in POLICY_DROP_STATUSES}
    return drops, sum(others.values()), others


async def closed_loop(port: int, pdus: list, binds: int, window: int, tls: bool = False,
                      statuses: dict | None = None) -> tuple[int, int, float]:
    """(answered 0, answered another status, wall seconds); `statuses` gets the count of each other status."""
    loop = asyncio.get_running_loop()
    bs = []
    ctx = None
    if tls:             # loopback, a throwaway certificate: not verified
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for _ in range(binds):
        _, b = await loop.create_connection(Bind, "127.0.0.1", port, ssl=ctx)
        b.t.write(_bind_pdu("bench", "pw"))
        b.seq = 2
        await asyncio.wait_for(b.bound, 10)
        bs.append(b)
    it = iter(pdus)
    t0 = time.perf_counter()

    async def run(b):
        for raw in it:
            while len(b.inflight) >= window:
                b.space.clear()
                await b.space.wait()
            now = time.perf_counter()
            b.send(raw, now, now)
        while b.inflight:
            b.space.clear()
            try:
                await asyncio.wait_for(b.space.wait(), 5)
            except asyncio.TimeoutError:
                break
    await asyncio.gather(*(run(b) for b in bs))
    wall = time.perf_counter() - t0
    for b in bs:
        b.t.close()
        if statuses is not None:
            for k, v in b.statuses.items():
                statuses[k] = statuses.get(k, 0) + v
    return sum(b.ok for b in bs), sum(b.err for b in bs), wall


def _judge_time(p) -> float | None:
    if p.args[3] == "forwarder" or p.args[-1] != "split":
        return None
    p.send_signal(signal.SIGUSR1)
    return json.loads(p.stdout.readline())["judge_s"]


def _user_sys(pid) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(parts[11]) / tck, int(parts[12]) / tck


def _io(pid) -> dict:
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def measure(mode: str, sim_port: int, pdus: list, binds: int, window: int, split: bool = False) -> dict:
    port = _free_port()
    # MODE@DIR runs the child from another checkout (a same-run baseline: real@/work/main)
    mode, _, tree = mode.partition("@")
    # the real mode's data dir (the child is killed); made with util.scratch_dir: a stop landing inside
    # TemporaryDirectory(), after its mkdir and before its finalizer, left it in $TMPDIR
    with scratch_dir(prefix="smpp_cpu_") as work:
        return _measure(mode, tree, sim_port, port, work, pdus, binds, window, split)


def _measure(mode, tree, sim_port, port, work, pdus, binds, window, split) -> dict:
    import uvloop
    with killed_child([sys.executable, "-c", _CHILD, mode, str(sim_port), str(port), f"{work}/data"]
                      + (["split"] if split else []), stdout=subprocess.PIPE,
                      text=True, cwd=tree or None, env={**os.environ, "PYTHONPATH": tree} if tree else None) as p:
        assert p.stdout.readline().strip() == "ready"
        tls = mode.endswith("+tls")
        uvloop.run(closed_loop(port, pdus[:2000], binds, window, tls))         # warm-up
        # CPU in ns (schedstat): /proc/PID/stat's 10-ms ticks read 0.0 µs a submit_sm over a short --n
        c0, io0, j0, us0 = run_seconds(p.pid), _io(p.pid), _judge_time(p), _user_sys(p.pid)
        statuses: dict = {}
        ok, err, wall = uvloop.run(closed_loop(port, pdus[2000:], binds, window, tls, statuses))
        cpu = run_seconds(p.pid) - c0
        io1, j1, us1 = _io(p.pid), _judge_time(p), _user_sys(p.pid)
    n = ok + err
    drops, errors, error_statuses = drops_and_errors(statuses)
    return {"mode": mode + (f"@{tree}" if tree else ""), "answered": n, "policy_drops": drops, "errors": errors,
            "error_statuses": error_statuses, "cpu_us_per_msg": round(cpu / max(n, 1) * 1e6, 1),
            "msgs_per_s": round(n / wall),
            # CPU inside pipeline.judge (thread time; None for the forwarder) and the rest: the proxy's own
            "judge_us_per_msg": round((j1 - j0) / max(n, 1) * 1e6, 1) if j0 is not None else None,
            "own_us_per_msg": round((cpu - (j1 - j0)) / max(n, 1) * 1e6, 1) if j0 is not None else None,
            # of the CPU, the kernel's part (system calls, loopback TCP processed in the sender's context)
            "sys_us_per_msg": round((us1[1] - us0[1]) / max(n, 1) * 1e6, 1),
            # read / write system calls (all threads) per submit_sm, from /proc/PID/io
            "reads_per_msg": round((io1["syscr"] - io0["syscr"]) / max(n, 1), 3),
            "writes_per_msg": round((io1["syscw"] - io0["syscw"]) / max(n, 1), 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.smpp_cpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=positive(), default=40000, help="submit_sm measured per mode, after 2,000 of warm-up")
    ap.add_argument("--binds", type=positive(), default=4)
    ap.add_argument("--window", type=positive(), default=10)
    ap.add_argument("--modes", default="forwarder,trivial,real",
                    help="comma-separated, in turn: forwarder, trivial, real, each with +tls and/or @/other/checkout")
    ap.add_argument("--split", action="store_true",
                    help="also time pipeline.judge (thread CPU) to split the judge's CPU from the proxy's own")
    a = ap.parse_args(argv)
    for m in a.modes.split(","):
        kind, _, tree = m.partition("@")
        if kind.removesuffix("+tls") not in ("forwarder", "trivial", "real") or (kind == "forwarder+tls"):
            ap.error(f"unknown mode {m!r}: forwarder, trivial, real, trivial+tls, real+tls, each optionally @DIR")
        if tree:
            try:
                checkout(tree)
            except argparse.ArgumentTypeError as e:
                ap.error(f"mode {m!r}: {e}")
    sim_port = _free_port()
    with contextlib.ExitStack() as stack:
        if "+tls" in a.modes:       # a throwaway certificate for the TLS modes (removed at the end, or at a stop)
            d = stack.enter_context(scratch_dir(prefix="smpp_cpu_tls"))
            stack.callback(os.environ.pop, "TELFILTER_BENCH_TLS", None)
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", f"{d}/key.pem",
                            "-out", f"{d}/cert.pem"], check=True, capture_output=True)
            os.environ["TELFILTER_BENCH_TLS"] = d
        rows = _measure_all(a, sim_port)
    for r in rows:
        print(json.dumps(r))
    return 0


def _measure_all(a, sim_port) -> list:
    with killed_child([sys.executable, "-m", "benchmarks.smpp_peers", "responder", str(sim_port)], **OWN_GROUP):
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", sim_port)).close()
                break
            except OSError:
                time.sleep(0.05)
        pdus = _pdus(a.n + 2000, seed=11)
        rows = [measure(m, sim_port, pdus, a.binds, a.window, a.split) for m in a.modes.split(",")]
    return rows


if __name__ == "__main__":
    from .util import run_main
    sys.exit(run_main(main, "python -m benchmarks.smpp_cpu"))     # SIGTERM, Ctrl-C: what it started is stopped
