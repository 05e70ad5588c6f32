"""The share of a second caller's calls the SIP screen judges through a flood from another address, with the
per-source shares on and off (engine/sip_screen/shares.py; `overload_after` 0.25 s vs 0), for the C pump and the
Python reader.

    python -m benchmarks.sip_flood [--seconds S] [--rate R] [--rounds N] [--port P]

Theory of operation: a flooder at 127.0.0.2 sends INVITEs as fast as one process can (each a new call, ~1 kB) to a
screen listening on 127.0.0.1; after 0.7 s a caller at 127.0.0.3 sends R calls a second for S seconds, each once
(no retransmission); a sink at the next hop counts the caller's calls the screen judged and forwarded. Each round
runs the four cases one after the other (pump on/off x shares on/off), so a reader's two figures come from the same
host at nearly the same load: read `ratio` (share judged with the shares / without), not the shares alone, which are
the scheduler's at this load (the flood's sender, the screen and the sink share the host's cores). Loopback only,
bounded: a case lasts about S + 1 s (at most S + 4) and every process it starts stops by itself. --port P: the screen, the sink and the two
senders on P..P+3 (default: free loopback ports). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

from .util import OWN_GROUP, scratch_dir

FLOOD = r"""
import signal, socket, sys, time
signal.signal(signal.SIGINT, signal.SIG_DFL)   # Ctrl-C (the whole group): no traceback; the tool says it
port, seconds, me = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", me))
extra = "".join("X-Filler-%d: %s\r\n" % (i, "f" * 40) for i in range(20))
end, n = time.time() + seconds, 0
while time.time() < end:
    msg = ("INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:9;branch=z9hG4bKf%d\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=a\r\nTo: <sip:0912345678@127.0.0.1>\r\n"
           "Call-ID: flood-%d\r\nCSeq: 1 INVITE\r\n" % (n, n) + extra + "Content-Length: 0\r\n\r\n").encode()
    try:
        s.sendto(msg, ("127.0.0.1", port))
    except OSError:
        pass
    n += 1
print(n)
"""

CALLER = r"""
import signal, socket, sys, time
signal.signal(signal.SIGINT, signal.SIG_DFL)   # Ctrl-C (the whole group): no traceback; the tool says it
port, seconds, rate, me = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.3", me))
me = s.getsockname()[1]
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    msg = ("INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:%d;branch=z9hG4bKm%d\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:0901234568@127.0.0.1>;tag=b\r\nTo: <sip:0912345678@127.0.0.1>\r\n"
           "Call-ID: mine-%d\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n" % (me, n, n)).encode()
    s.sendto(msg, ("127.0.0.1", port))
    n += 1
    time.sleep(1.0 / rate)
print(n)
"""

SINK = r"""
import signal, socket, sys, time
signal.signal(signal.SIGINT, signal.SIG_DFL)   # Ctrl-C (the whole group): no traceback; the tool says it
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[2])))
s.settimeout(0.5)
print(s.getsockname()[1], flush=True)
end, mine = time.monotonic() + float(sys.argv[1]), set()
while time.monotonic() < end:
    try:
        d = s.recv(65535)
    except socket.timeout:
        continue
    if d == b"STOP":                            # the screen has stopped: all it forwarded is here
        break
    if b"Call-ID: mine-" in d:
        mine.add(d.split(b"Call-ID: mine-")[1].split(b"\r\n")[0])
