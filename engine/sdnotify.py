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
failure is logged. Nothing here runs per message.
"""
from __future__ import annotations

import logging
import os
import socket
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
        self.send("READY=1", *self._status_field(status))

    def reloading(self) -> None:
        self.reloads += 1
        if self.reloads == 1 and not self.stopped:
            self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def reloaded(self) -> None:
        self.reloads -= 1
        # a reload that ends during the drain (SIGHUP's handler stays in place): READY=1 after STOPPING=1 would
        # tell systemd the service is up again (sd_notify(3): READY=1 ends a reload or a start)
        if self.reloads == 0 and not self.stopped:
            self.send("READY=1")

    def stopping(self) -> None:
        # the pings go on while the drain runs on the loop (a loop stuck in the drain stops them too); systemd's
        # TimeoutStopSec= bounds the stop
        self.stopped = True
        self.send("STOPPING=1", "STATUS=draining")
        self.sent_status = "draining"

    def status(self, text: str) -> None:
        """STATUS= when the text changed since the last one sent."""
        if self.sock is not None and text != self.sent_status:
            self.send(*self._status_field(text))

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
