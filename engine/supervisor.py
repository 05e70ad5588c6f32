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
`<control socket stem>.w<i><suffix>` (control.w<i>.sock by default) and has no metrics listener: worker 0's
/metrics and /healthz ask it over that socket (engine/metrics_pool.py). `--ready-file F` is written by the supervisor
once every worker has written `F.w<i>` (its port lines) and said READY=1, before the pool's READY=1.

A worker stops (SIGTERM: it drains) when its supervisor dies, even by kill -9 (Linux's
PR_SET_PDEATHSIG, set by the worker as it starts; it also checks that the supervisor that started
it is still its parent), so a restarted supervisor never shares its ports with orphans.
A worker that exits while the supervisor is not stopping is restarted (after 1 s, doubling
up to 30 s while it keeps dying within 10 s of its start) and the event is logged. SIGTERM /
SIGINT reach every worker as one SIGTERM (each drains as a single serve does) and the supervisor
exits when they have; SIGHUP, SIGUSR1 and SIGUSR2 are passed on. A worker ignores SIGINT: a terminal's Ctrl-C
reaches every process of its foreground group at once, so each worker had one SIGINT from the terminal and one
from the supervisor, and the second cut its drain short (submits in flight left unanswered); now each Ctrl-C is one
SIGTERM per worker, the first a drain, a second one the stop at once that a single serve's second signal is.

Under systemd Type=notify ($NOTIFY_SOCKET set) the supervisor is the unit's main process and notifies for the pool
(sdnotify.PoolNotify): the workers notify it on a private socket, it says READY=1 once every worker has, RELOADING=1
/ READY=1 around a SIGHUP, STOPPING=1 at the stop, and pings the watchdog from this loop (so it keeps pinging while
a worker restarts). A worker whose own pings stop for $WATCHDOG_USEC (its event loop stuck) is sent SIGABRT, as
systemd would, then SIGKILL after ABORT_GRACE_S, and restarted like a worker that died; the others serve on.

Every worker says READY=1 on that private socket, with or without systemd, and must within --start-timeout of its
start (default START_TIMEOUT_S), at the pool's first start as after a restart: one stuck starting (its state or lists
on a blocked disk, a lock, a Redis that accepts and never answers) is killed as a stuck one is, and restarted with the
backoff of a worker that keeps dying (a start that never came up counts as dying young, however long it took). Before,
it was never killed: the pool served with N-1 workers for good, and under systemd said "restarting" for good.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .durable import replace_file
from .sdnotify import PoolNotify
from .servicelog import life

log = logging.getLogger("telfilter")


ABORT_GRACE_S = 5.0      # SIGABRT to SIGKILL for a stuck worker (systemd's TimeoutAbortSec=; shorter: the pool waits)
# A worker's start to its READY=1 (--start-timeout). A start takes ~3.5 s here (2 workers on 2 cores); its bounded
# waits on Redis add up to ~15 s (the catch-ups of shared history, DNC changes and message ids, 5 s each; a single
# serve's embedded state would replay up to ~4.5 s instead: 64 MB of journal). 60 s is several times all of it on a
# loaded host, and under the shipped unit's TimeoutStartSec=120 a worker stuck at the pool's first start is retried
# once before systemd fails the unit.
START_TIMEOUT_S = 60.0
# what the supervisor's systemd gave it, not its workers' (sd_notify(3)'s unset_environment)
_SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


PASSED_ON = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)     # a reload, a log reopen: passed on to the workers
STOPS = (signal.SIGTERM, signal.SIGINT)                           # a stop: passed on as SIGTERM (a starting worker's end)


