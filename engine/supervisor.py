"""`telfilter serve --workers N`: N serve processes on the same SMPP port, SIP in the first.

Theory of operation. The supervisor is a small process that judges nothing: it starts N
children (`python -m engine.cli serve` with the same arguments and `--workers 1`), each of
which binds the SMPP port with SO_REUSEPORT, so the kernel spreads new connections over them.
Worker 0 alone screens SIP (_child_argv: a call's state lives in one process). The children
share judging state through the Redis store (`--state redis://…`, required: N processes with N
embedded stores would be N separate policies) and DNC changes through its stream
(engine/state/replication.py).

Worker i gets TELFILTER_WORKER=i. Worker 0 is the one that owns the data dir's writes besides
the journal (replication's id file and journal of remote changes, CLI diffs) and the control
socket `DATA_DIR/control.sock` and `--metrics-listen`; worker i > 0 answers on
`<control socket stem>.w<i><suffix>` (control.w<i>.sock by default) and has no metrics listener. `--ready-file F` is written by the supervisor
once every worker has written `F.w<i>` (its port lines).

A worker stops (SIGTERM: it drains) when its supervisor dies, even by kill -9 (Linux's
PR_SET_PDEATHSIG, set by the worker as it starts; it also checks that the supervisor that started
it is still its parent), so a restarted supervisor never shares its ports with orphans.
A worker that exits while the supervisor is not stopping is restarted (after 1 s, doubling
up to 30 s while it keeps dying within 10 s of its start) and the event is logged. SIGTERM /
SIGINT are passed to every worker (each drains as a single serve does) and the supervisor
exits when they have; SIGHUP, SIGUSR1 and SIGUSR2 are passed on.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .servicelog import life

log = logging.getLogger("telfilter")


def worker_index() -> int:
    try:
        return int(os.environ.get("TELFILTER_WORKER", "0"))
    except ValueError:
        return 0


def die_with_supervisor() -> None:
    """In a worker: SIGTERM (a drain) when the supervisor dies, and at once if it has died already."""
    from .parentdeath import die_with_parent
    sup = os.environ.get("TELFILTER_SUPERVISOR", "")
    if sup.isdigit() and not die_with_parent(signal.SIGTERM, int(sup)):
        os.kill(os.getpid(), signal.SIGTERM)


def _child_argv(i: int) -> list[str]:
    """Worker i's command line: the same, with `--workers 1` (argparse keeps the last: the child is one process).
    Only worker 0 screens SIP: what a call's messages tell the screen (where its INVITE went, its answer, a
    challenge that lets it come again, its verdict for retransmissions) is kept in that process, and the kernel
    spreads datagrams by source -- a call's responses (from the next hop) would reach another worker than its
    INVITE (from the caller): re-INVITEs of answered calls were judged again (an ad call's session refresh refused
    by its own count) and call durations lost."""
    extra = ["--workers", "1"] if i == 0 else ["--workers", "1", "--sip-listen", "off"]
    return [sys.executable, "-m", "engine.cli", *sys.argv[1:], *extra]


def supervise(args) -> int:
    n = args.workers
    ready = getattr(args, "ready_file", None)
    procs: dict[int, subprocess.Popen] = {}
    started: dict[int, float] = {}
    backoff: dict[int, float] = {}
    stopping = False
    cwd = os.getcwd()

    def start(i: int) -> None:
        if stopping:                    # a SIGTERM during start-up: the workers not started yet never are
            return
        env = dict(os.environ, TELFILTER_WORKER=str(i), TELFILTER_WORKERS=str(n), TELFILTER_SUPERVISOR=str(os.getpid()))
        procs[i] = subprocess.Popen(_child_argv(i), env=env, cwd=cwd)
        started[i] = time.monotonic()
        life.info("worker %d started (pid %d)", i, procs[i].pid)

    def forward(sig, _frame=None):
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for p in procs.values():
            if p.poll() is None:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    if ready:
        for i in range(n):
            Path(f"{ready}.w{i}").unlink(missing_ok=True)
    for i in range(n):
        start(i)
    ready_written = False
    due: dict[int, float] = {}
    while True:
        time.sleep(0.1)
        if stopping:
            break
        for i, p in list(procs.items()):
            rc = p.poll()
            if rc is None or i in due:
                continue
            lived = time.monotonic() - started[i]
            if rc == 0:
                # a worker only exits 0 when it was stopped on purpose (`telfilter ctl drain` reaches
                # worker 0's socket): the pool drains with it, as on SIGTERM, rather than restart it
                life.info("worker %d stopped (status 0): draining the pool", i)
                stopping = True
                forward(signal.SIGTERM)
                break
            if rc == 2 and not ready_written:
                # a start-up error (bad config, port in use): every worker would hit it again
                log.error("worker %d failed to start (status 2): stopping the pool", i)
                stopping = True
                forward(signal.SIGTERM)
                break
            b = backoff.get(i, 1.0) if lived < 10 else 1.0
            backoff[i] = min(b * 2, 30.0)
            due[i] = time.monotonic() + b
            log.error("worker %d (pid %d) exited with status %s after %.1fs; restarting in %.0fs",
                      i, p.pid, rc, lived, b)
        for i, t in list(due.items()):
            if time.monotonic() >= t and not stopping:
                del due[i]
                start(i)
        if ready and not ready_written and all(Path(f"{ready}.w{i}").exists() for i in range(n)):
            Path(ready).write_text(Path(f"{ready}.w0").read_text() + f"workers {n}\n")
            ready_written = True
            life.info("%d workers ready", n)
    rc = 2 if not ready_written and any(p.poll() == 2 for p in procs.values()) else 0
    deadline = time.monotonic() + getattr(args, "drain_timeout", 10.0) + 15
    for i, p in procs.items():
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker %d did not stop: killing it", i)
            p.kill()
            p.wait()
            rc = rc or 1                # a worker that had to be killed did not drain: not a clean stop
        rc = rc or (p.returncode if p.returncode and p.returncode > 0 else 0)
    life.info("all workers stopped")
    if ready:
        for f in [ready, *(f"{ready}.w{i}" for i in range(n))]:
            Path(f).unlink(missing_ok=True)         # not ready any more (a script waiting for it must not see it)
    return rc
