"""A caller's calls through a flood the per-source shares must hold (engine/sip_screen/shares.py), one flood kind at
a time, with two code trees in the same run (the screen of each, alternately), so a change is read as before/after.

    python -m benchmarks.sip_flood_kinds [--floods gzip,tcp] [--seconds S] [--rate R] [--rounds N] [--port P]
                                         [--before DIR] [--caller udp|tcp]

Theory of operation: the screen (from the tree named, run in a process of its own with that tree first on the path)
listens on 127.0.0.1, its next hop a sink that notes when each of the caller's INVITEs arrives. The caller (127.0.0.3
over UDP, or 127.0.0.4 on one TCP connection) sends R INVITEs a second for S seconds, each once; from 0.5 s until
0.5 s before it ends, a flooder sends as fast as one process can, either `gzip`: UDP MESSAGEs whose gzip body
inflates to 8 KiB of text (~0.9 ms of judging each, ~19 INVITEs) from 8 addresses in turn (127.0.1.1-8: a source's
MIN_COUNT free units a window, 8 times over), or `tcp`: INVITEs pipelined on 48 TCP connections from 127.0.0.2 (within max_tcp_per_source);
`none` sends nothing (the idle figures). Per case: the caller's INVITEs sent and forwarded (`through`), the latency
from its send to the sink (p50 / p95 / max, ms, of those forwarded), the flood's requests sent, the screen's drops
unread and MESSAGEs judged. `--before DIR`: the other tree (e.g. `git archive` of the base commit with the built
extensions copied in), each case run with it first; without it only this tree runs. Loopback only, ports P..P+3
(default: free ones), every process stopped at the case's end. The host's other load moves the figures: compare before
and after within a round.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .util import OWN_GROUP, scratch_dir

HERE = Path(__file__).resolve().parent.parent

SCREEN = r"""
import asyncio, json, logging, sys
logging.disable(logging.WARNING)
from engine.app import build
from engine.sip_screen.server import SipScreen, SipSettings
port, sink, seconds, data = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
async def main():
    scr = SipScreen(build(data_dir=data, with_model=False), SipSettings(
        listen="127.0.0.1:%d" % port, next_hop="127.0.0.1:%d" % sink, allow_networks=["127.0.0.0/8"],
        overload_after=0.25))
    await scr.start()
    print("ready", flush=True)
    await asyncio.sleep(seconds)
    await scr.stop()
    print(json.dumps(scr.stats), flush=True)
asyncio.run(main())
"""

SINK = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", int(sys.argv[2])))
s.settimeout(0.3)
end, mine = time.monotonic() + float(sys.argv[1]), {}
while time.monotonic() < end:
    try:
        d = s.recv(65535)
    except socket.timeout:
        continue
    i = d.find(b"Call-ID: mine-")
    if i >= 0:
        mine.setdefault(d[i + 14:d.index(b"\r\n", i)].decode(), time.monotonic())
print(json.dumps(mine))
"""

_INVITE = ("INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/%s %s:%d;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n"
           "From: <sip:%s@127.0.0.1>;tag=a\r\nTo: <sip:0912345678@127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\n"
           "Content-Length: 0\r\n\r\n")

CALLER = r"""
import json, socket, sys, time
port, seconds, rate, me, transport = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
INVITE = %r
host = "127.0.0.3" if transport == "UDP" else "127.0.0.4"
if transport == "UDP":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, me))
    send = lambda b: s.sendto(b, ("127.0.0.1", port))
else:
    s = socket.create_connection(("127.0.0.1", port), source_address=(host, 0))
    send = s.sendall
sent, n, t = {}, 0, time.monotonic()
end = t + seconds
while t < end:
    sent[str(n)] = time.monotonic()
    send((INVITE %% (transport, host, me, "m%%d" %% n, "0901234568", "mine-%%d" %% n)).encode())
    n += 1
    t += 1.0 / rate
    time.sleep(max(0.0, t - time.monotonic()))
time.sleep(0.5)
print(json.dumps(sent))
""" % _INVITE

FLOOD = r"""
import gzip, random, select, socket, sys, time
port, seconds, me, kind = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
INVITE = %r
end, n = time.time() + seconds, 0
if kind == "gzip":
    words = b"win prize call now free money click offer bank loan today limited ".split()
    rnd = random.Random(1)
    text = b" ".join(rnd.choice(words) for _ in range(2000))[:8192]
    body = gzip.compress(text)
    socks = []
    for a in range(SOURCES):
        socks.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        socks[-1].bind(("127.0.1.%%d" %% (a + 1), me))
    while time.time() < end:
        s = socks[n %% SOURCES]
        head = ("MESSAGE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.%%d:%%d;branch=z9hG4bKg%%d\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=a\r\nTo: <sip:0912345678@127.0.0.1>\r\n"
                "Call-ID: flood-%%d\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
                "Content-Length: %%d\r\n\r\n" %% (n %% SOURCES + 1, me, n, n, len(body))).encode()
        try:
            s.sendto(head + body, ("127.0.0.1", port))
        except OSError:
            pass
        n += 1
else:
    conns = [socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0)) for _ in range(CONNS)]
    for c in conns:
        c.setblocking(False)
    pending = {c: b"" for c in conns}
    while time.time() < end:
        _, w, _ = select.select(conns, conns, [], 0.05)
        for c in conns:
            try:
                while c.recv(65536):
                    pass
            except (BlockingIOError, ConnectionError):
                pass
        for c in w:
            if not pending[c]:
                pending[c] = "".join(INVITE %% ("TCP", "127.0.0.2", 5060, "f%%d" %% k, "0901234567", "flood-%%d" %% k)
                                     for k in range(n, n + 50)).encode()
                n += 50
            try:
                k = c.send(pending[c])
                pending[c] = pending[c][k:]
            except (BlockingIOError, ConnectionError):
                pass
print(n)
""".replace("SOURCES", "8").replace("CONNS", "48") % _INVITE


