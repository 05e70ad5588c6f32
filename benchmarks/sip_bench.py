"""SIP calls per second and CPU per call through the screen with sipp, against a trivial UDP relay
and Kamailio as a plain stateless forwarder (`-x tlsf`) under the same sipp load in the same run,
Kamailio whenever it is installed (the full run installs it).

Per rate step: sipp UAC(s) -> screen (`telfilter serve`, one process) -> sipp UAS, on 127.0.0.1.
The mixed run offers half allowed calls (INVITE/200/ACK/BYE) and half blocked ones (the
caller is blacklisted: 608 expected); the allowed-only run is the one compared with the relay
and Kamailio. CPU per call = on-CPU time of the element under test (all its processes and
threads, from schedstat in ns; the 10-ms-tick figure from /proc/PID/stat is kept beside it as a
check) during the run / calls completed; per message = that / 6.
Every sipp is bounded by -m (call count) and -timeout; nothing leaves loopback.
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import ports
from .util import pct, run_seconds, scratch_dir, tree_cpu_seconds

SC = Path(__file__).resolve().parent / "sipp"
PROGRESS_PER_RATE = 4       # the suite's progress bar moves once for each run a rate takes: mixed, allowed, the relay,
                            # Kamailio (once whether it ran or not)


def _free_udp():
    """A sipp's port (UDP only), from benchmarks.ports: not one the kernel may hand to an outgoing connection."""
    return ports.free_port(socket.SOCK_DGRAM)


def _free_sip_port():
    """The element's port: serve's --sip-listen binds UDP and TCP on it (RFC 3261 §18)."""
    return ports.free_port(socket.SOCK_DGRAM, socket.SOCK_STREAM)


def _sipp_uac(tmp, name, target_port, uas_port, sf, caller, rate, calls, extra=()):
    d = tmp / name
    d.mkdir(exist_ok=True)
    cmd = ["sipp", f"127.0.0.1:{uas_port}", "-sf", str(SC / sf), "-i", "127.0.0.1", "-ci", "127.0.0.1",
           "-p", str(_free_udp()), "-rsa", f"127.0.0.1:{target_port}", "-m", str(calls), "-r", str(rate), "-l", str(max(50, rate)),
           "-s", "0912345678", "-key", "caller", caller, "-timeout", "60s", "-nostdin",
           "-trace_stat", "-stf", str(d / "stat.csv"), "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
           "-recv_timeout", "5s", *extra]
    return subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stats(d: Path):
    out = {"ok": 0, "failed": 0, "rtt_ms": []}
    f = d / "stat.csv"
    if f.exists():
        rows = list(csv.reader(f.open(), delimiter=";"))
        if len(rows) >= 2:
            h, last = rows[0], rows[-1]
            try:
                out["ok"] = int(last[h.index("SuccessfulCall(C)")])
                out["failed"] = int(last[h.index("FailedCall(C)")])
            except (ValueError, IndexError):
                pass
    for rf in d.glob("*_rtt.csv"):
        for row in csv.reader(rf.open(), delimiter=";"):
            if len(row) >= 2:
                try:
                    out["rtt_ms"].append(float(row[1]))
                except ValueError:
                    pass
    return out


MSGS_PER_CALL = 6          # INVITE, 180, 200, ACK, BYE, 200 (uac_call.xml against uas.xml)


def run(rates, seconds, progress=None, kamailio=False) -> dict:
    if shutil.which("sipp") is None:
        return {"error": "sipp not installed"}
    # kept when the step failed (its error names the logs there), not when stopped
    with scratch_dir(keep_failed=True, prefix="tf-sipbench-") as td:
        return _run(Path(td), rates, seconds, progress, kamailio)


def _run(tmp, rates, seconds, progress, kamailio) -> dict:
    from engine.lists import ListStore
    ListStore(tmp / "data").import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    kam_bin = shutil.which("kamailio") if kamailio else None
    results = {"steps": [], "kamailio": kam_bin, "kamailio_args": KAM_ARGS if kam_bin else None,
               "messages_per_call": MSGS_PER_CALL}
    for rate in rates:
        row = {"offered_cps": rate}
        for mode in ("mixed", "allowed"):
            row[mode] = _one(tmp, rate, seconds, mode, server="screen")
            if progress:
                progress.update(1)
        row["relay"] = _one(tmp, rate, seconds, "allowed", server="relay")
        if progress:
            progress.update(1)
        if kam_bin:
            try:
                row["kamailio"] = _one(tmp, rate, seconds, "allowed", server="kamailio", kam_bin=kam_bin)
            except RuntimeError as e:           # reported, not fatal: the screen's figures stand alone
                row["kamailio_error"] = str(e)
        if progress:                            # (PROGRESS_PER_RATE)
            progress.update(1)
        for k in ("allowed", "relay", "kamailio"):
            if k in row:
                r = row[k]
                r["cpu_us_per_call"] = r["server_cpu_s"] / r["ok"] * 1e6 if r["ok"] else None
                r["cpu_us_per_msg"] = r["cpu_us_per_call"] / MSGS_PER_CALL if r["ok"] else None
        results["steps"].append(row)
    return results


