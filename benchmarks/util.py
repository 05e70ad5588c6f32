"""Small helpers shared by the benchmark scenarios."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


def rss_mb(pid="self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid) -> float:
    """utime + stime of a process (and its reaped children are not counted)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / tck


def pct(values, qs=(50, 99, 99.9)) -> dict:
    if len(values) == 0:
        return {f"p{q:g}": None for q in qs}
    a = np.asarray(values, dtype=float)
    return {f"p{q:g}": float(np.percentile(a, q)) for q in qs}


def run_stopping_gently(cmd: list, timeout=None, **popen_args) -> subprocess.CompletedProcess:
    """subprocess.run(cmd), but a child stopped (its time out, or this process stopped: SIGTERM, Ctrl-C) gets SIGTERM
    first, SIGKILL only if still running 10 s later: subprocess.run's SIGKILL left a benchmark child's
    TemporaryDirectory (a seeded data dir: lists/*.snap) in /tmp."""
    with subprocess.Popen(cmd, **popen_args) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException:
            p.terminate()
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
            raise
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


# Popen arguments of a child the tool stops itself (stop_all, or kill in its `finally`): in a process group of its own,
# so a terminal's Ctrl-C (SIGINT to the foreground group) reaches the tool alone and never a child still importing
# its modules (a KeyboardInterrupt traceback above the tool's one line, tests/test_bench_ctrl_c_group.py)
OWN_GROUP = {"process_group": 0}


def stop_all(procs, timeout: float = 20) -> None:
    """SIGTERM to each child still running, then wait for each: SIGKILL to one still running `timeout` s later."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def child(module: str, *args, timeout=600) -> dict:
    """Run `python -m module args` and parse the JSON object it prints last."""
    p = run_stopping_gently([sys.executable, "-m", module, *map(str, args)], timeout=timeout,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def exit_on_sigterm():
    """SIGTERM (kill PID, a CI job cancelled, timeout(1) given one process) becomes SystemExit in the main thread,
    so the `finally` blocks that stop the servers a benchmark started run; by default Python dies at once and
    they run on, reparented to init. Returns the handler it replaced (for signal.signal)."""
    def stop(signum, _frame):
        raise SystemExit(128 + signum)
    return signal.signal(signal.SIGTERM, stop)


def _hold_stops():
    """Hold SIGTERM and SIGINT (in the main thread, where Python runs its handlers) until the returned function is
    called: it puts the handlers back and delivers what arrived meanwhile. For a step that makes something (a
    directory, a child) and the `try` that removes it: a stop between them (a few bytecodes) left it behind."""
    main = threading.current_thread() is threading.main_thread()
    held = []
    before = {s: signal.signal(s, lambda signum, _frame: held.append(signum))
              for s in ((signal.SIGTERM, signal.SIGINT) if main else ()) if signal.getsignal(s) is not None}

    def deliver():
        for s, handler in before.items():
            signal.signal(s, handler)
        for s in held:
            signal.raise_signal(s)
    return deliver


@contextlib.contextmanager
def killed_child(cmd: list, **popen_args):
    """subprocess.Popen(cmd, **popen_args), killed (SIGKILL) and reaped when the `with` ends, however it ends. Stop
    signals are held across the start (`_hold_stops`, as scratch_dir does across its mkdir): a SIGTERM landing
    between the Popen and the `try` that kills the child left it running, reparented to init."""
    deliver = _hold_stops()
    try:
        p = subprocess.Popen(cmd, **popen_args)
    except BaseException:
        deliver()
        raise
    try:
        deliver()
        yield p
    finally:
        p.kill()
        p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None:
                f.close()


@contextlib.contextmanager
def scratch_dir(keep_failed: bool = False, keep_done: bool = False, **kw):
    """A directory from `tempfile.mkdtemp(**kw)`, removed when the `with` ends, made with SIGTERM and SIGINT held
    until its removal is in force: a stop signal landing between the directory's mkdir and the `try` that removes
    it (a few bytecodes, where a benchmark descheduled right after the mkdir is when a watcher that saw the
    directory appear signals it) left it in $TMPDIR. A signal held is delivered inside that `try`, the directory
    removed as the SystemExit unwinds. `keep_failed`: kept when the `with` ends on an error (an Exception, not a
    stop), whose message names the logs there. `keep_done`: kept when the `with` ends without one (an output the
    caller names, callgrind's dumps say), removed only on an error or a stop."""
    deliver = _hold_stops()
    try:
        name = tempfile.mkdtemp(**kw)
    except BaseException:
        deliver()
        raise
    keep = False
    try:
        deliver()
        yield name
        keep = keep_done
    except Exception:
        keep = keep_failed
        raise
    finally:
        if not keep:
            shutil.rmtree(name, ignore_errors=True)


def run_main(main, name: str) -> int:
    """A benchmark tool's `main()` as its command runs it: SIGTERM as SystemExit (exit_on_sigterm), and Ctrl-C said
    in one line with exit 130 instead of a KeyboardInterrupt traceback; either way the `finally` blocks have stopped
    what it started and removed its scratch files."""
    exit_on_sigterm()
    try:
        return main()
    except KeyboardInterrupt:
        print(f"{name}: interrupted (Ctrl-C): what it started is stopped; no figures", file=sys.stderr)
        return 130


def machine() -> dict:
    import platform
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform()}


