"""Screen CPU per call: sipp UAC -> `telfilter serve` -> sipp UAS on 127.0.0.1, and the same
sipp load through a trivial uvloop UDP relay and through Kamailio (stateless forward, `-x tlsf`,
when installed) in the same run as the baselines.

    python -m engine.sip_screen.cpubench [--rate 500] [--seconds 10] [--no-relay] [--no-kamailio]
                                         [--listen 127.0.0.1|[::]|[::1]]
    python -m engine.sip_screen.cpubench --via-flood
    python -m engine.sip_screen.cpubench --per-type [--profile] [--interleave KIB]   (in process, per message type)

prints one JSON object: per target (`screen`, `relay`, `kamailio`) the CPU seconds of the
element (all its processes: Kamailio forks workers) spent while the UAC ran, calls completed /
failed, and CPU µs per call and per SIP message (6 per call:
INVITE, 180, 200, ACK, BYE, 200). `measure()` is the same as a function, for the benchmark
suite (`sip_cpu_us_per_call` = `measure()["screen"]["cpu_us_per_call"]`). Needs sipp. Nothing
leaves loopback; every child is bounded by -m and -timeout and is stopped at the end.
`--listen` is the screen's address instead of 127.0.0.1: `[::]` (dual-stack; sipp stays on 127.0.0.1, so
the screen receives it as ::ffff:127.0.0.1 and sends to IPv4 addresses from an IPv6 socket) or `[::1]`
(sipp on ::1 too); the relay and Kamailio stay on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .benchcall import SC, TYPES, capture_call, free_udp, run_tool, stub_socket

MESSAGES_PER_CALL = 6

# The baseline: forwards each datagram from the UAC to the UAS and each one from the UAS back
# to the last UAC address; no parsing at all. It is what any Python relay pays for the loop
# and the two syscalls per message.
RELAY = r"""
import asyncio, sys
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
port, uas = int(sys.argv[1]), ("127.0.0.1", int(sys.argv[2]))
class R(asyncio.DatagramProtocol):
    uac = None
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a):
        if a == uas:
            if self.uac: self.t.sendto(d, self.uac)
        else:
            self.uac = a; self.t.sendto(d, uas)
async def main():
    await asyncio.get_running_loop().create_datagram_endpoint(R, local_addr=("127.0.0.1", port))
    open(sys.argv[3], "w").write("ready")
    await asyncio.Event().wait()
