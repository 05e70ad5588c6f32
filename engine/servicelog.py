"""The service log of `telfilter serve` (stderr: journald, a container log) and the verdict
log's reopen for logrotate.

Lines carry an ISO 8601 time with its UTC offset, the level and the logger; `--log-format json`
gives one JSON object a line. Start-up, reload and stop lines go to `telfilter.service` at INFO
and are shown without -v; everything else under `telfilter` shows at WARNING, or INFO with -v.
"""
from __future__ import annotations

import logging

log = logging.getLogger("telfilter")
# Start-up, reload and stop lines: INFO, and shown without -v (their own logger's level), so a
# service's log says when it started and stopped without everything else -v brings.
life = logging.getLogger("telfilter.service")


class ServiceLogFormatter(logging.Formatter):
    """`2026-11-30T16:48:21.123+00:00 INFO telfilter.smpp: message`: ISO 8601 local time with its
    UTC offset (what journald, logrotate'd files and a SIEM all parse), level, logger. With
    json=True one JSON object per line (ts, level, logger, msg[, exc])."""

    def __init__(self, json_lines: bool = False):
        super().__init__()
        self.json_lines = json_lines
        # a `serve --workers N` worker names itself (every worker writes to the same journal or file): `w1`
        from .supervisor import pool_worker        # (supervisor imports this module: read when a formatter is made)
        self.worker = pool_worker()

    def formatTime(self, record, datefmt=None):
        from datetime import datetime
        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")

    def format(self, record):
        ts, msg = self.formatTime(record), record.getMessage()
        exc = self.formatException(record.exc_info) if record.exc_info else ""
        if self.json_lines:
            import json
            d = {"ts": ts, "level": record.levelname, "logger": record.name, "msg": msg}
            if self.worker is not None:
                d["worker"] = self.worker
            if exc:
                d["exc"] = exc
            return json.dumps(d, ensure_ascii=False)
        who = record.name if self.worker is None else f"{record.name}[w{self.worker}]"
        return f"{ts} {record.levelname} {who}: {msg}" + (f"\n{exc}" if exc else "")


def json_service_log() -> bool:
    """Whether setup_service_logging set up JSON lines (serve --log-format json)."""
    return any(getattr(h.formatter, "json_lines", False) for h in logging.getLogger().handlers)


def say_error(line: str, exc_info=None) -> None:
    """A line about an error that ends the command (`telfilter serve: …: Address already in use`), on stderr: as
    given, or, once serve set up `--log-format json`, as a JSON object at ERROR like every other line serve writes
    (a collector parses each line; a plain one among them was lost or broke its parser)."""
    if json_service_log():
        life.error("%s", line, exc_info=exc_info)
    else:
        import sys
        print(line, file=sys.stderr)


def setup_service_logging(verbose: bool, fmt: str = "text") -> None:
    append_to_regular_files(1, 2)       # copytruncate leaves no hole of NULs in a `2>FILE` service log
    root = logging.getLogger()
    for h in root.handlers:
        h.setFormatter(ServiceLogFormatter(fmt == "json"))
    logging.getLogger("telfilter").setLevel(logging.INFO if verbose else logging.WARNING)
    life.setLevel(logging.INFO)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)     # the handler passes what each logger lets through
    if fmt == "json":
        # what Python itself would print as plain text among the JSON lines: warnings (the py.warnings logger) and a
        # worker thread's uncaught exception (threading.excepthook), as JSON objects like every other line
        logging.captureWarnings(True)
        import threading
        threading.excepthook = _thread_died


def append_to_regular_files(*fds: int) -> None:
    """Put descriptors (stdout, stderr) that are regular files in append mode (O_APPEND, F_SETFL). A file the shell
    or systemd opened for them without it (`serve 2>service.log`, `StandardError=file:`) was written at serve's own
    offset: logrotate's copytruncate then left a hole of NULs as long as what it copied away before the next line
    (and systemd's `file:` wrote over the last run's lines). A pipe, a terminal or journald's socket is left as it
    is. The flag is the open file's, shared with whoever else holds it (the shell): they append too."""
    import fcntl
    import os
    import stat
    for fd in fds:
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
                if not flags & os.O_APPEND:
                    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_APPEND)
        except OSError:                 # closed, or a file system that refuses: written as before
            pass


