"""Which source addresses the SIP screen takes SIP from: sip.toml's accept_networks. No I/O.

Theory of operation: a carrier's inline element takes SIP from its own peers only (Kamailio's permissions
module, an address table) and drops anything else before it costs a parse, so a flood from addresses that
are no peers (spoofed UDP sources, scanners such as sipvicious) costs next to nothing and never counts toward
the overload shares (shares.py). `accept_networks` names those peers -- the previous hops of requests, and the
next hops whose responses come back -- and the transports ask `SourceFilter.accepts(host)` before anything
else: a datagram from outside is dropped unread (`source_refused`), a TCP connection from outside is closed
at accept (`tcp_source_refused`). The C pump (_sippump.h) takes the same decision on the kernel's address
before it builds any Python object for the datagram, from `address_table()`: the networks merged into sorted,
disjoint integer ranges per IP version, searched by bisection, so a table of thousands of peers costs a few
comparisons. An IPv4-mapped IPv6 address (a dual-stack socket's peer) is the IPv4 address it is; an IPv6
scope id is dropped; a name, or no address, is outside. The default, every address (0.0.0.0/0 and ::/0),
costs no address parse at all.
"""
from __future__ import annotations

import socket
from bisect import bisect_right

from .settings import source_ranges

V4_LAST, V6_LAST = 2 ** 32 - 1, 2 ** 128 - 1
MAPPED = b"\0" * 10 + b"\xff\xff"            # ::ffff:0:0/96, RFC 4291 §2.5.5.2
CACHE = 4096                                 # addresses whose answer is kept (bounded: cleared when full)


def address_table(networks) -> tuple | None:
    """`networks` as (IPv4 ranges, IPv6 ranges), each a sorted list of disjoint (first, last) integer ranges
    (adjacent and overlapping ones merged); None when they hold every address of both versions."""
    out = {4: [], 6: []}
    for ver, lo, hi in sorted(source_ranges(networks)):
        rs = out[ver]
        if rs and lo <= rs[-1][1] + 1:
            rs[-1] = (rs[-1][0], max(rs[-1][1], hi))
        else:
            rs.append((lo, hi))
    if out[4] == [(0, V4_LAST)] and out[6] == [(0, V6_LAST)]:
        return None
    return out[4], out[6]


def address_key(host: str):
    """(version, integer) of an address as the C pump reads it (inet_pton: dotted quad, RFC 4291 text), an
    IPv4-mapped IPv6 address as its IPv4 one, the scope id dropped; None for anything else (a name)."""
    h = host.partition("%")[0]
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, h), "big")
    except (OSError, ValueError):
        pass
    try:
        b = socket.inet_pton(socket.AF_INET6, h)
    except (OSError, ValueError):
        return None
    if b[:12] == MAPPED:
        return 4, int.from_bytes(b[12:], "big")
    return 6, int.from_bytes(b, "big")


def in_table(key, table) -> bool:
    """Whether `key` (address_key) is inside `table` (address_table, not None)."""
    if key is None:
        return False
    ver, n = key
    rs = table[0] if ver == 4 else table[1]
    i = bisect_right(rs, (n, V6_LAST + 1)) - 1          # the last range starting at or below n
    return i >= 0 and n <= rs[i][1]


class SourceFilter:
    """accept_networks asked about source addresses. `every`: they hold every address (no check needed)."""

    __slots__ = ("networks", "table", "every", "cache")

    def __init__(self, networks):
        self.networks = networks                 # the settings' list itself: a reload brings another one
        self.table = address_table(networks)
        self.every = self.table is None
        self.cache: dict = {}

    def accepts(self, host: str) -> bool:
        if self.every:
            return True
        ok = self.cache.get(host)
        if ok is None:
            ok = in_table(address_key(host), self.table)
            if len(self.cache) >= CACHE:            # a flood of spoofed addresses: a parse each (~0.5 µs), no growth
                self.cache.clear()
            self.cache[host] = ok
        return ok