def positive(kind=int, zero=False):
    """An argparse type: a number of `kind` above 0 (or ≥ 0 with `zero`); a count, rate or duration of 0 or below
    gave a figure from nothing (0.0 µs per message) or a run that never ended."""
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: {s!r}") from None
        if v < 0 or (v == 0 and not zero) or v != v:
            raise argparse.ArgumentTypeError(f"must be {'≥ 0' if zero else 'above 0'}: {s!r}")
        return v
    parse.__name__ = kind.__name__
    return parse


def checkout(s):
    """An argparse type: a checkout directory (one holding engine/)."""
    from pathlib import Path
    if not (Path(s) / "engine").is_dir():
        raise argparse.ArgumentTypeError(f"not a checkout (no engine/ in it): {s!r}")
    return s


def config_dir(s):
    """An argparse type: a telfilter config directory (one holding telfilter.toml), made absolute (a benchmark's
    child process runs in the checkout it measures, not where the option was typed)."""
    from pathlib import Path
    if not (Path(s) / "telfilter.toml").is_file():
        raise argparse.ArgumentTypeError(f"not a config directory (no telfilter.toml in it): {s!r}")
    return str(Path(s).resolve())


def out_file(s):
    """An argparse type: a file the results will be written to, in a directory that exists and can be written
    (said before minutes of measuring, not as a traceback after them)."""
    import os
    from pathlib import Path
    d = Path(s).parent
    if not d.is_dir() or not os.access(d, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {s!r}: {d} is not a directory this user can write")
    return s


def out_dir(ap: argparse.ArgumentParser, d) -> None:
    """Make the results directory `d` now, or stop with a usage error naming why (exit 2)."""
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / ".writable").touch()
        (d / ".writable").unlink()
    except OSError as e:
        ap.error(f"cannot write the results to {d} ({e.strerror or e}): give --out DIR")


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *a):
        self.s = time.perf_counter() - self.t0


def run_seconds(pid) -> float:
    """On-CPU time of a process's live threads in ns resolution (/proc/PID/task/*/schedstat, first field),
    for short runs where /proc/PID/stat's 10 ms ticks are too coarse. Threads that already exited are not
    counted (stat's totals keep them), so cpu_seconds stays the cross-check."""
    total = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return cpu_seconds(pid)
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return total


def tree_cpu_seconds(pid, own=None) -> float:
    """CPU time of a process and of its live descendants (Kamailio works in forked children);
    `own` measures each process (default cpu_seconds)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    total, todo = 0.0, [int(pid)]
    while todo:
        p = todo.pop()
        try:
            total += (own or cpu_seconds)(p)
        except OSError:
            continue
        todo += kids.get(p, [])
    return total
