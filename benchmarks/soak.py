"""Soak with churn: `telfilter serve` (SMPP + SIP + /metrics + control socket) under moderate steady load
while everything around it comes and goes, sampled every `--sample` seconds.

    python -m benchmarks.soak [--minutes 25] [--rate 500] [--cps 20] [--out DIR] [--port-base 28000]

What runs at the same time, all on 127.0.0.1 (ports --port-base to --port-base + 5):
- steady ESME: `--binds` transceivers of account `steady`, `--rate` submit_sm/s of the realistic mix
  (benchmarks.traffic, fresh text each), every one asking for a receipt; each answer matched to its request by
  sequence_number (a second answer is `unexpected`; one still owed at the end is `unanswered`);
- churn ESMEs of account `churn`: a new connection every `--churn-every` s (each its own source port) that binds,
  sends 5 submit_sm with receipts and unbinds; every 5th drops the TCP connection with its window open instead, every
  5th binds with a wrong password. Their receipts (the SMSC sends them `--receipt-delay` s late) mostly find no bind:
  they are held for the next churn bind, which must answer them;
- the SMSC simulator (engine/smpp_proxy/simulator.py) in its own process, killed (SIGKILL) every `--smsc-every` s and
  restarted 5 s later; it injects `--mo-rate` 5656 MO/s from distinct numbers (DK DNC, HUY DNC of an earlier one,
  S <number> <text>);
- sipp UAC -> serve's SIP screen -> sipp UAS at `--cps` calls/s;
- `telfilter ctl reload` every `--reload-every` s; the verdict log renamed and SIGUSR2 every `--reopen-every` s.
Sampled: serve's RSS, open fds, threads, CPU per answered submit_sm, steady submit_sm round trip p50/p99, every
/metrics gauge and counter, `ctl stats`. Written to OUT: samples.jsonl, summary.json (first/last-quarter slopes,
answer accounting, the verdict log's lines against the last /metrics, taken once every peer has stopped
(`verdict_lines_all_counted`: every line but a cancel_sm's is in telfilter_verdicts_total or
telfilter_calls_unsent_total), service-log lines at WARNING or above), soak.png (RSS, fds, threads, p99 over time),
serve.log.
Bounded: every load stops at --minutes, sipp by -m and -timeout; the servers it starts, it stops.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .soak_peers import _churn, _smsc, _steady
from .util import cpu_seconds, out_dir, pct, positive, stop_all

SC = Path(__file__).resolve().parent / "sipp"
ROOT = Path(__file__).resolve().parent.parent           # the checkout whose engine serves


# ------------------------------------------------------------------ sampling
def _proc(pid) -> dict:
    with open(f"/proc/{pid}/status") as f:
        st = dict(line.split(":", 1) for line in f if ":" in line)
    return {"rss_mb": int(st["VmRSS"].split()[0]) / 1024, "threads": int(st["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "cpu_s": cpu_seconds(pid)}


_METRIC = re.compile(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$")


def _metrics(port) -> dict:
    out = {}
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError as e:
        return {"_error": str(e)}
    for line in body.splitlines():
        m = _METRIC.match(line)
        if m and "_bucket{" not in m.group(1):
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def _ctl(a, sock, *args, timeout=30) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "engine.cli", "ctl", "--socket", str(sock), *args],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


# ------------------------------------------------------------------ the run
def _start_smsc(a, first):
    return subprocess.Popen([sys.executable, "-m", "benchmarks.soak", "--smsc-child", str(a.port_base),
                             str(a.mo_rate), str(first), str(a.receipt_delay)], stderr=open(a.out / "smsc.log", "ab"),
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))


class ServeDidNotStart(RuntimeError):
    """serve stopped at its start (a port of --port-base..+5 in use, ...): said in one line, not a traceback."""


async def _run(a) -> dict:
    from .traffic import records
    P = a.port_base
    ports = {"smsc": P, "smpp": P + 1, "sip": P + 2, "uas": P + 3, "uac": P + 4, "metrics": P + 5}
    data, sock, vlog = a.out / "data", a.out / "control.sock", a.out / "verdicts.jsonl"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    for f in a.out.glob("verdicts.jsonl*"):
        f.unlink()
    acc = a.out / "accounts"
    acc.write_text("steady:pwsteady\nchurn:pwchurn\n")
    acc.chmod(0o600)
    smsc = _start_smsc(a, 0)
    procs = [smsc]
    stats: collections.Counter = collections.Counter()
    samples, lat = [], []
    events, end_metrics = [], {}
    try:
        time.sleep(1.0)
        serve = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(data), "--smpp-listen",
             f"127.0.0.1:{ports['smpp']}", "--smsc", f"127.0.0.1:{ports['smsc']}", "--esme-accounts-file", str(acc),
             "--sip-listen", f"127.0.0.1:{ports['sip']}", "--sip-next-hop", f"127.0.0.1:{ports['uas']}",
             "--sip-allow-networks", "127.0.0.0/8", "--metrics-listen", f"127.0.0.1:{ports['metrics']}",
             "--control-socket", str(sock), "--log", str(vlog), "--ready-file", str(a.out / "ready")],
            stderr=open(a.out / "serve.log", "wb"), stdout=subprocess.DEVNULL, cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)))
        procs.append(serve)
        end = time.time() + 60
        while not (a.out / "ready").exists() and time.time() < end and serve.poll() is None:
            await asyncio.sleep(0.1)
        if not (a.out / "ready").exists():
            log = (a.out / "serve.log").read_text(errors="replace").strip().splitlines()
            raise ServeDidNotStart(f"serve did not start; see {a.out / 'serve.log'}" + (f": {log[-1]}" if log else ""))
        await asyncio.sleep(1.0)
        seconds = a.minutes * 60
        calls = int(a.cps * seconds)
        sipd = a.out / "sipp"
        sipd.mkdir(exist_ok=True)
        uas = subprocess.Popen(["sipp", "-sf", str(SC / "uas.xml"), "-i", "127.0.0.1", "-ci", "127.0.0.1",
                                "-p", str(ports["uas"]),
                                "-timeout", f"{int(seconds + 60)}s", "-nostdin", "-m", str(calls)],
                               cwd=sipd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        uac = subprocess.Popen(["sipp", f"127.0.0.1:{ports['uas']}", "-sf", str(SC / "uac_call.xml"), "-i",
                                "127.0.0.1", "-ci", "127.0.0.1", "-p", str(ports["uac"]), "-rsa", f"127.0.0.1:{ports['sip']}", "-m",
                                str(calls), "-r", str(a.cps), "-l", str(max(50, a.cps * 5)), "-s", "0912345678",
                                "-key", "caller", "0901234567", "-timeout", f"{int(seconds + 60)}s", "-nostdin",
                                "-trace_stat", "-stf", str(sipd / "stat.csv"), "-fd", "10", "-recv_timeout", "5s"],
                               cwd=sipd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs += [uas, uac]
        recs = iter(records(10**9, seed=a.seed, t0=None))
        stop = asyncio.Event()
        loads = [asyncio.ensure_future(_steady(ports["smpp"], a, recs, stats, lat, stop)),
                 asyncio.ensure_future(_churn(ports["smpp"], a, recs, stats, stop))]
        t0 = time.time()
        nxt = {"reload": a.reload_every, "reopen": a.reopen_every, "smsc": a.smsc_every}
        last = None
        rot = restarts = 0
        reopened = None
        while time.time() - t0 < seconds:
            await asyncio.sleep(a.sample - (time.time() - t0) % a.sample)
            for t in loads:
                if t.done() and t.exception():
                    raise t.exception()
            el = time.time() - t0
            if el >= nxt["reload"]:
                nxt["reload"] += a.reload_every
                rc, out = await asyncio.to_thread(_ctl, a, sock, "reload")
                events.append({"t": el, "event": "reload", "rc": rc})
                if rc != 0:
                    stats["reload_failed"] += 1
                    events[-1]["out"] = out[-500:]
            if el >= nxt["reopen"]:
                nxt["reopen"] += a.reopen_every
                rot += 1
                os.rename(vlog, f"{vlog}.{rot}")
                serve.send_signal(signal.SIGUSR2)
                events.append({"t": el, "event": "reopen"})
                reopened = (time.time(), events[-1])
            if el >= nxt["smsc"]:
                nxt["smsc"] += a.smsc_every
                smsc.kill()
                smsc.wait()
                events.append({"t": el, "event": "smsc_killed"})
                await asyncio.sleep(5)
                restarts += 1
                smsc = _start_smsc(a, restarts * 10**6)
                procs.append(smsc)
            if reopened is not None and time.time() - reopened[0] > 2:
                reopened[1]["reopened"] = vlog.exists()          # the new file, opened by SIGUSR2
                reopened = None
            s = {"t": round(time.time() - t0, 1), **_proc(serve.pid)}
            s["answered"] = stats["answered"]
            s.update({f"lat_{k}_ms": v and v * 1e3 for k, v in pct(lat, (50, 99)).items()})
            s["lat_n"] = len(lat)
            lat.clear()
            m = await asyncio.to_thread(_metrics, ports["metrics"])
            s["metrics"] = m
            s["tables"] = {k[len('telfilter_smpp_table_entries{table="'):-2]: v for k, v in m.items()
                           if k.startswith("telfilter_smpp_table_entries{")}
            rc, out = await asyncio.to_thread(_ctl, a, sock, "stats")
            try:
                s["ctl"] = json.loads(out) if rc == 0 else {"_rc": rc}
            except ValueError:
                s["ctl"] = {"_out": out[-300:]}
            if last:
                dn = s["answered"] - last["answered"]
                s["cpu_us_per_msg"] = (s["cpu_s"] - last["cpu_s"]) / dn * 1e6 if dn else None
            s["stats"] = dict(stats)
            samples.append(s)
            last = s
            with open(a.out / "samples.jsonl", "a") as f:
                f.write(json.dumps(s) + "\n")
            print(progress_line(s), file=sys.stderr, flush=True)
        stop.set()
        await asyncio.gather(*loads)
        # the SMSC (its MO) and sipp too: no verdict line is written after the last scrape
        await asyncio.to_thread(stop_all, [p for p in procs if p is not serve])
        s = _proc(serve.pid)
        await asyncio.sleep(1.0)                        # the verdict log's writer flushes
        end_metrics = await asyncio.to_thread(_metrics, ports["metrics"])
        serve.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(serve.wait, 30)
    finally:
        stop_all(procs)
    # one verdict line per verdict, across the renamed files (a reopen must lose none)
    logs = sorted(a.out.glob("verdicts.jsonl*"))
    accounting = log_against_metrics(logs, end_metrics)
    for f in logs:                                  # ~200 B a verdict: counted, then removed (the disk stays bounded)
        f.unlink()
    log = (a.out / "serve.log").read_text(errors="replace").splitlines()
    bad = [x for x in log if re.search(r" (WARNING|ERROR|CRITICAL) |Traceback", x)]
    return {"samples": samples, "events": events, "stats": {**stats, **accounting}, "serve_exit": rc, "final": s,
            "log_warnings_or_worse": bad, "sip": _sipp_stats(a.out / "sipp" / "stat.csv")}


def progress_line(s: dict) -> str:
    """One sample as the line printed every --sample seconds: each figure with its unit, – when not measured."""
    p99, cpu = s.get("lat_p99_ms"), s.get("cpu_us_per_msg")
    return (f"t={s['t']:.0f}s rss={s['rss_mb']:.1f} MB fds={s['fds']} threads={s['threads']} "
            f"p99={'–' if p99 is None else f'{p99:.2f} ms'} cpu={'–' if cpu is None else f'{cpu:.1f} µs/submit_sm'}")


def log_against_metrics(files, metrics: dict) -> dict:
    """The verdict log's lines in `files` set against a /metrics scrape (`_metrics`): every line but a cancel_sm of
    ours (no verdict: its message had one) is counted once, a verdict (`telfilter_verdicts_total`, the SMS and calls
    answered unjudged among them, action refuse) or a SIP call that never left (`telfilter_calls_unsent_total`)."""
    lines = cancels = 0
    for f in files:
        with open(f, "rb") as fh:
            for line in fh:
                lines += 1
                cancels += b'"kind": "cancel"' in line[:80]     # (its second member, after "ts")
    counted = int(sum(v for k, v in metrics.items()
                      if k.startswith(("telfilter_verdicts_total{", "telfilter_calls_unsent_total{"))))
    return {"verdict_lines": lines, "cancel_lines": cancels, "verdicts_counted": counted,
            "verdict_lines_all_counted": lines - cancels == counted}


def _sipp_stats(f: Path) -> dict:
    import csv
    if not f.exists():
        return {}
    rows = list(csv.reader(f.open(), delimiter=";"))
    if len(rows) < 2:
        return {}
    h, r = rows[0], rows[-1]
    return {k: r[h.index(k)] for k in ("TotalCallCreated", "SuccessfulCall(C)", "FailedCall(C)",
                                       "Retransmissions(C)") if k in h}


def _slope(samples, key, frac=0.25):
    """Per-hour slope of a least-squares line over the last `frac` of the run (and over the first)."""
    import numpy as np
    pts = [(s["t"], s[key]) for s in samples if s.get(key) is not None]
    if len(pts) < 8:
        return None
    k = max(3, int(len(pts) * frac))
    f = lambda p: float(np.polyfit([x for x, _ in p], [y for _, y in p], 1)[0] * 3600)
    return {"first": f(pts[:k]), "last": f(pts[-k:]), "min": min(y for _, y in pts), "max": max(y for _, y in pts),
            "start": pts[0][1], "end": pts[-1][1]}


def _plot(res, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    S = res["samples"]
    t = [s["t"] / 60 for s in S]
    fig, ax = plt.subplots(5, 1, figsize=(10, 13), sharex=True)
    for k in ("message_ids", "held_receipts", "sessions", "concat_judged"):
        ax[4].plot(t, [s.get("tables", {}).get(k) for s in S], ".-", label=k)
    ax[4].set_yscale("symlog")
    ax[4].set_ylabel("table entries")
    ax[4].legend()
    for a_, key, lab in ((ax[0], "rss_mb", "RSS MB"), (ax[1], "fds", "open fds"), (ax[2], "threads", "threads"),
                         (ax[3], "lat_p99_ms", "submit_sm ms")):
        a_.plot(t, [s.get(key) for s in S], ".-", label="p99" if key == "lat_p99_ms" else None)
        a_.set_ylabel(lab)
        for e in res["events"]:
            if e["event"] == "smsc_killed":
                a_.axvline(e["t"] / 60, color="r", alpha=0.3)
    ax[3].plot(t, [s.get("lat_p50_ms") for s in S], ".-", label="p50")
    ax[3].legend()
    ax[3].set_yscale("log")
    ax[4].set_xlabel("minutes (red: SMSC killed; reloads every --reload-every s)")
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=90)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--smsc-child"]:
        port, rate, first, rd = argv[1:5]
        asyncio.run(_smsc(int(port), float(rate), int(first), float(rd)))
        return 0
    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=positive(float), default=25, help="load duration (default 25)")
    ap.add_argument("--rate", type=positive(float), default=500, help="steady submit_sm/s (default 500)")
    ap.add_argument("--binds", type=positive(int), default=2, help="steady transceiver binds (default 2)")
    ap.add_argument("--window", type=positive(int), default=50, help="steady outstanding submit_sm per bind (default 50)")
    ap.add_argument("--cps", type=positive(int), default=20, help="SIP calls/s through the screen (default 20)")
    ap.add_argument("--mo-rate", type=positive(float, zero=True), default=5, help="5656 MO/s from the SMSC (default 5)")
    ap.add_argument("--receipt-delay", type=positive(float, zero=True), default=1.0, help="SMSC receipt delay, s (default 1)")
    ap.add_argument("--churn-every", type=positive(float), default=2, help="a churn bind every N s (default 2)")
    ap.add_argument("--reload-every", type=positive(float), default=60, help="ctl reload every N s (default 60)")
    ap.add_argument("--reopen-every", type=positive(float), default=120, help="log rename + SIGUSR2 every N s (default 120)")
    ap.add_argument("--smsc-every", type=positive(float), default=240, help="SMSC killed and restarted every N s (default 240)")
    ap.add_argument("--sample", type=positive(float), default=10, help="sampling period, s (default 10)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--port-base", type=int, default=28000, help="loopback ports PORT_BASE..+5 (default 28000)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/soak_out"), help="output directory (default /tmp/soak_out)")
    a = ap.parse_args(argv)
    if not 1024 <= a.port_base <= 65535 - 5:
        ap.error(f"--port-base {a.port_base}: its six ports must be 1024-65535")
    out_dir(ap, a.out)
    # an earlier run's files in the same --out: its SMSC log (appended to across the SMSC's restarts), sipp's
    # statistics, serve's ready file (taken for this serve's) and samples
    for name in ("samples.jsonl", "smsc.log", "ready", "sipp/stat.csv", "summary.json", "soak.png"):
        (a.out / name).unlink(missing_ok=True)
    try:
        res = asyncio.run(_run(a))
    except ServeDidNotStart as e:
        print(f"python -m benchmarks.soak: {e}", file=sys.stderr)
        return 1
    summ = {k: v for k, v in res.items() if k != "samples"}
    for key in ("rss_mb", "fds", "threads", "lat_p99_ms", "cpu_us_per_msg"):
        summ[f"slope_per_hour_{key}"] = _slope(res["samples"], key)
    (a.out / "summary.json").write_text(json.dumps(summ, indent=1))
    try:
        _plot(res, a.out)
    except ImportError:
        print("matplotlib missing: no soak.png", file=sys.stderr)
    print(json.dumps({k: v for k, v in summ.items() if k not in ("events",)}))
    return 0


if __name__ == "__main__":
    from .util import run_main
    sys.exit(run_main(main, "python -m benchmarks.soak"))     # SIGTERM, Ctrl-C: what it started is stopped
