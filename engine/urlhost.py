"""A link's host as a browser reads it (the WHATWG URL Standard's host parser), for the lists to look it up.

A host of a special-scheme URL (http, https, ftp) that ends in a number is an IPv4 address, in any of the forms
the standard's IPv4 parser accepts: one to four dot-separated numbers, each decimal, octal (a leading 0) or hex
(0x), the last one filling the bytes the others leave (`3221225992`, `0xC0000208`, `0300.0.02.010`, `192.0.520`,
`192.11010056` are all 192.0.2.8), or no host at all (`1.2.3.999`: a browser refuses the link). A host in brackets
is an IPv6 address. Pure: no I/O, no state.
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import unquote

_RADIX_DIGITS = {10: re.compile(r"[0-9]+"), 8: re.compile(r"[0-7]+"), 16: re.compile(r"[0-9a-fA-F]+")}
# the longest digit string (leading zeros dropped) that can still be below 2**32 in each radix; a longer one is
# too large whatever it says (and is not handed to int(): a 5,000-digit part is just too large, in O(1))
_MAX_DIGITS = {10: 10, 8: 11, 16: 8}
TOO_LARGE = 1 << 32


def ipv4_number(part: str) -> int | None:
    """The standard's IPv4 number parser: `part` as decimal, octal (`0` and more) or hex (`0x`, `0X`); None:
    failure. A number of 2**32 or more is TOO_LARGE (the parser's caller refuses it)."""
    if part.isdigit() and part.isascii() and (part[0] != "0" or len(part) == 1):    # plain decimal: most are
        return int(part) if len(part) <= _MAX_DIGITS[10] else TOO_LARGE
    if not part:
        return None
    radix = 10
    if len(part) >= 2 and part[0] == "0" and part[1] in "xX":
        part, radix = part[2:], 16
    elif len(part) >= 2 and part[0] == "0":
        part, radix = part[1:], 8
    if not part:
        return 0
    if _RADIX_DIGITS[radix].fullmatch(part) is None:
        return None
    part = part.lstrip("0")
    if len(part) > _MAX_DIGITS[radix]:
        return TOO_LARGE
    return min(int(part or "0", radix), TOO_LARGE)


def ends_in_number(host: str) -> bool:
    """The standard's ends-in-a-number checker: the host's last label (a final dot aside) is all ASCII digits or
    an IPv4 number (`0x…`): the host is then an IPv4 address or no host at all, never a name."""
    if host.endswith("."):
        host = host[:-1]
    last = host[host.rfind(".") + 1:]
    return (last.isdigit() and last.isascii()) or (last != "" and ipv4_number(last) is not None)


def parse_ipv4(host: str) -> int | None:
    """The standard's IPv4 parser: the address as an integer, None: failure (no browser opens the link)."""
    parts = host.split(".", 5)
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if len(parts) > 4:
        return None
    numbers = [ipv4_number(p) for p in parts]
    if None in numbers or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    address = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        address += n << (8 * (3 - i))
    return address


def host_address(host: str):
    """The address a link's host (as find_hosts gives it: lower-cased, an IPv6 one in brackets) is, as an
    ipaddress object (an IPv4-mapped IPv6 one as its IPv4 address); None: a name. ValueError: neither (a host
    ending in a number that is no IPv4 address, `1.2.3.999`; bad brackets): no browser opens the link."""
    if host[:1] == "[":
        inner = host[1:-1] if host[-1:] == "]" else ""
        if "%" in inner:                # (ipaddress takes a scope id; a URL's host does not)
            raise ValueError(f"not an IPv6 address: {host!r}")
        a = ipaddress.IPv6Address(inner)
        return a.ipv4_mapped or a
    if not ends_in_number(host):
        return None
    n = parse_ipv4(host)
    if n is None:
        raise ValueError(f"not an IPv4 address: {host!r}")
    return ipaddress.IPv4Address(n)


# default-ignorable code points a link's host may hide (UTS #46 maps them to nothing, or a renderer shows nothing):
# soft hyphen, combining grapheme joiner, Mongolian variation selectors, zero-width space/joiners and direction
# marks, word joiner and invisible operators, variation selectors (17-256 too), BOM, shorthand format controls
IGNORABLE = re.compile("[\u00ad\u034f\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufe00-\ufe0f\ufeff"
                        "\U0001bca0-\U0001bca3\U000e0100-\U000e01ef]")
FULL_STOPS = str.maketrans({"\u3002": ".", "\uff61": "."})


def percent_decoded(host: str) -> str:
    """The standard's host parser reads a host percent-decoded first: `http://%31%39%32.0.2.8/` is 192.0.2.8's link,
    `http://ph%69sh.example/` phish.example's; then maps it as UTS #46 does before asking whether it ends in a
    number: full-width and other compatibility forms, ideographic full stops, ignorables (`%EF%BC%91%EF%BC%99%EF%BC%92
    .0.2.8`, `192%E3%80%820.2.8` and `192.0.2.%C2%AD8` are 192.0.2.8 too: were a name, or no host)."""
    if "%" not in host:
        return host
    host = unquote(host)
    if host.isascii():
        return host
    return IGNORABLE.sub("", unicodedata.normalize("NFKC", host).translate(FULL_STOPS))


_AUTHORITY_END = re.compile(r"[/?#\\]")


def link_host(url: str) -> str:
    """The host of `scheme://[userinfo@]host[:port][/?#…]`, lower-cased: an IPv6 one with its brackets, without a
    port. The authority ends at the first `/`, `?`, `#` or `\\` (`http://192.0.2.8?x=1` is 192.0.2.8's link). An
    IPv6 address written without its brackets (`http://2001:db8::9/`, which no browser opens) is given in them."""
    authority = _AUTHORITY_END.split(url.split("://", 1)[1], 1)[0]
    host = percent_decoded(authority.rpartition("@")[2]).lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0] if host.count(":") <= 1 else f"[{host}]"