# Kamailio as a plain stateless forwarder, with its production allocator for shared memory
KAM_ARGS = ["-DD", "-E", "-m", "64", "-M", "8", "-x", "tlsf"]


def _start_server(kind, d, port, uas_port, tmp, kam_bin=None, started=None):
    """The element under test, started, appended to `started` at once (the caller stops what is there) and
    returned."""
    started = [] if started is None else started
    if kind == "screen":
        srv = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(tmp / "data"),
                                "--smpp-listen", "127.0.0.1:0", "--sip-listen", f"127.0.0.1:{port}",
                                "--sip-next-hop", f"127.0.0.1:{uas_port}", "--sip-allow-networks", "127.0.0.0/8",
                                "--log", os.devnull, "--ready-file", str(d / "ready")],
                               stderr=open(d / "serve.log", "wb"), stdout=subprocess.DEVNULL)
        started.append(srv)
        end = time.time() + 30
        while not (d / "ready").exists() and time.time() < end:
            time.sleep(0.05)
    elif kind == "relay":
        srv = subprocess.Popen([sys.executable, "-m", "benchmarks.sip_relay", str(port), str(uas_port)],
                               stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        started.append(srv)
        time.sleep(0.5)
    else:
        cfg = d / "kamailio.cfg"
        cfg.write_text(f"#!KAMAILIO\nlisten=udp:127.0.0.1:{port}\nchildren=1\ndisable_tcp=yes\n"
                       f"log_stderror=yes\ndebug=0\nrequest_route {{\n  forward(\"127.0.0.1\", {uas_port});\n  exit;\n}}\n")
        srv = subprocess.Popen([kam_bin, "-f", str(cfg), *KAM_ARGS], stdout=subprocess.DEVNULL,
                               stderr=open(d / "kamailio.log", "wb"))
        started.append(srv)
        time.sleep(1.0)
    return srv


def _one(tmp, rate, seconds, mode, server="screen", kam_bin=None):
    calls = max(2, int(rate * seconds))
    uas_port, port = _free_udp(), _free_sip_port()
    d = tmp / f"{server}_{mode}_{rate}"
    d.mkdir(parents=True, exist_ok=True)
    n_allowed = calls if mode == "allowed" else calls // 2
    uas = subprocess.Popen(["sipp", "-sf", str(SC / "uas.xml"), "-i", "127.0.0.1", "-ci", "127.0.0.1", "-p", str(uas_port),
                            "-timeout", f"{int(seconds + 40)}s", "-nostdin", "-m", str(n_allowed)],
                           cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # every process of the element (Kamailio forks its workers), in ns (schedstat), and in 10-ms ticks as a check
    fine = lambda pid: tree_cpu_seconds(pid, own=run_seconds)
    ticks = tree_cpu_seconds
    procs = [uas]
    try:
        # started inside the try: a SIGTERM (SystemExit, util.exit_on_sigterm) while serve loads stops it too
        srv = _start_server(server, d, port, uas_port, tmp, kam_bin, started=procs)
        time.sleep(0.3)
        if srv.poll() is not None:
            raise RuntimeError(f"{server} exited at start (status {srv.returncode}); see {d}")
        c0, k0 = fine(srv.pid), ticks(srv.pid)
        t0 = time.perf_counter()
        # each UAC into `procs` as it starts: an interrupt (Ctrl-C, SIGTERM) while they run stops them too
        uacs = [_sipp_uac(d, "allowed", port, uas_port, "uac_call.xml", "0901234567",
                          rate if mode == "allowed" else max(1, rate // 2), n_allowed)]
        procs += uacs
        if mode == "mixed":
            uacs.append(_sipp_uac(d, "blocked", port, uas_port, "uac_blocked.xml", "0987000666",
                                  max(1, rate // 2), calls - n_allowed, extra=("-key", "symbol", "SENDER_BLACKLISTED")))
            procs.append(uacs[-1])
        for u in uacs:
            try:
                u.wait(timeout=seconds + 70)
            except subprocess.TimeoutExpired:
                u.kill()
        wall = time.perf_counter() - t0
        cpu, cpu_ticks = fine(srv.pid) - c0, ticks(srv.pid) - k0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)                  # serve drains for up to 10 s
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()                    # gone before the next run takes the same data directory
    a = _stats(d / "allowed")
    b = _stats(d / "blocked") if mode == "mixed" else {"ok": 0, "failed": 0, "rtt_ms": []}
    ok = a["ok"] + b["ok"]
    return {"calls": calls, "ok": ok, "failed": a["failed"] + b["failed"] + max(0, calls - ok - a["failed"] - b["failed"]),
            "cps": ok / wall, "wall_s": wall, "server_cpu_s": cpu, "server_cpu_s_ticks": cpu_ticks,
            "invite_to_200_ms": pct(a["rtt_ms"])}