def _ignore_passed_signals() -> None:
    """In a worker between fork and exec: the signals passed on are ignored from the exec on (an ignored disposition
    survives execve(2), a handler does not), until the worker's loop takes them -- as cmd_serve ignores them itself
    until then. Their default action is to terminate: a SIGHUP passed on while a worker's Python was starting killed it
    (status -1) and it was restarted a second later. SIGINT is ignored for good (the interpreter then installs no
    KeyboardInterrupt handler, serve none of its own: serve.stop_signals): a worker's stop is the supervisor's SIGTERM.
    (preexec_fn: the supervisor runs no threads.)"""
    for sig in (*PASSED_ON, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def worker_index() -> int:
    try:
        return int(os.environ.get("TELFILTER_WORKER", "0"))
    except ValueError:
        return 0


def pool_worker() -> int | None:
    """This process's worker index in a `serve --workers N` pool, None outside one (what its service-log lines and
    `ctl stats` name)."""
    return worker_index() if "TELFILTER_WORKERS" in os.environ else None


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
    start_timeout = getattr(args, "start_timeout", None) or START_TIMEOUT_S

    def write_ready() -> None:
        """--ready-file: worker 0's ports and the count, as the pool comes up, before its READY=1 (a single serve's
        too is written before its READY=1). Each worker wrote its own before its READY=1; one already stopping (a
        SIGTERM as the pool came up) removed it: not ready, nothing written."""
        if not ready or stopping:
            return
        try:
            text = Path(f"{ready}.w0").read_text()
        except FileNotFoundError:
            return
        replace_file(ready, (text + f"workers {n}\n").encode())     # whole or not at all

    notify = PoolNotify(n, start_timeout=start_timeout, before_ready=write_ready)
    aborted: dict[int, float] = {}              # stuck worker -> when SIGKILL follows its SIGABRT
    killed_why: dict[int, str] = {}             # stuck worker -> why it was killed (STATUS=, until it is restarted)
    reload_asked = False

    def start(i: int) -> None:
        if stopping:                    # a SIGTERM during start-up: the workers not started yet never are
            return
        env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_ENV}
        env.update(notify.env, TELFILTER_WORKER=str(i), TELFILTER_WORKERS=str(n), TELFILTER_SUPERVISOR=str(os.getpid()))
        procs[i] = subprocess.Popen(_child_argv(i), env=env, cwd=cwd, preexec_fn=_ignore_passed_signals)
        if stopping:    # a SIGTERM/SIGINT while Popen ran: `forward` passed it on to the others, not to this one yet
            procs[i].send_signal(signal.SIGTERM)    # (it served on; the stop SIGKILLed it at its deadline). Only
            # to it: a second to the others would cut their drains short
        started[i] = time.monotonic()
        notify.started(i, procs[i].pid)
        life.info("worker %d started (pid %d)", i, procs[i].pid)

    def abort(i: int, now: float, why: str, said: str) -> None:
        """A stuck worker: SIGABRT (as systemd's watchdog: a core dump where kept), SIGKILL ABORT_GRACE_S later."""
        p = procs[i]
        log.error("worker %d (pid %d) %s: SIGABRT, then SIGKILL in %.0fs, and a restart; the other workers serve on",
                  i, p.pid, said, ABORT_GRACE_S)
        p.send_signal(signal.SIGABRT)
        aborted[i] = now + ABORT_GRACE_S
        killed_why[i] = why

    def forward(sig, _frame=None):
        nonlocal stopping
        if sig in STOPS:
            stopping = True
            sig = signal.SIGTERM        # (a worker ignores SIGINT: a Ctrl-C reached it from the terminal too)
        for p in procs.values():
            if p.poll() is None:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass

    def reload(_sig, _frame):
        # passed on by the loop after its RELOADING=1: the workers' READY=1 that ends the reload comes after it
        nonlocal reload_asked
        reload_asked = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    signal.signal(signal.SIGHUP, reload)
    if ready:                                   # a killed pool's: not ready yet
        for f in [ready, *(f"{ready}.w{i}" for i in range(n))]:
            Path(f).unlink(missing_ok=True)
    for i in range(n):
        start(i)
    said_ready = False
    due: dict[int, float] = {}
    while True:
        time.sleep(0.1)
        if stopping:
            break
        if reload_asked:
            reload_asked = False
            notify.reloading()
            forward(signal.SIGHUP)
        now = time.monotonic()
        for i in notify.poll(now):
            if procs[i].poll() is None and i not in due and i not in aborted:
                abort(i, now, f"no watchdog ping in {notify.watchdog_s:.1f}s",
                      f"sent no watchdog ping in {notify.watchdog_s:.1f}s, $WATCHDOG_USEC (its event loop is stuck)")
        for i in notify.overdue(now):
            if procs[i].poll() is None and i not in due and i not in aborted:
                abort(i, now, f"not ready within {start_timeout:g}s",
                      f"not ready {start_timeout:g}s after its start (--start-timeout: stuck starting, e.g. reading "
                      "its state or lists, or waiting on a lock)")
        for i, t in list(aborted.items()):
            if procs[i].poll() is not None:
                del aborted[i]
            elif now >= t:
                log.error("worker %d (pid %d) still there %.0fs after SIGABRT: SIGKILL", i, procs[i].pid, ABORT_GRACE_S)
                procs[i].kill()
                del aborted[i]
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
            if rc == 2 and not notify.pool_ready:
                # a start-up error (bad config, port in use) at the pool's first start: every worker would hit it
                # again. Once the pool came up (every worker said READY=1) one is restarted with the backoff while
                # the others serve on (a config broken since is refused by reloads too: the running set stays).
                log.error("worker %d failed to start (status 2): stopping the pool", i)
                stopping = True
                forward(signal.SIGTERM)
                break
            # a start that never came up is a crash loop however long it took (a start deadline is longer than 10 s)
            b = backoff.get(i, 1.0) if lived < 10 or notify.starting(i) else 1.0
            backoff[i] = min(b * 2, 30.0)
            due[i] = time.monotonic() + b
            why = killed_why.pop(i, None)
            notify.exited(i, f"killed: {why}" if why else f"exited with status {rc}")
            log.error("worker %d (pid %d) exited with status %s after %.1fs; restarting in %.0fs",
                      i, p.pid, rc, lived, b)
        for i, t in list(due.items()):
            if time.monotonic() >= t and not stopping:
                del due[i]
                start(i)
        if notify.pool_ready and not said_ready:
            said_ready = True
            life.info("%d workers ready", n)
    notify.stopping()
    rc = 2 if not notify.pool_ready and any(p.poll() == 2 for p in procs.values()) else 0
    deadline = time.monotonic() + getattr(args, "drain_timeout", 10.0) + 15
    for i, p in procs.items():
        try:
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
                notify.poll(time.monotonic())   # the watchdog pinged through the drain (TimeoutStopSec bounds it)
            p.wait(0.1)
        except subprocess.TimeoutExpired:
            log.error("worker %d did not stop: killing it", i)
            p.kill()
            p.wait()
            rc = rc or 1                # a worker that had to be killed did not drain: not a clean stop
            continue
        if p.returncode < 0 and -p.returncode in STOPS and i not in due and notify.starting(i):
            # the stop signal came before its event loop took it (the default action: the end of the process): it
            # had not said READY=1, so nothing was taken to drain
            life.info("worker %d (pid %d) stopped while starting", i, p.pid)
        elif p.returncode < 0 and i not in due and i not in aborted:
            # ended by a signal after the stop began (or before the loop saw it die): it did not drain, and no line
            # said so (its restart would have); not a clean stop either (a death already said waits in `due`)
            log.error("worker %d (pid %d) ended by signal %d during the stop: not drained (the next "
                      "start reads back what its crash spools kept)", i, p.pid, -p.returncode)
            rc = rc or 1
        rc = rc or (p.returncode if p.returncode > 0 else 0)
    life.info("all workers stopped")
    # nothing left to pass them on to: ignored, not left to `forward`/`reload`, Python functions whose default action
    # the interpreter's finalisation puts back (which ends the process: logrotate's SIGUSR2 then made the pool's exit
    # a death by signal 12, a unit systemd calls failed; a second SIGTERM a death by signal 15, whatever `rc` said)
    for sig in (*PASSED_ON, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    notify.close()
    if ready:
        for f in [ready, *(f"{ready}.w{i}" for i in range(n))]:
            Path(f).unlink(missing_ok=True)         # not ready any more (a script waiting for it must not see it)
    return rc
