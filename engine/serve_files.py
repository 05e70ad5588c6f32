"""The data dir's SMPP files a `serve` process holds for its life (engine/serve.py)."""
from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger("telfilter.smpp")


def lock_serve_files(data_dir: Path, worker: int, wait: float = 0.0) -> int:
    """flock the data dir's SMPP files of this process (worker i of a pool: its own set) for its life, waiting up
    to `wait` s for a holder to go (a pool's worker: the same worker of a pool whose supervisor was killed drains
    before it exits, and the new pool's start failed at once, for good: a start-up error at its first start).

    Held receipts, the message-id log and map, the 5656 parts journal and the scheduled-ads journal are each
    rewritten whole at a start and a stop, and appended to by record numbers of one run: a second serve on them
    renames its copy over the first's and its records cancel the first's by number (receipts the SMSC was told
    were delivered, lost at the first's next crash). The embedded store's state/lock kept a second serve out;
    with --state redis:// nothing did. Released by the kernel when the process dies (kill -9 included)."""
    d = data_dir / "smpp"
    d.mkdir(parents=True, exist_ok=True)
    name = f"serve.w{worker}.lock" if worker else "serve.lock"
    fd = os.open(d / name, os.O_RDWR | os.O_CREAT, 0o644)
    if not _lock_within(fd, time.monotonic() + wait):
        os.close(fd)
        from .state import StateError
        raise StateError(f"{data_dir}: in use by another telfilter serve (smpp/{name} is held"
                         + (f" after {wait:.0f} s" if wait else "") + ")")
    return fd


def stop_wait(args) -> float:
    """How long a pool worker's start waits for a serve of the pool before it to go: that one's stop at most
    (its drain, --drain-timeout, and 2 s), within half of --start-timeout."""
    return min(getattr(args, "drain_timeout", 10.0) + 2.0, getattr(args, "start_timeout", 60.0) / 2)


# the per-worker files (worker j > 0: `<name>.w<j>.<rest>`; the id log's crash spools `.message_ids.w<j>.log.spool…`)
_WORKER_FILE = re.compile(r"^\.?(?:held_receipts|message_ids|scheduled_ads|mo_parts)\.w(\d+)\.")