print(len(mine))
"""


def calls_through_a_flood(work: Path, overload_after: float, pump=True, seconds=3.0, rate=20, ports=(0, 0, 0, 0)):
    """A flood of INVITEs from 127.0.0.2 and `rate` calls a second from 127.0.0.3 for `seconds` (each sent once):
    (the caller's calls the screen judged and forwarded to the next hop, the caller's calls sent, the flood's
    INVITEs sent, the screen's counters). `ports`: the screen's, the sink's, the flooder's, the caller's (0: any)."""
    from engine.app import build
    from engine.sip_screen.server import SipScreen, SipSettings
    from engine.smpp_proxy.harness import ProxyHarness
    pipe = build(data_dir=work / "data", with_model=False)
    py, procs = sys.executable, []
    sink = subprocess.Popen([py, "-c", SINK, str(seconds + 4.0), str(ports[1])], stdout=subprocess.PIPE, text=True,
                            **OWN_GROUP)
    try:
        sink_port = int(sink.stdout.readline())
        with ProxyHarness(pipe) as h:
            screen = SipScreen(pipe, SipSettings(listen=f"127.0.0.1:{ports[0]}", next_hop=f"127.0.0.1:{sink_port}",
                                                 allow_networks=["127.0.0.0/8"], overload_after=overload_after))
            screen.fast_path = pump
            h.call(screen.start())
            try:
                procs.append(subprocess.Popen([py, "-c", FLOOD, str(screen.port), str(seconds + 1.0), str(ports[2])],
                                              stdout=subprocess.PIPE, **OWN_GROUP))
                time.sleep(0.7)                                             # the flood is under way
                caller = subprocess.run([py, "-c", CALLER, str(screen.port), str(seconds), str(rate), str(ports[3])],
                                        capture_output=True, text=True, timeout=seconds + 60, **OWN_GROUP)
                flooded = int(procs[0].communicate(timeout=30)[0] or 0)
            finally:
                h.call(screen.stop())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"STOP", ("127.0.0.1", sink_port))
        through = int(sink.communicate(timeout=30)[0])
    finally:
        for p in procs + [sink]:
            if p.poll() is None:
                p.kill()
                p.wait()
    return through, int(caller.stdout), flooded, dict(screen.stats)


def run(seconds=3.0, rate=20, rounds=1, port=0) -> dict:
    """Per reader (the C pump, the Python reader): the share of the caller's calls judged with the shares on and
    off, summed over `rounds` rounds, and their ratio."""
    out = {"seconds": seconds, "rate": rate, "rounds": rounds, "readers": {}}
    quiet = logging.root.manager.disable        # (the screen's service log says the flood and its drops, each case)
    logging.disable(logging.WARNING)
    try:
        _cases(out, seconds, rate, rounds, port)
    finally:
        logging.disable(quiet)
    for r in out["readers"].values():
        for case in ("shares_on", "shares_off"):
            r[case]["share"] = round(r[case]["judged"] / max(1, r[case]["sent"]), 3)
        off = r["shares_off"]["share"]
        r["ratio"] = round(r["shares_on"]["share"] / off, 2) if off else None     # None: none judged without
    return out


def _cases(out, seconds, rate, rounds, port) -> None:
    from engine.sip_screen.transport import Pump
    from .ports import free_port
    readers = [("c_pump", True), ("python_reader", False)] if Pump is not None else [("python_reader", False)]
    with scratch_dir(prefix="tf-sipflood-") as td:
        for k in range(rounds):
            for name, pump in readers:
                for shares, after in (("shares_on", 0.25), ("shares_off", 0.0)):
                    ports = tuple(port + i for i in range(4)) if port else \
                        (free_port(socket.SOCK_DGRAM, socket.SOCK_STREAM),) + tuple(free_port(socket.SOCK_DGRAM)
                                                                                    for _ in range(3))
                    through, sent, flooded, st = calls_through_a_flood(Path(td) / f"{name}-{shares}-{k}", after, pump,
                                                                       seconds, rate, ports)
                    r = out["readers"].setdefault(name, {}).setdefault(shares, dict(judged=0, sent=0, flooded=0,
                                                                                     dropped_unread=0))
                    r["judged"] += through
                    r["sent"] += sent
                    r["flooded"] += flooded
                    r["dropped_unread"] += st["overload_source_dropped"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sip_flood", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="how long the caller sends (default 3)")
    ap.add_argument("--rate", type=float, default=20, help="the caller's calls a second (default 20)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the four cases (default 1)")
    ap.add_argument("--port", type=int, default=0, help="first of four loopback ports to use (default: free ones)")
    a = ap.parse_args(argv)
    if not 0 < a.seconds <= 600:
        ap.error("--seconds must be above 0 and at most 600")
    if not 0 < a.rate <= 1000:
        ap.error("--rate must be above 0 and at most 1000")
    if a.rounds < 1:
        ap.error("--rounds must be 1 or more")
    if a.port and not 1024 <= a.port <= 65532:
        ap.error("--port must be 1024-65532")
    from .util import exit_on_sigterm
    exit_on_sigterm()
    print(json.dumps(run(a.seconds, a.rate, a.rounds, a.port)))
    return 0


if __name__ == "__main__":
    from .util import run_main
    sys.exit(run_main(main, "python -m benchmarks.sip_flood"))     # SIGTERM, Ctrl-C: what it started is stopped
