"""Loopback ports for the servers tests and benchmarks start (telfilter serve, SMSC simulators, redis-server,
sipp, Kamailio).

A port the kernel hands out for port 0 is an ephemeral one: once the probing socket is closed, any outgoing
connection on the machine (a client of another test, the package manager, a browser) may be given the same
port before the server binds it, and the server then fails to start. Ports are therefore drawn at random
from just below the kernel's ephemeral range (net.ipv4.ip_local_port_range), which the kernel never assigns
on its own, checked bindable for every transport asked for, and not handed out twice by one process.

TELFILTER_TEST_PORTS=LOW-HIGH (e.g. 25000-25999, both ends included) draws them from that range instead, so that
runs sharing a machine (two CI jobs, two checkouts' suites) each keep to a range of their own; nothing is then
taken from outside it (no room left in it: RuntimeError). A value not of that form stops the first draw with a
ValueError that says what is wanted.
"""
from __future__ import annotations

import os
import random
import socket
import time

_SPAN = 12_000            # how far below the ephemeral range ports are drawn from
ENV = "TELFILTER_TEST_PORTS"
_rng = random.Random(os.getpid() ^ time.time_ns())
_given: set[int] = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768       # Linux's default; other systems' ranges start higher


def bindable(port: int, kind: int) -> bool:
    """Whether a socket of `kind` can bind 127.0.0.1:`port` now."""
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _kernel_port(kinds) -> int:
    for _ in range(50):
        s = socket.socket(socket.AF_INET, kinds[0])
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _given and all(bindable(port, k) for k in kinds[1:]):
            return port
    raise RuntimeError("no loopback port free for " + ", ".join(map(str, kinds)))


def port_range(value: str) -> tuple[int, int]:
    """(LOW, HIGH) of a `LOW-HIGH` range of unprivileged ports, both included; ValueError naming ENV otherwise."""
    low, sep, high = value.strip().partition("-")
    try:
        lo, hi = int(low), int(high)
    except ValueError:
        lo = hi = None
    if not sep or lo is None or not 1024 <= lo <= hi <= 65535:
        raise ValueError(f"{ENV}={value!r}: give LOW-HIGH, two port numbers from 1024 to 65535 with LOW no greater "
                         "than HIGH, e.g. 25000-25999")
    return lo, hi


def _from_range(lo: int, hi: int, kinds) -> int:
    """A port of lo..hi not given yet and bindable for `kinds`: a few random draws, then every one in turn."""
    for _ in range(min(200, hi - lo + 1)):
        p = _rng.randint(lo, hi)
        if p not in _given and all(bindable(p, k) for k in kinds):
            return p
    for p in _rng.sample(range(lo, hi + 1), hi - lo + 1):
        if p not in _given and all(bindable(p, k) for k in kinds):
            return p
    kinds = ", ".join(socket.SocketKind(k).name for k in kinds)
    raise RuntimeError(f"no loopback port free for {kinds} in {ENV}={lo}-{hi} ({len(_given)} given by this process)")


def free_port(*kinds: int) -> int:
    """A loopback port free now for each socket kind given (TCP when none): SOCK_STREAM, SOCK_DGRAM, or both
    for a SIP listener (RFC 3261 §18: UDP and TCP on one port). From TELFILTER_TEST_PORTS when it is set."""
    kinds = kinds or (socket.SOCK_STREAM,)
    if os.environ.get(ENV, "").strip():
        port = _from_range(*port_range(os.environ[ENV]), kinds)
        _given.add(port)
        return port
    hi = _ephemeral_low()
    lo = max(1024, hi - _SPAN)
    port = None
    if hi - lo >= 1000:
        for _ in range(200):
            p = _rng.randrange(lo, hi)
            if p not in _given and all(bindable(p, k) for k in kinds):
                port = p
                break
    if port is None:       # no room below the ephemeral range (an unusual sysctl): ask the kernel
        port = _kernel_port(kinds)
    _given.add(port)
    return port
