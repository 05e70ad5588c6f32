"""Instructions (or Python calls) per submit_sm through the SMPP proxy: a deterministic measure.

    python -m benchmarks.smpp_instr [--n 2000] [--tree DIR ...] [--config DIR] [--callgrind | --profile] [--json FILE]
    python -m benchmarks.smpp_instr --diff A.json [B.json]     # per-function difference of --profile runs

Theory of operation: CPU time per message (benchmarks.smpp_cpu) on a shared VM drifts by more than
the changes it is asked to judge. Instructions executed do not: one process holds a lean SMSC
responder, the proxy with the real pipeline (as smpp_cpu's `real` mode: shipped rules, default
lists, the verdict log to /dev/null, the message-id log) and a closed-loop ESME client (`--binds`
x `--window` in flight), all on one uvloop loop over 127.0.0.1, with PYTHONHASHSEED fixed. It
sends a warm-up (`--warm` submit_sm, not counted), then `--n` more, of the realistic mix of
benchmarks/traffic.py (distinct texts; generated here once and handed to every tree as bytes, so
each tree gets the same PDUs).

--callgrind runs that process under `valgrind --tool=callgrind`; the driver calls os.getloadavg()
when the warm-up is answered (callgrind's --zero-before) and os.ctermid() when the last message is
(--dump-before), so the dump holds the measured messages only. Ir / n is the figure; `--direct`
runs the client straight to the responder, the part of that figure which is not the proxy's.
--profile runs cProfile over the same span instead: calls per message by function (file relative
to the tree), for a per-function diff between two trees (--json then --diff). Neither is a time:
the proxy's timers fire by wall clock, which callgrind stretches ~50x, so their (small) share
per message is larger under it than in service.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

from .util import checkout, config_dir, out_file, positive, scratch_dir

_HERE = Path(__file__).resolve().parent.parent

# The measured process. Self-contained (no `benchmarks` import) so that the same client and responder
# code runs against every tree: only `engine` comes from the tree (its cwd / PYTHONPATH).
_CHILD = r"""
import asyncio, gc, json, os, socket, struct, sys
import uvloop
pdu_file, warm, n, binds, window, direct, prof_out, data_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1", sys.argv[7], sys.argv[8]
config_dir = sys.argv[9] or None
HDR = struct.Struct(">IIII")
with open(pdu_file, "rb") as f:
    data = f.read()
pdus, off = [], 0
while off < len(data):                       # concatenated PDUs, each framed by its command_length
    ln = HDR.unpack_from(data, off)[0]
    pdus.append(data[off:off + ln]); off += ln
assert len(pdus) >= warm + n, (len(pdus), warm, n)


def frames(buf):
    off, end = 0, len(buf)
    while end - off >= 16:
        length, cid, status, seq = HDR.unpack_from(buf, off)
        if end - off < length:
            break
        yield cid, status, seq
        off += length
    del buf[:off]


class Responder(asyncio.Protocol):           # the SMSC: answers every request at once
    count = 0
    def connection_made(self, t):
        self.t, self.buf = t, bytearray()
        t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def data_received(self, d):
        self.buf += d
        out = []
        for cid, _, seq in frames(self.buf):
            if cid in (4, 0x103):
                Responder.count += 1
                mid = b"%x\0" % Responder.count
                out.append(HDR.pack(16 + len(mid), cid | 0x80000000, 0, seq) + mid)
            elif cid in (1, 2, 9):
                out.append(HDR.pack(21, cid | 0x80000000, 0, seq) + b"SIMS\0")
            elif cid in (0x15, 6):
                out.append(HDR.pack(16, cid | 0x80000000, 0, seq))
        if out:
            self.t.write(b"".join(out))


