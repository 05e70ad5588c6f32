"""IP address blacklist entries (kinds `ip` and `cidr`, IPv4 and IPv6) as sorted integer ranges.

Theory of operation: an entry is an inclusive range [first, last] of addresses as integers
(an `ip` is a range of one). `IpRanges` keeps, per family, the ranges sorted by start with
overlapping and adjacent ones merged, so membership is one `bisect` and memory is two
integers per disjoint range however many overlapping entries were imported. IPv4 ranges are
stored in `array("I")` (4 bytes an end); IPv6 ones in a list of Python ints (they need 128
bits). The snapshot form is the same ranges packed big-endian: 8 bytes a range for IPv4,
32 for IPv6. Export gives the smallest list of CIDR blocks that cover the ranges exactly,
so two imported /25s that touch come back as one /24.
"""
from __future__ import annotations

import ipaddress
from array import array
from bisect import bisect_right

from ..urlhost import host_address, link_host


def parse_ip(v: str) -> tuple[int, int, int]:
    """`ip` kind: one address -> (family, first, last)."""
    try:
        a = ipaddress.ip_address(v.strip())
    except ValueError:
        raise ValueError(f"not an IP address: {v!r}") from None
    if a.version == 6 and a.ipv4_mapped is not None:      # ::ffff:192.0.2.9 is the IPv4 host, listed as such
        a = a.ipv4_mapped
    return a.version, int(a), int(a)


def url_host_if_ip(v: str) -> str:
    """`http://1.2.3.4/x` -> `1.2.3.4` (a link to an address lists the address: `lists add blacklist` and an
    `ip` row of an import alike), read as a browser reads the link's host (urlhost.host_address: `http://3221225992/`
    and `http://0xC0000208?x=1` are 192.0.2.8's links too, `http://[::ffff:192.0.2.8]/` as well), and `1.2.3.4.`
    -> `1.2.3.4` (a trailing dot, as a browser reads the host: it was the phone number 1234 to `lists add
    blacklist`); any other value as it is (a bare `3221225992` is a number, not a link)."""
    if "://" in v:
        try:
            a = host_address(link_host(v.strip()))
        except ValueError:
            return v
        return v if a is None else str(a)
    host = v[:-1] if v.endswith(".") else v
    try:
        parse_ip(host)
    except ValueError:
        return v
    return host


MIN_PREFIX = {4: 8, 6: 16}        # the broadest network a `cidr` row may name, per IP version


def parse_cidr(v: str, strict: bool = True) -> tuple[int, int, int]:
    """`cidr` kind: a network `addr/len` (host bits must be zero) -> (family, first, last). `strict`: a network
    broader than MIN_PREFIX is refused (not when removing one an earlier version stored)."""
    try:
        n = ipaddress.ip_network(v.strip(), strict=True)
    except ValueError as e:
        raise ValueError(f"not a CIDR network: {v!r} ({e})") from None
    if n.version == 6 and n.prefixlen >= 96 and n.network_address.ipv4_mapped is not None:
        n = ipaddress.ip_network(f"{n.network_address.ipv4_mapped}/{n.prefixlen - 96}")   # ::ffff:a.b.c.d/96+k
    if strict and n.prefixlen < MIN_PREFIX[n.version]:
        # a typo, not a policy (0.0.0.0/0 imported without a word: every link to an IP address blocked, the whole
        # address space published to other networks -- found by a probe)
        raise ValueError(f"too broad: {v.strip()!r} covers more than a /{MIN_PREFIX[n.version]} "
                         f"(IPv{n.version} networks of /{MIN_PREFIX[n.version]} or longer are accepted)")
    return n.version, int(n.network_address), int(n.broadcast_address)