def _thread_died(a) -> None:
    if a.exc_type is SystemExit:
        return
    life.error("thread %s stopped by an unexpected error: %s: %s", getattr(a.thread, "name", "?"),
               a.exc_type.__name__, a.exc_value, exc_info=(a.exc_type, a.exc_value, a.exc_traceback))


NOT_REOPENED = "verdict log not reopened, still writing the old file: %s"


def _reopenable(path) -> bool:
    """A log file to open again (not stdout, not a stream given by the caller)."""
    return path not in (None, "-") and not hasattr(path, "write")


def reopen_verdict_log(vlog, path, opened=None) -> bool:
    """logrotate without copytruncate: the rotated file was renamed; open `path` afresh and
    swap it in. The new file is opened first, so a failure keeps the old one writing. `opened`:
    the new file already opened (open_verdict_file, off the loop: reopen_verdict_log_soon)."""
    if not _reopenable(path):
        return False
    from .logwriters import PipeOut
    if opened is None:
        try:
            opened = open_verdict_file(path)
        except OSError as e:
            log.error(NOT_REOPENED, e)
            return False
    if vlog.closed:  # opened off the loop while the process stopped: nothing will write it
        opened.drain()
        return False
    old, vlog.f = vlog.f, opened
    from .disktrouble import trouble
    # the old writer's failures and writes from now on are not the log's (it is closing): only a writer thread
    # reports them (a stream, closed below, reports nothing)
    trouble("verdict_log").fresh(retired=old if isinstance(old, PipeOut) else None)
    if isinstance(old, PipeOut):        # its writer finishes what it holds, off the loop, then closes it
        import threading
        done = [w for w in vlog.retired if not w.thread.is_alive()]
        vlog.lost_retired += sum(getattr(w, "lost_lines", 0) for w in done)          # the count stays a counter
        vlog.retired = [w for w in vlog.retired if w not in done] + [old]              # joined at close
        threading.Thread(target=old.retire, name="verdict-log-old", daemon=True).start()
    else:
        try:
            old.flush()
            old.close()
        except OSError as e:
            log.error("closing the old verdict log: %s", e)
    life.info("verdict log reopened: %s", path)
    return True


def renamed_since_opened(vlog, path) -> bool:
    """Whether `path` no longer names the file the verdict log writes: logrotate renamed it while serve started, its
    SIGUSR2 ignored until the event loop took the signal (the default action ends the process). That reopen was
    lost: serve wrote the rotated file until the next rotation, a day later, and nothing was at the log's path."""
    import os
    fd = getattr(vlog.f, "fd", None)
    if not _reopenable(path) or not isinstance(fd, int):
        return False
    try:
        st = os.fstat(fd)
        now = os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)


def open_verdict_file(path):
    """The verdict log's new file for a reopen: opened, its crash spool made (an 8 MiB ring allocated
    whole) and a dead writer's unwritten lines appended (up to the ring's ~20,000 lines). Blocking
    (~10 ms without a dead spool on a loaded host): the signal handler runs it off the loop."""
    from .logwriters import FileOut
    return FileOut(path, spool=True)


async def reopen_verdict_log_soon(vlog, path) -> bool:
    """SIGUSR2's handler: reopen_verdict_log with the file opened in a worker thread, so the loop keeps
    judging meanwhile; only the swap (a reference and a thread start) runs on it. One reopen at a time:
    a SIGUSR2 while one is opening asks for one more after it (its file may have been renamed since it
    was opened), so a burst of signals costs two opens, not one each queued in the executor (each with
    an 8 MiB spool; a stop waited for all of them), and no older file is swapped in after a newer one."""
    if not _reopenable(path) or vlog.closed:
        return False
    if vlog.reopening:
        vlog.reopen_again = True
        return False
    vlog.reopening = True
    try:
        while True:
            vlog.reopen_again = False
            ok = await _reopen_off_the_loop(vlog, path)
            if not vlog.reopen_again or vlog.closed:
                return ok
    finally:
        vlog.reopening = False


