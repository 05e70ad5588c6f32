"""systemd's notification protocol (sd_notify(3)), without libsystemd: `Type=notify` in contrib/telfilter.service.

A notification is one datagram of newline-separated `NAME=value` lines to the AF_UNIX socket named by
$NOTIFY_SOCKET (a path, or an abstract socket when it starts with '@': sd_notify(3), "NOTES"). serve sends:

    READY=1                       every listener up and the state loaded (and again when a reload is over)
    RELOADING=1 MONOTONIC_USEC=   a SIGHUP reload begins (systemd >= 253 pairs a reload with its RELOADING=1 by
                                  the CLOCK_MONOTONIC time in us; older ones ignore the field)
    STOPPING=1                    the drain begins
    STATUS=...                    one line: the listeners, ESME binds, SMSC links bound (sent when it changes)
    WATCHDOG=1                    every $WATCHDOG_USEC / 2 (sd_watchdog_enabled(3): half the interval), from a
                                  timer on serve's event loop: a loop that is stuck stops the pings and systemd's
                                  WatchdogSec= restarts the service. $WATCHDOG_PID, when set, must be our pid.

Nothing is sent when $NOTIFY_SOCKET is unset (not under systemd, or Type=simple). A send that fails (systemd
gone, a full socket buffer) is dropped: the socket is non-blocking and never holds up the loop; the first
failure is logged. A dropped READY=1 (or STATUS=) is sent again at the next status check or watchdog ping. Nothing here runs per message.

`serve --workers N`: PoolNotify (below) is the supervisor's side. Its workers get a Notifier on the supervisor's
private socket (TELFILTER_NOTIFY_SOCKET, TELFILTER_WATCHDOG_USEC) instead of $NOTIFY_SOCKET, with or without systemd
(the supervisor bounds each worker's start by its READY=1), and it notifies systemd for the pool.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import struct
import time

log = logging.getLogger("telfilter")


class Notifier:
    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        self.where = env.get("NOTIFY_SOCKET", "")
        self.addr = _address(self.where)
        self.sock = None
        if self.addr is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        self.watchdog_s = _watchdog_s(env) if self.sock is not None else None
        self.sent_status = None
        self.reloads = 0                # reloads under way: READY=1 when the last one is over
        self.stopped = False            # STOPPING=1 sent: no RELOADING=1 or READY=1 after it
        self.ready_unsent = False       # the last READY=1 was dropped: sent again at the next status() or ping
        self._timer = None
        self._failed = False

    @property
    def active(self) -> bool:
        return self.sock is not None

    def send(self, *fields: str) -> bool:
        if self.sock is None:
            return False
        try:
            self.sock.sendto(("\n".join(fields) + "\n").encode("utf-8", "replace"), self.addr)
            return True
        except OSError as e:
            if not self._failed:
                self._failed = True
                log.warning("systemd notification to %s not sent (%s); later failures are not logged",
                            self.where, e)
            return False

    def ready(self, status: str | None = None) -> None:
        # one dropped (the receiver's queue full: net.unix.max_dgram_qlen datagrams, 10 by default, which a pool's
        # supervisor reads every 0.1 s) is sent again at the next status check (serve's, each second) or watchdog
        # ping: a READY=1 that never came fails the start (systemd's TimeoutStartSec=, the pool's --start-timeout)
        self.ready_unsent = not self.send("READY=1", *self._status_field(status)) and self.sock is not None
        if self.ready_unsent:
            self.sent_status = None         # (its STATUS= went with it)

    def _ready_again(self) -> None:
        if self.ready_unsent and not self.stopped and self.reloads == 0:
            self.ready_unsent = not self.send("READY=1")

    def reloading(self) -> None:
        self.reloads += 1
        if self.reloads == 1 and not self.stopped:
            self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def reloaded(self) -> None:
        self.reloads -= 1
        # a reload that ends during the drain (SIGHUP's handler stays in place): READY=1 after STOPPING=1 would
        # tell systemd the service is up again (sd_notify(3): READY=1 ends a reload or a start)
        if self.reloads == 0 and not self.stopped:
            self.ready_unsent = not self.send("READY=1") and self.sock is not None

    def stopping(self) -> None:
        # the pings go on while the drain runs on the loop (a loop stuck in the drain stops them too); systemd's
        # TimeoutStopSec= bounds the stop
        self.stopped = True
        self.send("STOPPING=1", "STATUS=draining")
        self.sent_status = "draining"

    def status(self, text: str) -> None:
        """STATUS= when the text changed since the last one sent (and a READY=1 that was dropped, again)."""
        self._ready_again()
        if self.sock is not None and text != self.sent_status and not self.send(*self._status_field(text)):
            self.sent_status = None         # dropped: said at the next check

    def _status_field(self, text):
        if text is None:
            return ()
        text = " ".join(text.split())       # one line: a newline would start another field
        self.sent_status = text
        return (f"STATUS={text}",)

    # --- watchdog ---
    def start_watchdog(self, loop) -> None:
        if self.watchdog_s is not None and self._timer is None:
            self._ping(loop)

    def _ping(self, loop) -> None:
        self._ready_again()
        self.send("WATCHDOG=1")
        self._timer = loop.call_later(self.watchdog_s / 2, self._ping, loop)

    def stop_watchdog(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.stop_watchdog()
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _address(value: str):
    """sd_notify(3): an absolute path, or '@' for the abstract namespace; anything else (vsock:, unset) is not ours."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    if value:
        log.warning("NOTIFY_SOCKET=%r is not a Unix socket path: no systemd notifications", value)
    return None