asyncio.run(main())
"""


def cpu_seconds(pid) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid) -> float:
    """cpu_seconds of a process and its live descendants."""
    kids: dict = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                continue
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
        except OSError:
            continue
        todo += kids.get(p, [])
    return total


# Kamailio as a plain stateless forwarder with its production allocator (as benchmarks/sip_bench.py)
KAM_ARGS = ["-DD", "-E", "-m", "64", "-M", "8", "-x", "tlsf"]


def _calls(stat: Path) -> tuple[int, int]:
    try:
        rows = list(csv.reader(stat.open(), delimiter=";"))
        h, last = rows[0], rows[-1]
        return int(last[h.index("SuccessfulCall(C)")]), int(last[h.index("FailedCall(C)")])
    except (OSError, IndexError, ValueError):
        return 0, 0


def _stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _one(target: str, rate: int, seconds: float, tmp: Path, listen: str = "127.0.0.1") -> dict:
    d = tmp / target
    d.mkdir(parents=True, exist_ok=True)
    calls = max(2, int(rate * seconds))
    if target != "screen":
        listen = "127.0.0.1"
    peer = "::1" if listen == "[::1]" else "127.0.0.1"        # sipp's address (on [::]: IPv4, mapped)
    ref = f"[{peer}]" if ":" in peer else peer
    uas_port, port = free_udp(peer), free_udp(peer)
    ready = d / "ready"
    if target == "screen":
        from ..lists import ListStore
        ListStore(tmp / "data").import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
        srv = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(tmp / "data"),
                                "--smpp-listen", "127.0.0.1:0", "--sip-listen", f"{listen}:{port}",
                                "--sip-next-hop", f"{ref}:{uas_port}", "--sip-allow-networks", "127.0.0.0/8,::1/128",
                                "--log", str(d / "verdicts.jsonl"), "--ready-file", str(ready)],
                               cwd=Path(__file__).resolve().parents[2],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elif target == "kamailio":
        cfg = d / "kamailio.cfg"
        cfg.write_text(f"#!KAMAILIO\nlisten=udp:127.0.0.1:{port}\nchildren=1\ndisable_tcp=yes\n"
                       f"log_stderror=yes\ndebug=0\nrequest_route {{\n  forward(\"127.0.0.1\", {uas_port});\n  exit;\n}}\n")
        srv = subprocess.Popen([shutil.which("kamailio"), "-f", str(cfg), *KAM_ARGS],
                               stdout=subprocess.DEVNULL, stderr=open(d / "kamailio.log", "wb"))
        time.sleep(1.0)
        ready.write_text("ready")
    else:
        srv = subprocess.Popen([sys.executable, "-c", RELAY, str(port), str(uas_port), str(ready)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uas = uac = None
    try:
        end = time.time() + 60
        while not ready.exists() and time.time() < end and srv.poll() is None:
            time.sleep(0.05)
        if not ready.exists():
            return {"error": f"{target} did not start"}
        uas = subprocess.Popen(["sipp", "-sf", str(SC / "uas.xml"), "-i", peer, "-ci", peer, "-p", str(uas_port),
                                "-m", str(calls), "-timeout", f"{int(seconds + 30)}s", "-nostdin"],
                               cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        if srv.poll() is not None:
            return {"error": f"{target} exited at start (status {srv.returncode}); see {d}"}
        c0, t0 = tree_cpu(srv.pid), time.perf_counter()
        uac = subprocess.Popen(["sipp", f"{ref}:{uas_port}", "-sf", str(SC / "uac_call.xml"), "-i", peer,
                                "-ci", peer, "-p", str(free_udp(peer)), "-rsa", f"{ref}:{port}", "-m", str(calls),
                                "-r", str(rate), "-l", str(max(50, rate)), "-s", "0912345678",
                                "-key", "caller", "0901234567", "-timeout", f"{int(seconds + 30)}s", "-nostdin",
                                "-trace_stat", "-stf", str(d / "stat.csv"), "-fd", "1"],
                               cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            uac.wait(seconds + 60)
        except subprocess.TimeoutExpired:
            pass
        cpu, wall = tree_cpu(srv.pid) - c0, time.perf_counter() - t0
    finally:
        for p in (uac, uas, srv):
            if p is not None:
                _stop(p)
    ok, failed = _calls(d / "stat.csv")
    return {"calls": calls, "ok": ok, "failed": failed, "cpu_s": round(cpu, 3), "wall_s": round(wall, 2),
            "cpu_us_per_call": round(cpu / max(ok, 1) * 1e6, 1),
            "cpu_us_per_message": round(cpu / max(ok, 1) / MESSAGES_PER_CALL * 1e6, 1)}


def via_flood(n: int = 20, vias: int = 950) -> dict:
    """CPU of `telfilter serve` for n INVITEs carrying `vias` Vias each (issue #10: one 62 KB
    datagram of 950 Vias cost 0.64 s before the loop check was made linear), sent both as one
    Via header with every value and as one Via header line per value; all answers collected."""
    with tempfile.TemporaryDirectory(prefix="tf-viaflood-") as td:     # serve's data dir (serve stopped first)
        return _via_flood(Path(td), n, vias)


def _via_flood(tmp: Path, n: int, vias: int) -> dict:
    port, ready = free_udp(), tmp / "ready"
    srv = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(tmp / "data"),
                            "--smpp-listen", "127.0.0.1:0", "--sip-listen", f"127.0.0.1:{port}",
                            "--sip-next-hop", "127.0.0.1:9", "--sip-allow-networks", "127.0.0.0/8",
                            "--log", os.devnull, "--ready-file", str(ready)],
                           cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.1", 0))
    cli.settimeout(5)
    out = {}
    try:
        end = time.time() + 60
        while not ready.exists() and time.time() < end:
            time.sleep(0.05)
        cp = cli.getsockname()[1]
        values = [f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKtf{i:08x}" for i in range(vias)]
        for form, via_lines in (("one_header", ["Via: " + ", ".join(values)]), ("header_lines", ["Via: " + v for v in values])):
            msgs = []
            for k in range(n):
                msgs.append("\r\n".join(["INVITE sip:0912345678@127.0.0.1 SIP/2.0",
                                          f"Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK{form}{k};rport", *via_lines,
                                          "Max-Forwards: 70", "From: <sip:0901234567@127.0.0.1>;tag=a",
                                          "To: <sip:0912345678@127.0.0.1>", f"Call-ID: {form}-{k}", "CSeq: 1 INVITE",
                                          "Content-Length: 0", "", ""]).encode())
            c0 = cpu_seconds(srv.pid)
            answered = 0
            for m in msgs:
                cli.sendto(m, ("127.0.0.1", port))
                try:
                    cli.recv(70000)
                    answered += 1
                except socket.timeout:
                    pass
            out[form] = {"bytes": len(msgs[0]), "answered": answered, "cpu_s": round(cpu_seconds(srv.pid) - c0, 3)}
    finally:
        cli.close()
        _stop(srv)
    return out


def per_type(calls: int = 3000, profile: bool = False, interleave: int = 0) -> dict:
    """In-process CPU µs per SIP message type (no sockets, no event loop): the six datagrams of
    one sipp call are captured at a screen on loopback, then `calls` copies of them (each with
    its own Call-ID) are fed to `SipScreen.on_datagram` of a screen whose socket is a stub, with
    a verdict log to a file and the durable state store as in `serve`. The screen's own code and
    judging, without the kernel and event-loop share that `measure()` includes."""
    # the data dir (lists, the state store), sipp's files and the verdict log: removed with the figures
    with tempfile.TemporaryDirectory(prefix="tf-siptype-", ignore_cleanup_errors=True) as td:
        return _per_type(Path(td), calls, profile, interleave)


def _per_type(tmp: Path, calls: int, profile: bool, interleave: int) -> dict:
    import re

    from ..app import build
    from ..lists import ListStore
    from ..verdictlog import VerdictLog
    from ..state import install, open_state
    from .harness import SipHarness
    from .server import SipSettings
    from .transport import Pump, make_pump
    ListStore(tmp / "data").import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    pipe = build(None, tmp / "data", seed=False)
    install(pipe, open_state(None, pipe.store.dir))
    uas_port = free_udp()
    h = SipHarness(pipe, SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas_port}",
                                     allow_networks=["127.0.0.0/8"])).start()
    try:
        got, real = capture_call(h, uas_port, tmp)
        screen = h.screen
    finally:
        h.stop()
    if len(got) < 6:
        return {"error": f"captured {len(got)} datagrams of a call, not 6"}
    msgs = got[:6]
    cid = re.search(rb"Call-ID: ([^\r]*)", msgs[0][0]).group(1)

    Stub = stub_socket()
    screen.udp = Stub()
    screen.fast_path = True
    screen.on_datagram = real
    screen.vlog = VerdictLog(str(tmp / "verdicts.jsonl"))
    batch = [[(m.replace(cid, b"%0*x" % (len(cid), i + 1)), a) for m, a in msgs] for i in range(calls)]
    tot = [0.0] * 6
    # as `serve` runs it: the C pump's handling of one datagram when it is built (it hands what it
    # does not relay itself to on_datagram), else on_datagram
    on = make_pump(screen, -1, Stub().sendto).handle if Pump is not None else screen.on_datagram
    clock = time.process_time
    prof = None
    if profile:                                  # where the time goes (the figures then include cProfile's cost)
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    # --interleave N: between two calls, N KiB of other memory is read and Python objects churned
    # (not counted), as the event loop, the kernel and sipp do live: the caches are then cold for
    # the next INVITE, which is what the live figure pays and the tight loop does not
    thrash = bytearray(interleave * 1024)
    for call in batch:
        if interleave:
            bytes(thrash)
            {i: str(i) for i in range(interleave)}
        for k, (m, a) in enumerate(call):
            t0 = clock()
            on(m, a)
            tot[k] += clock() - t0
    if prof is not None:
        import pstats
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    screen.vlog.close()
    out = {t: round(x / calls * 1e6, 1) for t, x in zip(TYPES, tot)}
    out["call"] = round(sum(tot) / calls * 1e6, 1)
    out["sent"], out["expected"] = Stub.sent, 6 * calls
    out["path"] = "C pump" if Pump is not None else "Python"
    out["interleave_kib"] = interleave
    return out


def measure(rate: int = 500, seconds: float = 10.0, relay: bool = True, kamailio: bool = True,
            listen: str = "127.0.0.1") -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="tf-sipcpu-"))
    out = {"rate_cps": rate, "seconds": seconds, "listen": listen}
    try:
        out["screen"] = _one("screen", rate, seconds, tmp, listen)
        if relay:
            out["relay"] = _one("relay", rate, seconds, tmp)
        if kamailio and shutil.which("kamailio"):
            out["kamailio"] = _one("kamailio", rate, seconds, tmp)
        elif kamailio:      # said, not left out without a word: the baseline is missing, not zero
            out["kamailio"] = {"error": "kamailio not installed: no Kamailio baseline in this run"}
    finally:                # the data directory and sipp's files; kept when the screen or relay failed (see its error)
        if not any("error" in out.get(k, {}) for k in ("screen", "relay")):
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.sip_screen.cpubench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--no-relay", action="store_true")
    ap.add_argument("--no-kamailio", action="store_true")
    ap.add_argument("--listen", default="127.0.0.1", choices=("127.0.0.1", "[::]", "[::1]"),
                    help="the screen's UDP address (default 127.0.0.1); sipp on ::1 for [::1], else 127.0.0.1")
    ap.add_argument("--via-flood", action="store_true", help="CPU of 20 INVITEs with 950 Vias each instead")
    ap.add_argument("--per-type", action="store_true", help="in-process CPU µs per SIP message type instead")
    ap.add_argument("--profile", action="store_true", help="with --per-type: a cProfile of it on stderr")
    ap.add_argument("--interleave", type=int, default=0, metavar="KIB",
                    help="with --per-type: KiB of other memory touched between calls (cold caches, as live)")
    a = ap.parse_args(argv)
    if a.rate < 1 or not a.seconds > 0:
        ap.error(f"--rate {a.rate} --seconds {a.seconds:g}: calls/s and seconds above 0")
    if a.interleave < 0:
        ap.error(f"--interleave {a.interleave}: KiB of memory, 0 or more")
    if not a.via_flood and shutil.which("sipp") is None:
        ap.error("sipp is not installed (Debian sip-tester): it makes the calls (and captures --per-type's)")
    if a.per_type:
        print(json.dumps(per_type(profile=a.profile, interleave=a.interleave)))
    else:
        print(json.dumps(via_flood() if a.via_flood else measure(a.rate, a.seconds, not a.no_relay, not a.no_kamailio,
                                                                       a.listen)))
    return 0


if __name__ == "__main__":
    run_tool(main, "engine.sip_screen.cpubench")
