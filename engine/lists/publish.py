"""Published blacklists: `telfilter lists export blacklist --format csv|rbldnsd|hosts|json`.

Decision 1609/QĐ-BTTTT task IV.4 asks for a public, kept-up-to-date blacklist. Each format
carries the generation time and a SHA-256 of its entries so a consumer can tell a stale or
truncated copy:

    csv      the import format (`kind,value`), usable to re-import elsewhere
    json     {"generated", "sha256", "counts", "numbers", "domains", "ips"}
    hosts    `0.0.0.0 domain` lines for DNS sinkholes; numbers and IPs cannot be expressed
             there and are counted in the header instead
    rbldnsd  a `combined` dataset file for rbldnsd(8) (`rbldnsd ... bl.example:combined:FILE`):
               $DATASET dnset:domains domain     .spam.example   -> spam.example and every subdomain
               $DATASET dnset:numbers number     84912345678     -> E.164 digits, one label
               $DATASET ip4trie:ipv4 ip @        192.0.2.0/24    -> the usual DNSBL query 4.3.2.1.<zone>
               $DATASET ip6trie:ipv6 ip @        2001:db8::/32      (and <32 nibbles>.<zone> for IPv6)
             so `spam.example.domain.bl.example`, `84912345678.number.bl.example` and
             `2.0.0.192.bl.example` answer A 127.0.0.2 (domains), .3 (numbers), .4 (addresses).

The checksum is SHA-256 over the entry lines exactly as written (UTF-8, each ending in
"\\n"), in the order written; the header lines are not part of it. `verify_zone()` recomputes
it for a written rbldnsd or hosts file.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone

from ..numbers import format_number
from .csvio import write_csv

FORMATS = ("csv", "rbldnsd", "hosts", "json")
_SUM_RE = re.compile(r"^# sha256 ([0-9a-f]{64}) ")


def _now(now) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digits(n: int) -> str:
    return format_number(n).lstrip("+")


def rbldnsd_lines(L) -> list[str]:
    """The entry part of the zone (everything the checksum covers)."""
    out = ["$DATASET dnset:domains domain",
           ":127.0.0.2:Listed by telfilter: domain $ spreads spam",
           # a leading dot lists the domain itself and all its subdomains (rbldnsd(8), dnset)
           *("." + d for d in sorted(L.bl_domains)),
           "$DATASET dnset:numbers number",
           ":127.0.0.3:Listed by telfilter: number $ sends spam",
           *(_digits(n) for n in L.bl_numbers),
           "$DATASET ip4trie:ipv4 ip @",
           ":127.0.0.4:Listed by telfilter: address $ sends spam",
           *(f"{a}/{p}" for a, p in _nets(L, 4)),
           "$DATASET ip6trie:ipv6 ip @",
           ":127.0.0.4:Listed by telfilter: address $ sends spam",
           *(f"{a}/{p}" for a, p in _nets(L, 6))]
    return out


def _nets(L, family: int):
    import ipaddress
    cls = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    for a, b in L.bl_ips.ranges(family):
        for net in ipaddress.summarize_address_range(cls(a), cls(b)):
            yield net.network_address, net.prefixlen


def _checksum(lines) -> str:
    h = hashlib.sha256()
    for ln in lines:
        h.update(ln.encode("utf-8") + b"\n")
    return h.hexdigest()


def _counts(L) -> dict:
    return {"domains": len(L.bl_domains), "numbers": len(L.bl_numbers), "ip_ranges": len(L.bl_ips)}


def write_blacklist(L, fmt: str, out, now: datetime | None = None) -> int:
    """Write `L`'s blacklist in `fmt` to the text stream `out`; returns the number of entries."""
    c = _counts(L)
    total = sum(c.values())
    if fmt == "csv":
        return write_csv("blacklist", L.rows("blacklist"), out)
    if fmt == "json":
        numbers = [format_number(n) for n in L.bl_numbers]
        domains = sorted(L.bl_domains)
        ips = [v for _, v in L.bl_ips.cidrs()]
        body = json.dumps({"numbers": numbers, "domains": domains, "ips": ips}, sort_keys=True, ensure_ascii=False)
        doc = {"generated": _now(now), "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
               "sha256_of": "the JSON text of {domains, ips, numbers}: sorted keys, separators ', ' and ': ', UTF-8",
               "counts": c, "numbers": numbers, "domains": domains, "ips": ips}
        out.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        return total
    if fmt == "hosts":
        lines = [f"0.0.0.0 {d}" for d in sorted(L.bl_domains)]
        out.write(f"# telfilter blacklist (hosts format), generated {_now(now)}\n"
                  f"# sha256 {_checksum(lines)} over the {len(lines)} entry lines below\n"
                  f"# hosts files cannot list numbers or IP ranges: {c['numbers']} numbers and "
                  f"{c['ip_ranges']} IP ranges are in the rbldnsd, json and csv exports\n")
        out.writelines(ln + "\n" for ln in lines)
        return len(lines)
    if fmt == "rbldnsd":
        lines = rbldnsd_lines(L)
        out.write(f"# telfilter blacklist, rbldnsd combined dataset, generated {_now(now)}\n"
                  f"# sha256 {_checksum(lines)} over the {len(lines)} lines after this header\n"
                  f"# {c['domains']} domains (subzone domain), {c['numbers']} numbers (subzone number), "
                  f"{c['ip_ranges']} IP ranges (subzone ip and the base zone)\n"
                  "# load with: rbldnsd -r DIR -b 127.0.0.1/53 bl.example:combined:FILE\n")
        out.writelines(ln + "\n" for ln in lines)
        return total
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def verify_zone(text: str) -> bool:
    """True if the `# sha256` header of an rbldnsd or hosts export matches its entry lines."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    want, start = None, None
    for i, ln in enumerate(lines):
        if not ln.startswith("# "):
            start = i
            break
        m = _SUM_RE.match(ln)
        if m:
            want = m.group(1)
    if want is None:
        return False
    return _checksum(lines[start:] if start is not None else []) == want