def _watchdog_s(env) -> float | None:
    """sd_watchdog_enabled(3): WATCHDOG_USEC (> 0) for this process, i.e. WATCHDOG_PID unset or our pid."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


class PoolNotify:
    """`serve --workers N` (engine/supervisor.py): the workers tell the supervisor when they are ready on a private
    socket, and under Type=notify the supervisor, the unit's main process (NotifyAccess=main refuses its children),
    speaks to systemd for the pool.

    The private socket is an abstract AF_UNIX datagram socket named after the supervisor's pid and a random token,
    given to the workers as TELFILTER_NOTIFY_SOCKET (and the watchdog interval as TELFILTER_WATCHDOG_USEC); an
    abstract name has no file to clean up after a kill -9 and no directory to write under ProtectSystem=strict.
    Anyone on the host could send to it, so SO_PASSCRED has the kernel stamp each datagram with its sender's pid
    (unix(7), SCM_CREDENTIALS) and one not from a current worker's pid is dropped: a ping is always its worker's.
    It exists with or without $NOTIFY_SOCKET: it is how the supervisor learns that a worker's start is over.

    A worker must say READY=1 within start_timeout of its start: one that has not is returned by overdue() to be
    killed and restarted (stuck loading its state, on a lock, a blocked disk). systemd does the same for a unit
    with TimeoutStartSec= and arms WatchdogSec= only once the start is over (systemd.service(5)), so a worker is
    watched by its pings from its READY=1: one whose pings stop for $WATCHDOG_USEC is returned by poll().

    To systemd (nothing without $NOTIFY_SOCKET): READY=1 once every worker said READY=1; RELOADING=1 at a SIGHUP
    passed on, READY=1 once every worker said READY=1 again (or RELOAD_BOUND_S later); STOPPING=1 at the stop;
    STATUS= how many workers are ready and which restart; WATCHDOG=1 every $WATCHDOG_USEC/2 from the supervisor's
    own loop. State is bounded by N (a pid, a ready flag, a start deadline and a last ping per worker); poll() reads
    at most MAX_DATAGRAMS a round."""

    RELOAD_BOUND_S = 60.0        # a worker that never says it reloaded (stuck, or an old one): systemd hears READY=1
    MAX_DATAGRAMS = 256          # a round's reading (4 or so per worker a second); the rest waits for the next

    def __init__(self, n: int, environ=None, start_timeout: float = 60.0, before_ready=None):
        self.n = n
        self.before_ready = before_ready        # called once, as the pool comes up, before systemd hears READY=1
        self.up = Notifier(environ)
        self.watchdog_s = self.up.watchdog_s
        self.start_timeout = start_timeout
        name = f"telfilter-pool-{os.getpid()}-{secrets.token_hex(8)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + name)
        self.env: dict[str, str] = {"TELFILTER_NOTIFY_SOCKET": "@" + name}     # added to each worker's environment
        if self.watchdog_s is not None:
            self.env["TELFILTER_WATCHDOG_USEC"] = str(int(self.watchdog_s * 1e6))
        self.worker_of: dict[int, int] = {}     # pid -> worker index (current workers only)
        self.ready: set[int] = set()
        self.start_by: dict[int, float] = {}    # worker -> when its READY=1 is due (from its start until it came)
        self.came_up: set[int] = set()          # workers that said READY=1 since their start
        self.last_ping: dict[int, float] = {}   # worker -> when its last WATCHDOG=1 came (watched from READY=1)
        self.restarting: dict[int, str] = {}    # worker -> why, until it is ready again
        self.pool_ready = False
        self.reload_waits: set[int] | None = None
        self.reload_until = 0.0
        self.next_ping = 0.0
        self.dropped = 0

    @property
    def active(self) -> bool:
        """Under systemd: the pool speaks to it (the private socket is there either way)."""
        return self.up.active

    def started(self, i: int, pid: int, now: float | None = None) -> None:
        for p in [p for p, w in self.worker_of.items() if w == i]:
            del self.worker_of[p]
        self.worker_of[pid] = i
        self.ready.discard(i)
        self.came_up.discard(i)
        self.last_ping.pop(i, None)
        self.start_by[i] = (time.monotonic() if now is None else now) + self.start_timeout

    def starting(self, i: int) -> bool:
        """Worker i has not said READY=1 since its start (a start that failed, when it exits)."""
        return i not in self.came_up

    def overdue(self, now: float) -> list[int]:
        """The workers not ready start_timeout after their start (each once: started() re-arms); none once the
        pool stops (a worker still starting then is stopped with the others)."""
        if self.up.stopped:
            return []
        late = [i for i, t in self.start_by.items() if now > t]
        for i in late:
            del self.start_by[i]
        return late

    def exited(self, i: int, why: str) -> None:
        self.ready.discard(i)
        self.last_ping.pop(i, None)
        self.start_by.pop(i, None)
        if self.reload_waits is not None:
            self.reload_waits.discard(i)
        self.restarting[i] = why
        self._status()

    def reloading(self) -> None:
        """A SIGHUP passed on to the workers: READY=1 again once each said READY=1 since (or after the bound)."""
        if self.active and self.pool_ready and not self.up.stopped:
            if self.reload_waits is None:
                self.up.reloading()
            self.reload_waits = set(self.ready)
            self.reload_until = time.monotonic() + self.RELOAD_BOUND_S

    def stopping(self) -> None:
        self.reload_waits = None
        self.up.stopping()

    def poll(self, now: float) -> list[int]:
        """One round of the supervisor's loop: read the workers' datagrams, ping systemd when due, say READY=1
        when the pool is; returns the workers whose watchdog ran out (each once: started() or exited() re-arms)."""
        if self.sock is None:
            return []
        for _ in range(self.MAX_DATAGRAMS):
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(cdata) >= 12:
                    pid = struct.unpack("iII", cdata[:12])[0]
            i = self.worker_of.get(pid)
            if i is None:               # not a current worker (an old one's last words, or someone else)
                self.dropped += 1
                continue
            self._heard(i, data.decode("utf-8", "replace").split("\n"), now)
        if self.watchdog_s is not None and now >= self.next_ping:     # through the drain too (TimeoutStopSec)
            self.up.send("WATCHDOG=1")
            # every half interval on average (a ping due mid-round would otherwise wait up to a round longer
            # each time); a round that came late does not make a burst
            due = self.next_ping + self.watchdog_s / 2
            self.next_ping = due if due > now else now + self.watchdog_s / 2
        if not self.pool_ready and len(self.ready) == self.n and not self.up.stopped:
            self.pool_ready = True
            self.restarting.clear()
            if self.before_ready is not None:
                self.before_ready()
            self.up.ready(self._status_text())
        if self.reload_waits is not None and (not self.reload_waits or now >= self.reload_until):
            if self.reload_waits:
                log.warning("workers %s did not say their reload was over within %.0fs: READY=1 sent anyway",
                            ", ".join(map(str, sorted(self.reload_waits))), self.RELOAD_BOUND_S)
            self.reload_waits = None
            self.up.reloaded()
        if self.watchdog_s is None or self.up.stopped:
            return []
        stuck = [i for i, t in self.last_ping.items() if now - t > self.watchdog_s]
        for i in stuck:
            del self.last_ping[i]
        return stuck

    def _heard(self, i: int, lines: list[str], now: float) -> None:
        fields = dict(line.split("=", 1) for line in lines if "=" in line)
        if fields.get("WATCHDOG") == "1" and i in self.ready:
            self.last_ping[i] = now
        if fields.get("READY") == "1":
            self.ready.add(i)
            self.came_up.add(i)
            self.start_by.pop(i, None)
            self.last_ping[i] = now
            self.restarting.pop(i, None)
            if self.reload_waits is not None:
                self.reload_waits.discard(i)
            self._status()
        if fields.get("STOPPING") == "1":       # draining: not serving new binds, still pinging
            self.ready.discard(i)

    def _status_text(self) -> str:
        k = len(self.ready)
        text = f"{k} of {self.n} workers ready" if k < self.n else f"{k} worker{'s' if k > 1 else ''} ready"
        for i, why in sorted(self.restarting.items()):
            text += f"; worker {i} restarting ({why})"
        return text

    def _status(self) -> None:
        # before the pool's READY=1 too once a worker restarts: `systemctl status` says why the start takes long
        if (self.pool_ready or self.restarting) and not self.up.stopped:
            self.up.status(self._status_text())

    def close(self) -> None:
        self.up.close()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