def _pct(xs, q):
    return round(statistics.quantiles(xs, n=100)[q - 1] * 1000, 1) if len(xs) >= 2 else None


def one_case(tree: Path, work: Path, flood: str, caller: str, seconds: float, rate: float, port: int) -> dict:
    """One screen from `tree`, one flood, one caller: the caller's figures and the screen's drops. `port`: the
    screen's, then the sink's, the flooder's and the caller's (0: free ones)."""
    py, procs = sys.executable, []
    if port:
        ports = (port, port + 1, port + 2, port + 3)
    else:
        from .ports import free_port
        ports = (free_port(socket.SOCK_DGRAM, socket.SOCK_STREAM),) + tuple(free_port(socket.SOCK_DGRAM)
                                                                            for _ in range(3))
    port = ports[0]
    env = dict(os.environ, PYTHONPATH=str(tree))
    length = seconds + 3.0
    try:
        sink = subprocess.Popen([py, "-c", SINK, str(length + 1.0), str(ports[1])], stdout=subprocess.PIPE,
                                text=True, **OWN_GROUP)
        procs.append(sink)
        screen = subprocess.Popen([py, "-c", SCREEN, str(port), str(ports[1]), str(length), str(work)],
                                  stdout=subprocess.PIPE, text=True, cwd=tree, env=env, **OWN_GROUP)
        procs.append(screen)
        if screen.stdout.readline().strip() != "ready":
            raise RuntimeError("the screen did not start")
        c = subprocess.Popen([py, "-c", CALLER, str(port), str(seconds), str(rate), str(ports[3]), caller.upper()],
                             stdout=subprocess.PIPE, text=True, **OWN_GROUP)
        procs.append(c)
        time.sleep(0.5)                             # the caller is a source of the window when the flood begins
        if flood != "none":
            procs.append(subprocess.Popen([py, "-c", FLOOD, str(port), str(seconds - 1.0), str(ports[2]), flood],
                                          stdout=subprocess.PIPE, text=True, **OWN_GROUP))
        caller_out = c.communicate(timeout=seconds + 60)[0]
        flooded = int(procs[3].communicate(timeout=30)[0] or 0) if flood != "none" else 0
        stats = json.loads(screen.communicate(timeout=60)[0].splitlines()[-1])
        arrived = json.loads(sink.communicate(timeout=30)[0])
        sent = json.loads(caller_out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lat = sorted(arrived[k] - t for k, t in sent.items() if k in arrived)
    return {"sent": len(sent), "through": len(lat), "p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95),
            "max_ms": round(lat[-1] * 1000, 1) if lat else None, "flooded": flooded,
            "dropped_unread": stats.get("overload_source_dropped", 0),
            "messages_judged": stats.get("messages_judged", 0), "requests": stats.get("requests", 0),
            "kernel_dropped": stats.get("overload_dropped", 0),
            "tcp_deferred": stats.get("tcp_source_deferred")}


def run(floods, caller="udp", seconds=4.0, rate=20, rounds=1, port=0, before=None) -> dict:
    trees = ([("before", Path(before).resolve())] if before else []) + [("after", HERE)]
    out = {"seconds": seconds, "rate": rate, "rounds": rounds, "caller": caller, "cases": []}
    with scratch_dir(prefix="tf-sipfloodkinds-") as td:
        for k in range(rounds):
            for flood in floods:
                for name, tree in trees:
                    r = one_case(tree, Path(td) / f"{flood}-{name}-{k}", flood, caller, seconds, rate, port)
                    out["cases"].append({"round": k, "flood": flood, "tree": name, **r})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sip_flood_kinds", description=__doc__.split("\n\n")[0])
    ap.add_argument("--floods", default="gzip,tcp", help="comma-separated: gzip, tcp, none (default gzip,tcp)")
    ap.add_argument("--caller", choices=("udp", "tcp"), default="udp")
    ap.add_argument("--seconds", type=float, default=4.0, help="how long the caller sends (default 4)")
    ap.add_argument("--rate", type=float, default=20, help="the caller's calls a second (default 20)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--port", type=int, default=0, help="first of four loopback ports (default: free ones)")
    ap.add_argument("--before", help="another code tree to run each case with first")
    a = ap.parse_args(argv)
    floods = [f for f in a.floods.split(",") if f]
    if not floods or any(f not in ("gzip", "tcp", "none") for f in floods):
        ap.error("--floods: gzip, tcp, none")
    if not 1 < a.seconds <= 600 or not 0 < a.rate <= 1000 or a.rounds < 1:
        ap.error("--seconds in (1, 600], --rate in (0, 1000], --rounds >= 1")
    from .util import exit_on_sigterm
    exit_on_sigterm()
    print(json.dumps(run(floods, a.caller, a.seconds, a.rate, a.rounds, a.port, a.before)))
    return 0


if __name__ == "__main__":
    from .util import run_main
    sys.exit(run_main(main, "python -m benchmarks.sip_flood_kinds"))