async def _reopen_off_the_loop(vlog, path) -> bool:
    """One reopen, its file opened by a worker thread. Cancelled while the thread opens (asyncio.run
    cancels what is left once run_serve returned), the thread closes what it opened: else its writer
    thread outlived the stop and its crash spool was left."""
    import asyncio
    import threading
    lock, hand = threading.Lock(), {"taken": True}

    def open_for_the_loop():
        new = open_verdict_file(path)
        with lock:
            if hand["taken"]:
                hand["file"] = new
                return new
        new.drain()                     # nobody waits for it any more: closed (its spool deleted)
        return None
    try:
        opened = await asyncio.get_running_loop().run_in_executor(None, open_for_the_loop)
    except asyncio.CancelledError:
        with lock:
            hand["taken"] = False
            new = hand.pop("file", None)
        if new is not None:             # opened, but the result came after the cancellation
            new.drain()
        raise
    except OSError as e:
        log.error(NOT_REOPENED, e)
        return False
    return reopen_verdict_log(vlog, path, opened)


class LogThrottle:
    """A line about something that happens often, said at most once every `every` s with how many times it happened
    since the last such line. `due(now, n)` counts `n` occurrences and returns how many to say now (these and those
    unsaid since the last line), 0 to say nothing; the first is said at once. `now`: the caller's clock in seconds
    (monotonic). Two numbers and O(1) a call: an owner keeping one per source bounds how many it keeps (tls_crl's
    CertRefusals: an LRU of MAX_SOURCES). Used by Trouble, the TLS listener's refusals (tls_rate, tls_crl) and the
    SIP screen's warnings and kernel drops (forwarding._warn, bounds.count_udp_drops)."""

    __slots__ = ("every", "unsaid", "said_at")

    def __init__(self, every: float):
        self.every, self.unsaid, self.said_at = every, 0, None

    def due(self, now: float, n: int = 1) -> int:
        self.unsaid += n
        if self.said_at is not None and now - self.said_at < self.every:
            return 0
        n, self.unsaid, self.said_at = self.unsaid, 0, now
        return n


class Trouble:
    """A failure that repeats while it lasts (Redis away: a pool refresh fails every second; a full disk: every
    write), said at its first occurrence, then at most once every `every` s with how many since the last line, and
    that it is over (at most as often). A line per occurrence would bury the rest of the log for the length of an
    outage. By time, not by change: a disk at the edge of full takes one write and refuses the next (a probe's ext4
    flipped several times a second), a Redis answers one call and times out the next, and a line per flip would be
    a line per message again. `failed` and `ok` say it in this class's words; a subclass (disktrouble.DiskTrouble)
    words it its own way with `_failure` and `_over`. One instance per kind of trouble; plain int, bool and float
    stores (DiskTrouble is also called from writer threads: under the GIL each store is whole, a count read
    mid-update is one behind)."""

    def __init__(self, what: str, every: float = 30.0, clock=None, logger=log):
        import time
        self.what, self.every, self.clock, self.log = what, every, clock or time.monotonic, logger
        self.count = 0              # occurrences since start
        self.failing = False        # the last attempt failed
        self.last_failed = -1e18    # when it last failed (clock)
        self._lines = LogThrottle(every)    # the failure lines
        self._said_ok = -1e18
        self._ok_unsaid = False     # it works again, not said yet

    def _failure(self) -> int:
        """Count a failure: how many to say now (this one and those unsaid since the last line), 0 for none."""
        self.count += 1
        self.failing = True
        self._ok_unsaid = False
        self.last_failed = self.clock()
        return self._lines.due(self.last_failed)

    def _over(self) -> bool:
        """A success: whether to say now that it works again (after failures; said at a later success if not now:
        O(1), called per success)."""
        if self.failing:
            self.failing = False
            self._ok_unsaid = True
        if not self._ok_unsaid:
            return False
        now = self.clock()
        if now - self._said_ok < self.every:
            return False
        self._said_ok, self._ok_unsaid = now, False
        return True

    def failed(self, why: str, consequence: str) -> None:
        n = self._failure()
        if n:
            more = f" ({n} times since the last such line)" if n > 1 else ""
            self.log.warning("%s failed (%s): %s%s; said again at most every %.0f s", self.what, why, consequence,
                             more, self.every)

    def ok(self) -> None:
        if self._over():
            self.log.warning("%s works again (%d failures since start)", self.what, self.count)
