"""The checks a proxy applies to a request before forwarding it (RFC 3261 §16.3). No I/O.

`check_request()` returns the error response to send (status, reason, extra headers), or None
when the request may proceed; it leaves the parsed Vias (`msg.vias`), the first value of each
header (`msg.first`) and the parsed Request-URI (`msg.ruri`) on the message for the server's
loop check and routing. Every check is linear in the message size (codec.py's limits bound it).
"""
from __future__ import annotations

from .codec import MAX_VIAS
from .message import SipMessage
from .grammar import SipParseError, parse_name_addr, parse_uri, parse_via

try:                                    # the pass when every check passes, in C (_sipcheck.h); None: decided here
    from ._sipfast import check_plain as _c_check
except ImportError:
    _c_check = None

SINGLE = ("to", "from", "call-id", "cseq", "max-forwards", "content-length")
REQUIRED = ("to", "from", "call-id", "cseq", "via")
KNOWN_SCHEMES = {"sip", "sips", "tel"}
# Methods are case-sensitive (RFC 3261 §7.1): "invite" is not INVITE to this screen, but a next hop may read it as
# one (Kamailio does) -- a call past the screen unjudged. A known method written in another case is refused.
KNOWN_METHODS = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH",
                 "INFO", "REFER", "MESSAGE", "UPDATE"}


def check_request(msg: SipMessage) -> tuple[int, str, list] | None:
    """(status, reason, extra headers) to reject with, or None when the request may proceed.
    Leaves the parsed Vias in `msg.vias` (the server's loop check and routing reuse them)."""
    if _c_check is not None:
        r = _c_check(msg.method, msg.uri, msg.headers)
        if r is not None:                       # every check passed: what the pass below leaves, built in C
            msg.first, msg.vias, msg.ruri, na = r
            msg._na.update(na)
            return None
    up = msg.method.upper()
    if up != msg.method and up in KNOWN_METHODS:
        return 400, f"Bad Request (method {up} must be written in upper case)", []
    try:
        seen: dict[str, str] = {}
        for h in msg.headers:
            c = h[2]
            v = seen.get(c)
            if v is None:
                seen[c] = h[1]
            elif v != h[1] and c in SINGLE:
                return 400, f"Multiple {c.title()} headers", []
        msg.first = seen
        for h in REQUIRED:
            if h not in seen:
                return 400, f"Missing {h.title()} header", []
        vias = msg.values("via")
        if len(vias) > MAX_VIAS:
            return 400, f"Too many Via headers (more than {MAX_VIAS})", []
        msg.vias = [parse_via(v) for v in vias]
        msg.name_addr(seen["to"])                   # both must parse (quotbal: unbalanced quotes)
        msg.name_addr(seen["from"])
        cseq = seen["cseq"].split()
        if len(cseq) != 2 or not cseq[0].isascii() or not cseq[0].isdigit():
            return 400, "Malformed CSeq", []
        if len(cseq[0]) > 10 or int(cseq[0]) > 2 ** 31 - 1:
            return 400, "CSeq number too large", []
        if cseq[1] != msg.method:
            return 400, "CSeq method does not match the request method", []
        mf = seen.get("max-forwards")
        if mf is not None:
            mf = mf.strip()
            if not mf.isascii() or not mf.isdigit() or len(mf) > 10 or int(mf) > 255:
                return 400, "Bad Max-Forwards", []
        for c in ("contact", "route", "record-route"):
            if c in seen:
                for v in msg.values(c):
                    if v != "*":
                        parse_name_addr(v)
        scheme = msg.uri.split(":", 1)[0].lower() if ":" in msg.uri else ""
        if scheme not in KNOWN_SCHEMES:
            return 416, "Unsupported URI Scheme", []
        if scheme in ("sip", "sips") and "?" in msg.uri.rpartition("@")[2]:   # '?' in the user part is legal
            return 400, "Bad Request (headers in the Request-URI)", []        # RFC 4475 escruri
        msg.ruri = parse_uri(msg.uri)
    except SipParseError as e:
        return (e.status or 400), f"Bad Request ({e.reason})", []
    if "proxy-require" in seen:
        return 420, "Bad Extension", [["Unsupported", ", ".join(msg.values("proxy-require"))]]
    return None
