"""SIP (RFC 3261) messages: bytes <-> `SipMessage` (message.py), validation, limits. No I/O.

Theory of operation: `parse_datagram()` takes one UDP datagram, `framing.StreamParser` frames a
TCP byte stream by Content-Length; both give `SipMessage` objects (start line, headers in
order with their original names, canonical names and unfolded values, body bytes untouched)
or raise `SipParseError`, which carries the status to answer with (400, 505, 513, ...) when
the start line was a request we can answer, and None when the message must just be dropped
(a broken response, or bytes with no usable Via). The head is decoded once (UTF-8 with
surrogateescape, so any byte survives to `to_bytes()` unchanged) and each header's
canonical name is computed once, at parse time. Limits (`MAX_MESSAGE`, `MAX_HEADERS`,
`MAX_HEADER_LINE`, `MAX_VIAS`) bound the work one message can cause; every check below is
linear in the message size. What a proxy checks before forwarding (RFC 3261 §16.3) is in
checks.py. RFC 4475's torture tests are the regression suite for all of this.
"""
from __future__ import annotations

import re
import sys

from .grammar import COMPACT, SipParseError, ascii_int, is_token
from .message import SipMessage

_STATUS_RE = re.compile(r"^SIP/(\d+\.\d+) (\d{3}) (.*)$", re.A | re.S)
_REQ_RE = re.compile(r"^([^ ]+) ([^ ]+) SIP/(\d+\.\d+)$", re.A)

# Limits: what one message may cost. A datagram cannot exceed MAX_MESSAGE; a TCP message
# that does is answered 513 (§21.5.14) and its connection closed (the stream cannot resync).
MAX_MESSAGE = 65535
MAX_HEADERS = 256            # header fields (lines, after unfolding)
MAX_HEADER_LINE = 8192       # bytes in one unfolded header field
MAX_VIAS = 100               # Via values: Max-Forwards starts at 70 (§8.1.1.6), 100 leaves room


def _status_for(msg) -> int | None:
    return 400 if msg is not None and msg.is_request else None


# ---------------------------------------------------------------- parsing

def _split_head(data: bytes):
    i = data.find(b"\r\n\r\n")
    if i >= 0:
        return data[:i], data[i + 4:]
    i = data.find(b"\n\n")                                # lenient: bare LF
    if i >= 0:
        return data[:i], data[i + 2:]
    return None, None


_HEADER_RE = re.compile(r"\r\n([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*:[ \t]*([^\r\n]*)")
_CANON_MEMO: dict = {}
try:
    from ._sipfast import parse_request as _c_parse_request, split_head as _c_split_head
except ImportError:                                      # no C extension: the Python pass does it all
    _c_split_head = _c_parse_request = None


def _canon_memo(name: str) -> str:
    c = _CANON_MEMO.get(name)
    if c is None:
        n = name.lower()
        c = sys.intern(COMPACT.get(n, n))                # (the C passes find "via", "to"... by identity first)
        if len(_CANON_MEMO) < 4096:                      # bounded: names are few, unless a peer invents them
            _CANON_MEMO[name] = c
    return c


def _start_line(start: str):
    """(message with its start line, error to raise once the headers are read or None)."""
    msg = SipMessage()
    deferred = None
    if start.startswith("SIP/"):
        m = _STATUS_RE.match(start)
        if not m:
            raise SipParseError("malformed status line", None)
        code = int(m.group(2))
        if not 100 <= code <= 699:
            raise SipParseError(f"status code {code} out of range", None)
        msg.status, msg.reason, msg.version = code, m.group(3), "SIP/" + m.group(1)
        if m.group(1) != "2.0":
            raise SipParseError("unsupported SIP version in response", None)
        return msg, None
    m = _REQ_RE.match(start)
    if not m:
        msg.method, msg.uri = "?", "?"
        return msg, SipParseError("malformed request line", 400, msg)
    method, uri, ver = m.group(1), m.group(2), m.group(3)
    msg.method, msg.uri, msg.version = method, uri, "SIP/" + ver
    if not is_token(method):
        deferred = SipParseError(f"bad method {method[:20]!r}", 400, msg)
    elif uri.startswith("<") or ">" in uri:
        deferred = SipParseError("Request-URI enclosed in <>", 400, msg)
    elif ver != "2.0":
        deferred = SipParseError(f"SIP version {ver[:20]} not supported", 505, msg)
    return msg, deferred


