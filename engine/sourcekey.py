"""The key a per-source limit counts a peer address under: an IPv6 address by its /64. No I/O.

Theory of operation: a per-source limit (SMPP max_connections_per_source and the bind back-off, SIP
max_tcp_per_source, the INVITE fair shares) bounds what one party can take only if that party has few
keys. Over IPv4 a party has one address (or one NAT's). Over IPv6 a subscriber or a hosted server is
given a whole /64 (RFC 6177 §2, RFC 7421: the /64 is the unit a site's interfaces take addresses from,
and SLAAC / privacy addresses, RFC 8981, pick any of its 2^64), so keyed by the full address one attacker
has 2^64 keys and no per-source limit holds it. Kamailio's pike and fail2ban-style tools key IPv6 sources
by prefix for that reason; so do we: an IPv6 address is counted as its /64 (V6_PREFIX), written as the
network (`2001:db8:1:2::/64`). An IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2: a
dual-stack socket's IPv4 peer) is the IPv4 address it is; a scope id (fe80::1%eth0) is dropped. IPv4
addresses, names and anything unparsable are their own key, unchanged (no cost: no parse).

Keys are for counting only: logs, accounts' allowed_networks and accept_networks still see the address.
"""
from __future__ import annotations

import socket

V6_PREFIX = 64                                  # bits of an IPv6 source that make its key (RFC 6177: a site's /64)
_MAPPED = b"\0" * 10 + b"\xff\xff"              # ::ffff:0:0/96, RFC 4291 §2.5.5.2
_MASK = ((1 << V6_PREFIX) - 1) << (128 - V6_PREFIX)
CACHE = 4096                                    # addresses whose key is kept (bounded: cleared when full)
_cache: dict = {}


def source_key(host: str) -> str:
    """The key per-source limits count `host` (an address as the socket gives it) under (module docstring)."""
    if ":" not in host:                         # IPv4 (or a name): itself
        return host
    k = _cache.get(host)
    if k is not None:
        return k
    try:
        b = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    except (OSError, ValueError):
        return host
    if b[:12] == _MAPPED:
        k = socket.inet_ntop(socket.AF_INET, b[12:])
    else:
        net = (int.from_bytes(b, "big") & _MASK).to_bytes(16, "big")
        k = f"{socket.inet_ntop(socket.AF_INET6, net)}/{V6_PREFIX}"
    if len(_cache) >= CACHE:                    # a flood of distinct addresses: a parse each (~1 µs), no growth
        _cache.clear()
    _cache[host] = k
    return k