class Client(asyncio.Protocol):              # one ESME bind, closed loop
    def __init__(self):
        self.buf, self.seq, self.inflight, self.statuses = bytearray(), 1, 0, {}
        self.bound = asyncio.get_running_loop().create_future()
        self.space = asyncio.Event()
    def connection_made(self, t):
        self.t = t
        t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = b"bench\0pw\0\0\x34\0\0\0"
        t.write(HDR.pack(16 + len(body), 9, 0, 1) + body)      # SMPP 3.4 4.1.5 bind_transceiver
    def connection_lost(self, exc):
        self.space.set()
    def data_received(self, d):
        self.buf += d
        out = []
        for cid, status, seq in frames(self.buf):
            if cid == 0x80000004:
                self.inflight -= 1
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self.space.set()
            elif cid == 0x80000009 and not self.bound.done():
                self.bound.set_result(status)
            elif cid in (5, 0x15):                              # deliver_sm, enquire_link
                out.append(HDR.pack(17 if cid == 5 else 16, cid | 0x80000000, 0, seq) + (b"\0" if cid == 5 else b""))
        if out:
            self.t.write(b"".join(out))
    def send(self, raw):
        self.seq += 1
        self.inflight += 1
        self.t.write(raw[:12] + self.seq.to_bytes(4, "big") + raw[16:])


async def closed_loop(clients, batch):
    it = iter(batch)
    async def run(c):
        for raw in it:
            while c.inflight >= window:
                c.space.clear()
                await c.space.wait()
            c.send(raw)
        while c.inflight:
            c.space.clear()
            await asyncio.wait_for(c.space.wait(), 30)
    await asyncio.gather(*(run(c) for c in clients))


async def main():
    loop = asyncio.get_running_loop()
    sim = await loop.create_server(Responder, "127.0.0.1", 0)
    port = sim.sockets[0].getsockname()[1]
    if not direct:
        from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
        from engine.smpp_proxy.server import SmppProxy
        from engine.verdictlog import VerdictLog
        from engine.app import build
        pipe = build(config_dir, data_dir)    # data: the parent's scratch dir, since this process ends in os._exit
        s = SmppSettings(smsc=[f"127.0.0.1:{port}"])
        a = account_from_arg("bench:pw"); s.accounts[a.system_id] = a
        p = SmppProxy(pipe, s, VerdictLog(open("/dev/null", "w")))
        try:        # as serve: the message-id map logged as it grows
            from engine.smpp_proxy.idlog import IdLog
            import pathlib
            IdLog(pathlib.Path(pipe.store.dir) / "smpp" / "message_ids.msgpack", p.msgid_account).open(loop)
        except ImportError:
            pass
        await p.start("127.0.0.1:0")
        assert await p.wait_upstream(10)
        port = p.port
    from engine.serve import GC_THRESHOLDS
    gc.collect(); gc.freeze(); gc.set_threshold(*GC_THRESHOLDS)      # as `serve` does after start-up
    clients = []
    for _ in range(binds):
        _, c = await loop.create_connection(Client, "127.0.0.1", port)
        assert await asyncio.wait_for(c.bound, 30) == 0
        clients.append(c)
    await closed_loop(clients, pdus[:warm])
    for c in clients:
        c.statuses.clear()
    prof = None
    if prof_out:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    gc0 = [g["collections"] for g in gc.get_stats()]
    os.getloadavg()                             # callgrind --zero-before: the count starts here
    await closed_loop(clients, pdus[warm:warm + n])
    os.ctermid()                                # callgrind --dump-before: and ends here
    gcs = [g["collections"] - c for g, c in zip(gc.get_stats(), gc0)]
    if prof is not None:
        prof.disable()
        root = os.getcwd() + os.sep
        rows = {}
        import pstats
        for (fn, line, name), (cc, nc, tt, ct, _) in pstats.Stats(prof).stats.items():
            key = (fn[len(root):] if fn.startswith(root) else fn) + ":" + name
            r = rows.setdefault(key, [0, 0.0])
            r[0] += nc; r[1] += tt
        with open(prof_out, "w") as f:
            json.dump(rows, f)
    st = {}
    for c in clients:
        for k, v in c.statuses.items():
            st[k] = st.get(k, 0) + v
    # command_status of the measured answers: drops answer with the rule's status, so a change in
    # the mix's verdicts shows here as well as in the count
    import threading
    print(json.dumps({"threads": [t.name for t in threading.enumerate()], "gc_collections": gcs, "answered": sum(st.values()), "statuses": {f"0x{k:08X}": v for k, v in sorted(st.items())}}), flush=True)
    os._exit(0)                                 # not counted either way: no teardown to wait for

