"""Responses relayed without a full parse (RFC 3261 §16.7 steps 3 and 9 as byte edits). No I/O.

Theory of operation: a response needs only two things from a stateless proxy: its top Via
removed, after checking it is the one we added, and the next Via read to know where to send
it. `relay_response()` finds both with one regular-expression pass over the head, and only
when the head is plainly well-formed: CRLF line ends, no folded lines, no quoted strings in
the Vias, exactly one Content-Length equal to the body length, and a top Via that is byte for
byte what we wrote (`SIP/2.0/UDP host:port;branch=z9hG4bKtf`). Anything else returns
`FULL_PARSE`, and the caller parses the message completely as before, so this path can only
ever agree with the full one. The body is never touched.
"""
from __future__ import annotations

import re

from .grammar import SipParseError, Via, parse_via

FULL_PARSE = None                # the fast path cannot prove the message simple: parse it fully
NOT_OURS = ()                    # drop: top Via not ours, or no Via below ours

_HDR = re.compile(rb"\r\n(via|v|content-length|l|cseq|call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.I)
_STATUS = re.compile(rb"SIP/2\.0 [1-6]\d\d ")


def relay_response(data: bytes, our_via_prefixes: tuple) -> "tuple[bytes, Via, bytes, bytes] | tuple | None":
    """(bytes to send, the next Via, CSeq value, Call-ID value), NOT_OURS, or FULL_PARSE."""
    if not _STATUS.match(data):
        return FULL_PARSE
    he = data.find(b"\r\n\r\n")
    if he < 0:
        return FULL_PARSE
    head = data[:he + 2]                                      # keep the last header's CRLF for the pattern
    if b"\r\n " in head or b"\r\n\t" in head or head.count(b"\n") != head.count(b"\r\n"):
        return FULL_PARSE
    vias, cl, cseq, call_id = [], None, b"", b""
    for m in _HDR.finditer(head):
        name = m.group(1).lower()
        if name in (b"via", b"v"):
            vias.append(m)
        elif name in (b"content-length", b"l"):
            if cl is not None:
                return FULL_PARSE
            cl = m.group(2).rstrip(b" \t")
        elif name == b"cseq":
            cseq = m.group(2)
        else:
            call_id = m.group(2)
    if not vias or cl is None or not cl.isdigit() or int(cl) != len(data) - he - 4:
        return FULL_PARSE
    top = vias[0]
    value = top.group(2)
    if b'"' in value or (len(vias) > 1 and b'"' in vias[1].group(2)):
        return FULL_PARSE
    if not value.startswith(our_via_prefixes):
        return NOT_OURS if b"z9hG4bKtf" not in value else FULL_PARSE
    comma = value.find(b",")
    if comma >= 0:                                            # several Vias in one header: drop the first value
        rest = value[comma + 1:].strip()
        nxt_raw = rest.split(b",", 1)[0]
        out = data[:top.start(2)] + rest + data[top.end(2):]
    else:
        if len(vias) < 2:
            return NOT_OURS                                   # it was meant for us
        nxt_raw = vias[1].group(2).split(b",", 1)[0]
        out = data[:top.start()] + data[top.end():]           # the whole "\r\nVia: ..." line goes
    try:
        nxt = parse_via(nxt_raw.decode("utf-8", "surrogateescape"))
    except SipParseError:
        return NOT_OURS
    return out, nxt, cseq, call_id