class IpRanges:
    """Disjoint, non-adjacent inclusive ranges per family (4 and 6), sorted by start."""

    __slots__ = ("v4s", "v4e", "v6s", "v6e")

    def __init__(self):
        self.v4s, self.v4e = array("I"), array("I")
        self.v6s: list[int] = []
        self.v6e: list[int] = []

    def _fam(self, family: int):
        return (self.v4s, self.v4e) if family == 4 else (self.v6s, self.v6e)

    def __eq__(self, other) -> bool:
        return isinstance(other, IpRanges) and self.to_bytes() == other.to_bytes()

    def __repr__(self) -> str:
        return f"IpRanges({len(self.v4s)} IPv4, {len(self.v6s)} IPv6 ranges)"

    def __len__(self) -> int:
        return len(self.v4s) + len(self.v6s)

    def __contains__(self, addr) -> bool:
        """`addr`: an ipaddress object or its text."""
        a = addr if isinstance(addr, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else ipaddress.ip_address(addr)
        s, e = self._fam(a.version)
        i = bisect_right(s, int(a)) - 1
        return i >= 0 and e[i] >= int(a)

    def add(self, family: int, first: int, last: int) -> None:
        s, e = self._fam(family)
        # every range that overlaps or touches [first, last] is folded into it
        lo = bisect_right(s, first) - 1
        if lo < 0 or e[lo] + 1 < first:
            lo += 1
        hi = bisect_right(s, last + 1)
        if lo < hi:
            first, last = min(first, s[lo]), max(last, e[hi - 1])
        s[lo:hi] = array("I", [first]) if family == 4 else [first]
        e[lo:hi] = array("I", [last]) if family == 4 else [last]

    def remove(self, family: int, first: int, last: int) -> bool:
        """Take [first, last] out (splitting a range that covers more); True if anything was listed."""
        s, e = self._fam(family)
        lo = max(bisect_right(s, first) - 1, 0)
        hi = bisect_right(s, last)
        keep_s, keep_e, found = [], [], False
        for i in range(lo, hi):
            if e[i] < first:
                keep_s.append(s[i]), keep_e.append(e[i])
                continue
            found = True
            if s[i] < first:
                keep_s.append(s[i]), keep_e.append(first - 1)
            if e[i] > last:
                keep_s.append(last + 1), keep_e.append(e[i])
        if isinstance(s, array):
            s[lo:hi], e[lo:hi] = array("I", keep_s), array("I", keep_e)
        else:
            s[lo:hi], e[lo:hi] = keep_s, keep_e
        return found

    def ranges(self, family: int):
        s, e = self._fam(family)
        return zip(s, e)

    def cidrs(self):
        """(kind, text) rows: `ip` for a single address, `cidr` for a block; IPv4 first."""
        for fam, cls in ((4, ipaddress.IPv4Address), (6, ipaddress.IPv6Address)):
            for a, b in self.ranges(fam):
                for net in ipaddress.summarize_address_range(cls(a), cls(b)):
                    if net.num_addresses == 1:
                        yield "ip", str(net.network_address)
                    else:
                        yield "cidr", str(net)

    # --- snapshot form ---
    def to_bytes(self) -> tuple[bytes, bytes]:
        v4 = bytearray()
        for a, b in zip(self.v4s, self.v4e):
            v4 += a.to_bytes(4, "big") + b.to_bytes(4, "big")
        v6 = bytearray()
        for a, b in zip(self.v6s, self.v6e):
            v6 += a.to_bytes(16, "big") + b.to_bytes(16, "big")
        return bytes(v4), bytes(v6)

    @classmethod
    def from_bytes(cls, v4: bytes, v6: bytes) -> "IpRanges":
        if len(v4) % 8 or len(v6) % 32:
            raise ValueError("IP range section length is not a whole number of ranges")
        r = cls()
        for fam, data, w in ((4, v4, 4), (6, v6, 16)):
            prev = -1
            for off in range(0, len(data), 2 * w):
                a = int.from_bytes(data[off:off + w], "big")
                b = int.from_bytes(data[off + w:off + 2 * w], "big")
                if a > b or a <= prev + 1 and prev >= 0:
                    raise ValueError("IP ranges not sorted and disjoint")
                s, e = r._fam(fam)
                s.append(a)
                e.append(b)
                prev = b
        return r