uvloop.run(main())
"""


def _write_pdus(path: str, total: int, seed: int) -> str:
    sys.path.insert(0, str(_HERE))
    from benchmarks.traffic import pdus
    with open(path, "wb") as f:
        f.write(b"".join(pdus(total, seed=seed)))
    return path


def _ir(dump: str) -> int:
    with open(dump) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def _timer_ir(dump: str) -> int:
    """Instructions inside uvloop's timer callbacks (TimerHandle._run, inclusive) in a callgrind dump: the work
    the proxy does by the clock (the msgid log's 50 ms tick, the verdict log's flush), which callgrind's
    slow-down multiplies per message. Read from the `calls=` lines: the line after one holds the call's
    inclusive cost (callgrind's format, with name compression: "cfn=(id) name" the first time, "cfn=(id)" after)."""
    names, cfn, take, total = {}, "", False, 0
    with open(dump) as f:
        for line in f:
            if take:
                total += int(line.split()[1])
                take = False
            elif line.startswith(("cfn=", "fn=")):
                ref, _, name = line.split("=", 1)[1].strip().partition(" ")
                if name:
                    names[ref] = name
                if line.startswith("cfn="):
                    cfn = names.get(ref, "")
            elif line.startswith("calls="):
                take = "TimerHandle__run" in cfn         # (a timer callback never runs inside another)
    return total


def run(tree: str, pdu_file: str, a, direct: bool = False) -> dict:
    tree = str(Path(tree).resolve())
    env = {**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0", "TELFILTER_LOG_LEVEL": "WARNING"}
    # the data dir (the message-id log's files) and the profile: a scratch dir removed here, since the child
    # ends in os._exit; callgrind's dumps go to a directory of their own, kept for the one the row names
    # (the dumps' directory made as the scratch dir is: a stop right after its mkdir left it in $TMPDIR)
    with scratch_dir(prefix="smpp_instr_") as work, \
            (scratch_dir(keep_done=True, prefix="smpp_instr_cg_") if a.callgrind else contextlib.nullcontext("")) \
            as out_dir:
        if a.dnc:       # smpp_check's lists: its brandnames registered (their ads tagged and forwarded by day)
            sys.path.insert(0, str(_HERE))
            from benchmarks.traffic import seed_data
            seed_data(Path(work) / "data", a.dnc)
        prof = f"{work}/prof.json" if a.profile else ""
        cmd = [sys.executable, "-c", _CHILD, pdu_file, str(a.warm), str(a.n), str(a.binds), str(a.window),
               "1" if direct else "0", prof, f"{work}/data", a.config or ""]
        if a.callgrind:
            cmd = ["valgrind", "--tool=callgrind", "--vgdb=no", f"--callgrind-out-file={out_dir}/cg.%p",
                   "--zero-before=os_getloadavg", "--dump-before=os_ctermid", "--dump-instr=no",
                   "--separate-threads=yes"] + (a.valgrind_arg or []) + cmd
        p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        if p.returncode != 0:             # (out_dir removed as the error leaves its `with`)
            raise RuntimeError(f"{tree}: exit {p.returncode}\n{p.stderr[-3000:]}")
        res = json.loads(p.stdout.strip().splitlines()[-1])
        if prof:
            with open(prof) as f:
                rows = json.load(f)
    row = {"tree": tree, "mode": "direct" if direct else "proxy", "n": a.n, **res}
    if a.callgrind:
        # the dump taken at os.ctermid(), a file per thread: -01 is the event loop's (the proxy's path, and
        # the client's and responder's); the others are the proxy's writer threads, whose share varies a
        # little from run to run since they wake by the clock (idlog's sync) or as the loop hands them work
        # (--separate-threads: the dump at os.ctermid() is the loop thread's alone; the other threads' counts,
        # zeroed with it, are in the dump at exit, which follows at once)
        dumps = glob.glob(f"{out_dir}/cg.*.1-01")
        if not dumps:
            raise RuntimeError(f"no callgrind dump in {out_dir}")
        loop_ir = _ir(dumps[0])
        threads_ir = sum(_ir(d) for d in glob.glob(f"{out_dir}/cg.[0-9]*-*") if not d.endswith("-01") and ".1-" not in d)
        timers = _timer_ir(dumps[0])
        row.update(ir_per_msg=round((loop_ir + threads_ir) / a.n), loop_ir_per_msg=round(loop_ir / a.n),
                   # the loop's count less its timer callbacks: the per-message path, steadier run to run
                   untimed_ir_per_msg=round((loop_ir - timers) / a.n),
                   threads_ir_per_msg=round(threads_ir / a.n), callgrind_out=dumps[0])
    if prof:
        row["calls_per_msg"] = round(sum(v[0] for v in rows.values()) / a.n, 2)
        row["functions"] = {k: [round(v[0] / a.n, 4), round(v[1] / a.n * 1e6, 2)] for k, v in rows.items()}
    return row


def diff(files: list, top: int) -> None:
    """Per function: calls per message in A and B, largest changes first (`--profile --json` outputs): row by
    row of two files, or of one file its first row against each other (`--tree A --tree B`)."""
    rows = [json.load(open(f)) for f in files]
    pairs = zip(*rows) if len(rows) == 2 else ((rows[0][0], r) for r in rows[0][1:])
    for ra, rb in pairs:
        fa_, fb_ = ra.get("functions", {}), rb.get("functions", {})
        keys = set(fa_) | set(fb_)
        d = sorted(keys, key=lambda k: -abs(fb_.get(k, [0])[0] - fa_.get(k, [0])[0]))
        print(f"calls/msg {ra['calls_per_msg']} -> {rb['calls_per_msg']}  ({ra['tree']} -> {rb['tree']})")
        for k in d[:top]:
            ca, cb = fa_.get(k, [0])[0], fb_.get(k, [0])[0]
            if ca != cb:
                print(f"  {cb - ca:+9.3f}  {ca:8.3f} -> {cb:8.3f}  {k}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.smpp_instr", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=positive(int), default=2000, help="submit_sm measured (after the warm-up)")
    ap.add_argument("--warm", type=positive(int, zero=True), default=1000, help="submit_sm sent first, not counted")
    ap.add_argument("--binds", type=positive(int), default=4)
    ap.add_argument("--window", type=positive(int), default=10)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--tree", action="append", type=checkout, help="checkout(s) to measure, in turn (default: this one)")
    ap.add_argument("--config", type=config_dir, metavar="DIR", help="the proxy's config directory (default: each tree's "
                    "shipped config/), e.g. a copy with another [engine] timezone to measure the day or the night policy")
    ap.add_argument("--dnc", type=positive(int, zero=True), default=0, help="seed the lists as smpp_check does (its "
                    "registry, blacklist and this many DNC numbers) rather than none (default 0: no lists)")
    ap.add_argument("--callgrind", action="store_true", help="instructions per message under valgrind's callgrind")
    ap.add_argument("--valgrind-arg", action="append", help="one more callgrind option, e.g. --cache-sim=yes")
    ap.add_argument("--profile", action="store_true", help="cProfile calls per message by function")
    ap.add_argument("--direct", action="store_true", help="also run the client straight to the responder")
    ap.add_argument("--json", type=out_file, help="write the rows (with --profile: every function) to this file")
    ap.add_argument("--diff", nargs="+", metavar="JSON",
                    help="function by function: two --profile --json files row by row, or one file's first row against the others")
    ap.add_argument("--top", type=positive(int), default=40)
    a = ap.parse_args(argv)
    if a.diff:
        try:
            diff(a.diff, a.top)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            ap.error(f"--diff {' '.join(a.diff)}: not --profile --json output ({type(e).__name__}: {e})")
        return 0
    if a.callgrind and a.profile:
        ap.error("--callgrind or --profile, not both (cProfile's own cost would be counted)")
    # in a scratch_dir, which is removed however this ends: a NamedTemporaryFile(delete=False) made before the `try`
    # that unlinked it was left in $TMPDIR by a failure or a stop while its PDUs were being made (seconds at --n 1e6)
    with scratch_dir(prefix="smpp_instr_pdus_") as td:
        pdu_file = _write_pdus(f"{td}/pdus.bin", a.warm + a.n, a.seed)
        rows = []
        trees = a.tree or [str(_HERE)]
        if a.direct:
            rows.append(run(trees[0], pdu_file, a, direct=True))
        for t in trees:
            rows.append(run(t, pdu_file, a))
    for r in rows:
        print(json.dumps({k: v for k, v in r.items() if k != "functions"}))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f)
    return 0


if __name__ == "__main__":
    from .util import run_main
    sys.exit(run_main(main, "python -m benchmarks.smpp_instr"))     # SIGTERM, Ctrl-C: what it started is stopped
