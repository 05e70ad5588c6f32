"""Another ESME's enquire_link round trip while one bound ESME floods the proxy, for one or more checkouts in one run.

    python -m benchmarks.smpp_flood [--seconds 5] [--kind enquire_link|submit_sm] [--code DIR ...] [--ports FROM]
                                    [--rate-bound on|off|both]

Theory of operation: the lean responder (benchmarks.smpp_peers, the SMSC) and one `telfilter serve` per checkout
(`--code DIR`, default this one; give the old tree first to compare) start on 127.0.0.1 with an empty data dir and
SIP off. For each proxy the prober (a thread of this process: one bind, one enquire_link every --interval, each
timed from send to answer) runs `--seconds` alone, then `--seconds` while the flooder (a process of its own: one
bind that writes 256-KB chunks of enquire_link, or of minimal submit_sm, as fast as the proxy reads them, drains
the answers, and binds again at once when it is closed) floods. `--rate-bound off` gives a checkout that has the
[server] other_requests_* settings a rate no flood reaches (only the bound of the work one read may do applies);
`both` runs each such checkout both ways. Prints one JSON object: per proxy and mode, the prober's p50/p99/max in
µs alone and under the flood, and the flooder's PDUs answered and binds closed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from .smpp_bench import _free_port, _wait_port
from .util import OWN_GROUP, checkout, positive, scratch_dir, stop_all

_HDR = struct.Struct(">IIII")
_BIND = 0x00000009
_UNBOUNDED = "other_requests_per_second = 1e9\nother_requests_burst = 1000000000\n"


def _bind(port: int, system_id: bytes, password: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = system_id + b"\0" + password + b"\0\0\x34\0\0\0"
    s.sendall(_HDR.pack(16 + len(body), _BIND, 0, 1) + body)
    hdr = _recv(s, 16)
    length, _, status, _ = _HDR.unpack(hdr)
    _recv(s, length - 16)
    if status:
        raise RuntimeError(f"bind refused: 0x{status:08x}")
    return s


def _recv(s: socket.socket, n: int) -> bytes:
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise ConnectionError("closed")
        b += c
    return b


def _chunk(kind: str) -> bytes:
    if kind == "enquire_link":
        return b"".join(_HDR.pack(16, 0x15, 0, seq) for seq in range(2, 2 + (256 << 10) // 16))
    body = b"\0\1\1" + b"84901234567\0" + b"\1\1" + b"84912345678\0" + b"\0\0\0\0\0\0\0\0\0" + b"\5" + b"hello"
    one = len(body) + 16
    return b"".join(_HDR.pack(one, 0x04, 0, seq) + body for seq in range(2, 2 + (256 << 10) // one))


def flooder(port: int, seconds: float, kind: str) -> None:
    """Bind as `flood` and write the chunk as fast as the proxy reads it, for `seconds`; print what came back."""
    chunk, end = _chunk(kind), time.monotonic() + seconds
    got, closed = [0], 0
    while time.monotonic() < end:
        try:
            s = _bind(port, b"flood", b"pw")
        except (OSError, RuntimeError):
            time.sleep(0.01)
            continue

        def drain(sock=s):
            try:
                while True:
                    b = sock.recv(1 << 20)
                    if not b:
                        return
                    got[0] += len(b)
            except OSError:
                return
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        s.settimeout(0.5)
        try:
            while time.monotonic() < end:
                try:
                    s.sendall(chunk)
                except socket.timeout:
                    continue
        except OSError:
            closed += 1
        s.close()
        t.join(2)
    print(json.dumps({"answer_bytes": got[0], "answers": got[0] // 16, "closed": closed}))


def _pct(xs, q):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1e6, 1) if xs else None


def _probe(port: int, seconds: float, interval: float) -> dict:
    s = _bind(port, b"probe", b"pw")
    rtts, seq, end = [], 2, time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        s.sendall(_HDR.pack(16, 0x15, 0, seq))
        _recv(s, 16)
        rtts.append(time.perf_counter() - t0)
        seq += 1
        time.sleep(interval)
    s.close()
    return {"n": len(rtts), "p50_us": _pct(rtts, 0.5), "p99_us": _pct(rtts, 0.99), "max_us": _pct(rtts, 1.0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.smpp_flood", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=positive(float), default=5, help="of probing alone, then under the flood")
    ap.add_argument("--interval", type=positive(float), default=0.002, help="seconds between the prober's requests")
    ap.add_argument("--kind", choices=("enquire_link", "submit_sm"), default="enquire_link", help="what is flooded")
    ap.add_argument("--code", action="append", default=None, type=checkout, help="a checkout (repeatable)")
    ap.add_argument("--ports", type=positive(), default=None, help="consecutive ports from this one (else free ones)")
    ap.add_argument("--rate-bound", choices=("on", "off", "both"), default="both")
    a = ap.parse_args(argv)
    codes = [str(Path(c).resolve()) for c in (a.code or [os.getcwd()])]
    runs = []                                  # (code, rate-bound mode)
    for code in codes:
        knows = "other_requests_per_second" in (Path(code) / "engine/smpp_proxy/accounts.py").read_text()
        modes = ["on", "off"] if a.rate_bound == "both" else [a.rate_bound]
        runs += [(code, m) for m in modes] if knows else [(code, "none")]
    ports = iter(range(a.ports, a.ports + 1 + len(runs))) if a.ports else None
    port = (lambda: next(ports)) if ports else _free_port
    with scratch_dir(prefix="tf-flood-") as td:
        tmp = Path(td)
        py = sys.executable
        procs, out = [], {"kind": a.kind, "seconds": a.seconds, "interval": a.interval, "runs": []}
        try:
            r_port = port()
            procs.append(subprocess.Popen([py, "-m", "benchmarks.smpp_peers", "responder", str(r_port)], **OWN_GROUP))
            if not _wait_port(r_port):
                raise RuntimeError("the responder did not start")
            for k, (code, mode) in enumerate(runs):
                cfg = tmp / f"cfg{k}"
                shutil.copytree(Path(code) / "config", cfg)
                if mode == "off":
                    t = (cfg / "smpp.toml").read_text()
                    (cfg / "smpp.toml").write_text(t.replace("[server]\n", "[server]\n" + _UNBOUNDED, 1))
                p_port = port()
                p = subprocess.Popen([py, "-m", "engine.cli", "serve", "--config", str(cfg),
                                      "--data-dir", str(tmp / f"d{k}"),
                                      "--smpp-listen", f"127.0.0.1:{p_port}", "--smsc", f"127.0.0.1:{r_port}",
                                      "--esme-account", "flood:pw", "--esme-account", "probe:pw", "--sip-listen", "off",
                                      "--log", os.devnull, "--ready-file", str(tmp / f"ready{k}")],
                                     cwd=code, env=dict(os.environ, PYTHONPATH=code), stderr=subprocess.DEVNULL)
                procs.append(p)
                end = time.time() + 90
                while not (tmp / f"ready{k}").exists() and time.time() < end and p.poll() is None:
                    time.sleep(0.1)
                if not (tmp / f"ready{k}").exists():
                    raise RuntimeError(f"serve of {code} did not start")
                alone = _probe(p_port, a.seconds, a.interval)
                fl = subprocess.Popen([py, "-m", "benchmarks.smpp_flood", "--flooder", str(p_port), str(a.seconds + 1),
                                       a.kind], stdout=subprocess.PIPE, text=True)
                procs.append(fl)                    # (a probe that fails stops the flooder too)
                time.sleep(0.5)                     # the flood under way
                flooded = _probe(p_port, a.seconds, a.interval)
                flood = json.loads(fl.communicate(timeout=a.seconds + 30)[0] or "{}")
                out["runs"].append({"code": code, "rate_bound": mode, "alone": alone, "flooded": flooded,
                                    "flooder": flood})
                p.send_signal(signal.SIGTERM)
                p.wait(30)
        finally:
            stop_all(procs)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flooder"]:
        flooder(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
        sys.exit(0)
    from .util import exit_on_sigterm
    exit_on_sigterm()
    sys.exit(main())