def _parse_head(head: bytes) -> SipMessage:
    if _c_split_head is not None and len(head) <= MAX_HEADER_LINE:
        # the plain case below, in C (_siphead.h; None: not plain). No value can be over the
        # line limit in a head this size.
        r = _c_split_head(head, _CANON_MEMO, _canon_memo)
        if r is not None:
            msg, deferred = _start_line(r[0])
            msg.headers = r[1]
            if len(r[1]) > MAX_HEADERS:
                raise SipParseError(f"more than {MAX_HEADERS} header fields", _status_for(msg), msg)
            if deferred is not None:
                raise deferred
            return msg
    text = head.decode("utf-8", "surrogateescape")
    # The common case in one regular-expression pass: CRLF line ends only, no leading blank
    # line, and every line after the start line a plain `token: value` (no folding). Anything
    # else takes the line-by-line path below, which knows every exception.
    sl = text.find("\r\n")
    if sl > 0 and not text[0].isspace():
        n = text.count("\r\n")
        if text.count("\n") == n and text.count("\r") == n:
            pairs = _HEADER_RE.findall(text, sl)
            if len(pairs) == n:
                msg, deferred = _start_line(text[:sl])
                memo = _CANON_MEMO
                msg.headers = [[name, v.rstrip(" \t"), memo.get(name) or _canon_memo(name)] for name, v in pairs]
                status = _status_for(msg)
                if n > MAX_HEADERS:
                    raise SipParseError(f"more than {MAX_HEADERS} header fields", status, msg)
                if len(text) > MAX_HEADER_LINE:
                    for name, v in pairs:
                        if len(v) > MAX_HEADER_LINE:
                            raise SipParseError(f"header {name[:30]} longer than {MAX_HEADER_LINE} bytes", status, msg)
                if deferred is not None:
                    raise deferred
                return msg
    lines = text.split("\r\n")
    if text.count("\n") != len(lines) - 1:               # lenient: bare LF line ends
        lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    # RFC 3261 §7.5: ignore leading CRLFs -- those only (CRs and LFs, as on_datagram strips them before the overload
    # share's byte test): a line of spaces or tabs before it is no CRLF, and a request after one was never counted
    while i < len(lines) and not lines[i].strip("\r"):
        i += 1
    if i == len(lines):
        raise SipParseError("empty message", None)
    msg, deferred = _start_line(lines[i])
    status = _status_for(msg)
    headers = msg.headers
    cur = None
    for raw in lines[i + 1:]:
        if raw[:1] in (" ", "\t"):
            if cur is None:
                raise SipParseError("continuation line before any header", status, msg)
            # folding LWS is one SP between words (§7.3.1), not the start of a value the first line left empty: a
            # folded "Call-ID:" read " x" was another call's id than "x" (its 200 and re-INVITEs did not find it)
            cur[1] = f"{cur[1]} {raw.strip()}" if cur[1] else raw.strip()
            if len(cur[1]) > MAX_HEADER_LINE:
                raise SipParseError(f"header {cur[0][:30]} longer than {MAX_HEADER_LINE} bytes", status, msg)
            continue
        if not raw.strip():
            continue
        name, sep, val = raw.partition(":")
        name = name.rstrip(" \t")
        if not sep or not is_token(name):
            raise SipParseError(f"malformed header line {raw[:40]!r}", status, msg)
        if len(raw) > MAX_HEADER_LINE:
            raise SipParseError(f"header {name[:30]} longer than {MAX_HEADER_LINE} bytes", status, msg)
        cur = [name, val.strip(), _canon_memo(name)]
        headers.append(cur)
        if len(headers) > MAX_HEADERS:
            raise SipParseError(f"more than {MAX_HEADERS} header fields", status, msg)
    if deferred is not None:
        raise deferred          # raised after the headers are read, so the error can be answered
    return msg


def _content_length(msg: SipMessage) -> int | None:
    n = None
    for h in msg.headers:
        if h[2] == "content-length":
            try:
                v = ascii_int(h[1], "Content-Length")
            except SipParseError as e:
                raise SipParseError(e.reason, _status_for(msg), msg) from None
            if n is not None and v != n:
                raise SipParseError("conflicting Content-Length values", _status_for(msg), msg)
            n = v
    return n


def parse_datagram(data: bytes) -> SipMessage:
    """One UDP datagram (RFC 3261 §18.3: Content-Length bounds the body; extra octets ignored)."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message too large", None)
    if _c_parse_request is not None:
        msg = _c_parse_request(data, _CANON_MEMO, _canon_memo)  # a plain request, in C (_sipmsg.h); None: below
        if msg is not None:
            return msg
    if data[:1] in (b"\r", b"\n"):                     # CRLFs before the start line, ignored as on a stream (§7.5):
        data = data.lstrip(b"\r\n")                     # else the blank line they make ends an empty head
    head, body = _split_head(data)
    if head is None:
        head, body = data, b""
        if not data.rstrip().endswith(b"\n") and b"\n" not in data:
            raise SipParseError("no header terminator", None)
    msg = _parse_head(head)
    cl = _content_length(msg)
    if cl is not None:
        if cl > len(body):
            raise SipParseError(f"Content-Length {cl} larger than the {len(body)} body bytes", _status_for(msg), msg)
        body = body[:cl]
    msg.body = body
    return msg


# RFC 3261 §21's reason phrases, RFC 8197's 607 and RFC 8688's 608: a rule's `sip_code` may be any final error code
# (400-699), and an unlisted one was sent as "486 Error"; the screen's own 200s (OPTIONS, CANCEL) went out as
# "200 Error"
REASONS = {100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
           200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
           408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
           415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
           421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
           481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
           485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
           491: "Request Pending", 493: "Undecipherable", 500: "Server Internal Error", 501: "Not Implemented",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
           513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
           606: "Not Acceptable", 607: "Unwanted", 608: "Rejected"}


def make_response(req: SipMessage, status: int, reason: str | None = None, to_tag: str | None = None,
                  extra=()) -> SipMessage:
    """A response built from a request as RFC 3261 §8.2.6 says (Via, From, To, Call-ID, CSeq copied)."""
    r = SipMessage(status=status, reason=reason or REASONS.get(status, "Error"))
    for n, v, c in req.headers:
        if c in ("via", "from", "call-id", "cseq"):
            r.headers.append([n, v, c])
        elif c == "to":
            if to_tag and not req.tag_in(v):         # the header's tag parameter, not a URI's ;tag= inside <>
                v = f"{v};tag={to_tag}"
            r.headers.append([n, v, c])
    for n, v in extra:
        r.add(n, v)
    r.add("Content-Length", "0")
    return r