def adopt_orphans(data_dir: Path, worker: int, workers: int, wait: float = 0.0,
                  on_wait=None) -> tuple[list[int], list[int]]:
    """The workers whose SMPP files this process takes over: those of a pool since made smaller (`--workers`
    lowered, or a pool replaced by one serve), j >= `workers` with j % `workers` == `worker`, found by their files
    in the data dir. Their held receipts (the SMSC was told they were delivered), message ids, 5656 parts and
    scheduled ads were read by no one: lost. Each one's serve lock is taken for this process's life (a process
    of the larger pool still running keeps its files: skipped, said). A lock held is waited for up to `wait` s in
    all: the larger pool's workers drain after their supervisor died (die_with_supervisor: SIGTERM) and the smaller
    pool may be up before they are gone; skipped at once, a worker still draining wrote its files (its held receipts)
    after this start had looked, and nobody read them until this worker's next start. `on_wait(text)`: what is
    waited for, said before a wait (None once it ends). Returns (worker numbers, lock fds)."""
    d = data_dir / "smpp"
    found = set()
    try:
        names = [p.name for p in d.iterdir()]
    except FileNotFoundError:
        return [], []
    for name in names:
        m = _WORKER_FILE.match(name)
        if m and not name.endswith(".unreadable") and ".tmp" not in name:     # (set aside; a crash's temporary file)
            found.add(int(m.group(1)))
    taken, fds = [], []
    end = time.monotonic() + wait
    for j in sorted(found):
        if j < workers or j % workers != worker:
            continue
        fd = os.open(d / f"serve.w{j}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        if on_wait is not None and not _lock_within(fd, 0.0):
            pid = lock_holder(fd)
            on_wait(f"waiting up to {max(0.0, end - time.monotonic()):.0f} s for worker {j}'s SMPP files "
                    f"({d / f'serve.w{j}.lock'} is held by " + (f"pid {pid}" if pid else "another process")
                    + ": a serve of a larger pool still stopping?)")
        if not _lock_within(fd, end):
            os.close(fd)
            log.warning("worker %d's SMPP files in %s are held by a running serve (of a larger pool?): left to it", j, d)
            continue
        taken.append(j)
        fds.append(fd)
    if on_wait is not None:
        on_wait(None)
    if taken:
        log.info("taking over the SMPP files (held receipts, message ids, 5656 parts, scheduled ads) of worker%s %s, "
                 "no longer started", "s" if len(taken) > 1 else "", ", ".join(map(str, taken)))
    return taken, fds


def lock_holder(fd: int) -> int | None:
    """The pid holding a flock on the file of `fd`, from /proc/locks (None: not found, not Linux)."""
    st = os.fstat(fd)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 5 and parts[1] == "FLOCK" and parts[5] == dev and parts[4].isdigit():
                    return int(parts[4])
    except OSError:
        pass
    return None


def _lock_within(fd: int, end: float) -> bool:
    """flock `fd` (exclusive), trying again every 0.1 s until `end` (time.monotonic())."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= end:
                return False
            time.sleep(0.1)


class TakenOver:
    """What a serve process took over at its start (`take_over`): the workers' numbers and their locks (held for
    the process's life, closed by `release`)."""

    def __init__(self, smpp_dir: Path, workers: list[int], locks: list[int]):
        self.smpp_dir, self.workers, self.locks = smpp_dir, workers, locks

    def files(self, name: str, suffix: str) -> list[Path]:
        """Their files of one kind: `<name>.w<j><suffix>` in DATA_DIR/smpp."""
        return [self.smpp_dir / f"{name}.w{j}{suffix}" for j in self.workers]

    def release(self) -> None:
        for fd in self.locks:
            os.close(fd)


def take_over(data_dir: Path, worker: int, in_pool: bool, args, control_base: Path | None,
              control=None) -> TakenOver:
    """serve's start: the SMPP files of a pool's workers no longer started taken over (`adopt_orphans`; a worker of
    the larger pool still draining -- its supervisor killed -- waited for, its stop's time at most), and the control
    sockets and `--ready-file`s a kill left them removed (`ctl reload` asked them and said "no serve answers"; a
    monitor read the ports of a worker that was not there).

    Run in a worker thread (serve.py): the wait, up to 12 s, was on the event loop after the control socket
    listened, and `telfilter ctl` hung that long with no word (`--timeout` shorter: timed out). `control` (the
    ControlServer) answers every command meanwhile with what is waited for (ControlServer.starting)."""
    def said(text):
        if control is not None:
            control.starting = f"serve is starting: {text}" if text else None
    pool_size = int(os.environ.get("TELFILTER_WORKERS", "1")) if in_pool else 1
    workers, locks = adopt_orphans(data_dir, worker, max(1, pool_size), wait=stop_wait(args), on_wait=said)
    if control_base is not None:
        from .control import remove_stale_socket, worker_socket
        for j in workers:
            remove_stale_socket(worker_socket(control_base, j))
    ready = getattr(args, "ready_file", None)
    for j in workers if ready else ():
        Path(f"{ready}.w{j}").unlink(missing_ok=True)       # (its lock is ours: no worker j runs)
    return TakenOver(data_dir / "smpp", workers, locks)


def note_model_serve(settings, sock: Path, worker: int):
    """Note this serve's control socket in its `[ml] model` path's versions directory (engine/analyst/serves.py), so
    `ml promote` reloads it whatever data dir the promote was given; the note (None: nothing noted). A pool's worker 0
    notes the pool's socket, which reaches every worker."""
    if worker or not getattr(settings, "ml_model", ""):
        return None
    from .analyst.serves import register
    try:
        return register(Path(settings.ml_model).absolute(), sock)
    except OSError as e:
        log.warning("[ml] model %s: this serve's control socket not noted beside it (%s): `telfilter ml promote` "
                    "reaches it only given its data dir (--data-dir) or --socket %s", settings.ml_model,
                    e.strerror or e, sock)
        return None
