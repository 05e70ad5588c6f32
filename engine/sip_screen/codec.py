"""SIP (RFC 3261) messages: bytes <-> `SipMessage`, validation, header grammar. No I/O.

Theory of operation: `parse_datagram()` takes one UDP datagram, `StreamParser` frames a TCP
byte stream by Content-Length; both give `SipMessage` objects (start line, headers in
order with their original names and unfolded values, body bytes untouched) or raise
`SipParseError`, which carries the status to answer with (400, 505, ...) when the start
line was a request we can answer, and None when the message must just be dropped (a
broken response, or bytes with no usable Via). `check_request()` applies the rules a
proxy enforces before forwarding (RFC 3261 §16.3) and returns the error response to send,
if any. RFC 4475's torture tests are the regression suite for all of this.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length", "c": "content-type",
           "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via", "r": "refer-to", "b": "referred-by",
           "o": "event", "u": "allow-events", "x": "session-expires", "a": "accept-contact", "j": "reject-contact",
           "d": "request-disposition", "y": "identity", "n": "identity-info"}
# headers whose value is a comma-separated list (RFC 3261 §7.3.1); others are single values
LIST_HEADERS = {"via", "route", "record-route", "contact", "allow", "supported", "require", "proxy-require",
                "unsupported", "accept", "accept-encoding", "accept-language", "allow-events", "in-reply-to",
                "warning", "content-encoding", "content-language", "path", "p-asserted-identity"}
SINGLE = ("to", "from", "call-id", "cseq", "max-forwards", "content-length")
REQUIRED = ("to", "from", "call-id", "cseq", "via")
KNOWN_SCHEMES = {"sip", "sips", "tel"}
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_STATUS_RE = re.compile(rb"^SIP/(\d+\.\d+) (\d{3}) (.*)$")
_REQ_RE = re.compile(rb"^([^ ]+) ([^ ]+) SIP/(\d+\.\d+)$")
MAX_MESSAGE = 65535


class SipParseError(ValueError):
    def __init__(self, reason: str, status: int | None = 400, msg: "SipMessage | None" = None, extra=()):
        super().__init__(reason)
        self.reason, self.status, self.msg, self.extra = reason, status, msg, list(extra)


def canon(name: str) -> str:
    n = name.strip().lower()
    return COMPACT.get(n, n)


@dataclass
class SipMessage:
    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    version: str = "SIP/2.0"
    headers: list = field(default_factory=list)       # [[name as received, value]]
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        c = canon(name)
        for n, v in self.headers:
            if canon(n) == c:
                return v
        return None

    def values(self, name: str) -> list[str]:
        """Every value of a header, list headers split at top-level commas."""
        c = canon(name)
        out = []
        for n, v in self.headers:
            if canon(n) == c:
                out.extend(split_list(v) if c in LIST_HEADERS else [v])
        return out

    def count(self, name: str) -> int:
        c = canon(name)
        return sum(1 for n, _ in self.headers if canon(n) == c)

    def set(self, name: str, value: str) -> None:
        c = canon(name)
        for h in self.headers:
            if canon(h[0]) == c:
                h[1] = value
                return
        self.headers.append([name, value])

    def remove(self, name: str) -> None:
        c = canon(name)
        self.headers = [h for h in self.headers if canon(h[0]) != c]

    def prepend(self, name: str, value: str) -> None:
        self.headers.insert(0, [name, value])

    def insert_before_first(self, name: str, value: str) -> None:
        c = canon(name)
        for i, h in enumerate(self.headers):
            if canon(h[0]) == c:
                self.headers.insert(i, [name, value])
                return
        self.headers.insert(0, [name, value])

    def pop_first_value(self, name: str) -> str | None:
        """Remove the first value of a list header (the top Via, the top Route)."""
        c = canon(name)
        for i, h in enumerate(self.headers):
            if canon(h[0]) == c:
                vals = split_list(h[1])
                first = vals[0] if vals else None
                if len(vals) > 1:
                    h[1] = ", ".join(vals[1:])
                else:
                    del self.headers[i]
                return first
        return None

    def to_bytes(self) -> bytes:
        start = (f"{self.method} {self.uri} {self.version}" if self.is_request
                 else f"{self.version} {self.status} {self.reason}")
        lines = [start] + [f"{n}: {v}" for n, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body


# ---------------------------------------------------------------- grammar helpers

def split_list(value: str) -> list[str]:
    """Split at commas outside quotes and angle brackets."""
    out, cur, q, ang, esc = [], [], False, 0, False
    for ch in value:
        if esc:
            cur.append(ch)
            esc = False
            continue
        if q:
            if ch == "\\":
                esc = True
            elif ch == '"':
                q = False
            cur.append(ch)
            continue
        if ch == '"':
            q = True
        elif ch == "<":
            ang += 1
        elif ch == ">":
            ang = max(0, ang - 1)
        elif ch == "," and ang == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if q:
        raise SipParseError("unterminated quoted string")
    last = "".join(cur).strip()
    out.append(last)
    return out


@dataclass
class NameAddr:
    display: str
    uri: str
    params: dict


def parse_name_addr(value: str) -> NameAddr:
    v = value.strip()
    display = ""
    if v.startswith('"'):
        i, esc = 1, False
        while i < len(v):
            ch = v[i]
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                break
            i += 1
        else:
            raise SipParseError("unterminated quoted display name")
        display = v[1:i]
        v = v[i + 1:].strip()
        if not v.startswith("<"):
            raise SipParseError("quoted display name not followed by <URI>")
    if "<" in v:
        lt = v.index("<")
        if not display:
            display = v[:lt].strip()
            # an unquoted display name is tokens separated by LWS (RFC 3261 §25.1; RFC 4475 baddn)
            if display and not all(_TOKEN.match(w) for w in display.split()):
                raise SipParseError(f"unquoted display name with non-token characters: {display[:30]!r}")
        gt = v.find(">", lt)
        if gt < 0:
            raise SipParseError("unmatched < in name-addr")
        uri, rest = v[lt + 1:gt].strip(), v[gt + 1:]
    else:
        uri, _, rest = v.partition(";")
        rest = ";" + rest if rest else ""
        uri = uri.strip()
        # RFC 3261 §20: a URI with headers ('?') or commas must be in a name-addr (RFC 4475 regbadct)
        if "?" in uri or "," in uri or " " in uri:
            raise SipParseError(f"URI with ?, comma or space outside <>: {uri[:40]!r}")
    if not uri or ":" not in uri:
        raise SipParseError(f"not a URI: {uri!r}")
    return NameAddr(display, uri, parse_params(rest))


def parse_params(s: str) -> dict:
    s = s.strip()
    if not s:
        return {}
    if not s.startswith(";"):
        raise SipParseError(f"unexpected {s[:20]!r} after URI")
    out = {}
    for p in s[1:].split(";"):
        p = p.strip()
        if not p:
            raise SipParseError("empty header parameter")
        k, _, val = p.partition("=")
        out[k.strip().lower()] = val.strip()
    return out


@dataclass
class SipUri:
    scheme: str
    user: str
    host: str
    port: int | None
    params: dict


def parse_uri(uri: str) -> SipUri:
    scheme, sep, rest = uri.partition(":")
    if not sep or not _TOKEN.match(scheme):
        raise SipParseError(f"bad URI {uri!r}")
    scheme = scheme.lower()
    if scheme == "tel":
        num, _, p = rest.partition(";")
        return SipUri("tel", num, "", None, {})
    if scheme not in ("sip", "sips"):
        return SipUri(scheme, "", "", None, {})
    rest = rest.split("?", 1)[0]
    hostpart, _, params = rest.partition(";")
    user = ""
    if "@" in hostpart:
        user, _, hostpart = hostpart.rpartition("@")
        user = user.split(":", 1)[0]
    host, port = hostpart, None
    if hostpart.startswith("["):
        end = hostpart.find("]")
        host, tail = hostpart[1:end], hostpart[end + 1:]
        if tail.startswith(":"):
            port = _port(tail[1:])
    elif ":" in hostpart:
        host, p = hostpart.rsplit(":", 1)
        port = _port(p)
    if not host:
        raise SipParseError(f"URI without host: {uri!r}")
    prm = {}
    for kv in params.split(";") if params else []:
        if kv:
            k, _, v = kv.partition("=")
            prm[k.lower()] = v
    return SipUri(scheme, unescape(user), host.lower(), port, prm)


def _port(p: str) -> int:
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise SipParseError(f"bad port {p!r}")
    return int(p)


def unescape(s: str) -> str:
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), s)


@dataclass
class Via:
    transport: str
    host: str
    port: int | None
    params: dict
    raw: str


def parse_via(value: str) -> Via:
    v = value.strip()
    m = re.match(r"^SIP\s*/\s*(\d+\.\d+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+)\s*(.*)$", v, re.S)
    if not m:
        raise SipParseError(f"bad Via {value!r}")
    if m.group(1) != "2.0":
        raise SipParseError(f"Via version SIP/{m.group(1)}", 505)
    sent_by, params = m.group(3), m.group(4)
    host, port = sent_by, None
    if sent_by.startswith("["):
        end = sent_by.find("]")
        host, tail = sent_by[1:end], sent_by[end + 1:]
        port = _port(tail[1:]) if tail.startswith(":") else None
    elif ":" in sent_by:
        host, p = sent_by.rsplit(":", 1)
        port = _port(p)
    prm = {}
    if params.strip():
        if not params.strip().startswith(";"):
            raise SipParseError(f"bad Via parameters {params!r}")
        for kv in params.strip()[1:].split(";"):
            kv = kv.strip()
            if not kv:
                raise SipParseError("empty Via parameter")
            k, _, val = kv.partition("=")
            prm[k.strip().lower()] = val.strip()
    return Via(m.group(2).upper(), host.lower(), port, prm, v)


# ---------------------------------------------------------------- parsing

def _split_head(data: bytes):
    i = data.find(b"\r\n\r\n")
    if i >= 0:
        return data[:i], data[i + 4:]
    i = data.find(b"\n\n")                                # lenient: bare LF
    if i >= 0:
        return data[:i], data[i + 2:]
    return None, None


def _parse_head(head: bytes) -> SipMessage:
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    while lines and not lines[0].strip():
        lines.pop(0)                                      # RFC 3261 §7.5: ignore leading CRLFs
    if not lines:
        raise SipParseError("empty message", None)
    start = lines[0]
    msg = SipMessage()
    deferred = None
    if start.startswith(b"SIP/"):
        m = _STATUS_RE.match(start)
        if not m:
            raise SipParseError("malformed status line", None)
        code = int(m.group(2))
        if not 100 <= code <= 699:
            raise SipParseError(f"status code {code} out of range", None)
        msg.status, msg.reason, msg.version = code, m.group(3).decode("utf-8", "replace"), "SIP/" + m.group(1).decode()
        if m.group(1) != b"2.0":
            raise SipParseError("unsupported SIP version in response", None)
    else:
        m = _REQ_RE.match(start)
        if not m:
            msg.method, msg.uri = "?", "?"
            deferred = SipParseError("malformed request line", 400, msg)
        else:
            method, uri, ver = m.group(1).decode("latin-1"), m.group(2).decode("utf-8", "surrogateescape"), m.group(3)
            msg.method, msg.uri, msg.version = method, uri, "SIP/" + ver.decode()
            if not _TOKEN.match(method):
                deferred = SipParseError(f"bad method {method!r}", 400, msg)
            elif uri.startswith("<") or ">" in uri:
                deferred = SipParseError("Request-URI enclosed in <>", 400, msg)
            elif ver != b"2.0":
                deferred = SipParseError(f"SIP version {ver.decode()} not supported", 505, msg)
    cur = None
    for raw in lines[1:]:
        if raw[:1] in (b" ", b"\t"):
            if cur is None:
                raise SipParseError("continuation line before any header", 400 if msg.is_request else None, msg)
            cur[1] += " " + raw.strip().decode("utf-8", "surrogateescape")
            continue
        if not raw.strip():
            continue
        name, sep, val = raw.partition(b":")
        name = name.rstrip(b" \t").decode("latin-1")
        if not sep or not _TOKEN.match(name):
            raise SipParseError(f"malformed header line {raw[:40]!r}", 400 if msg.is_request else None, msg)
        cur = [name, val.strip().decode("utf-8", "surrogateescape")]
        msg.headers.append(cur)
    if msg.is_request and deferred is not None:
        raise deferred          # raised after the headers are read, so the error can be answered
    return msg


def _content_length(msg: SipMessage) -> int | None:
    vals = [v for n, v in msg.headers if canon(n) == "content-length"]
    if not vals:
        return None
    nums = set()
    for v in vals:
        v = v.strip()
        if not v.isdigit():
            raise SipParseError(f"bad Content-Length {v!r}", 400 if msg.is_request else None, msg)
        nums.add(int(v))
    if len(nums) > 1:
        raise SipParseError("conflicting Content-Length values", 400 if msg.is_request else None, msg)
    return nums.pop()


def parse_datagram(data: bytes) -> SipMessage:
    """One UDP datagram (RFC 3261 §18.3: Content-Length bounds the body; extra octets ignored)."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message too large", None)
    head, body = _split_head(data)
    if head is None:
        head, body = data, b""
        if not data.rstrip().endswith(b"\n") and b"\n" not in data:
            raise SipParseError("no header terminator", None)
    msg = _parse_head(head)
    cl = _content_length(msg)
    if cl is not None:
        if cl > len(body):
            raise SipParseError(f"Content-Length {cl} larger than the {len(body)} body bytes", 400 if msg.is_request else None, msg)
        body = body[:cl]
    msg.body = body
    return msg


class StreamParser:
    """Frames a TCP stream: headers, then exactly Content-Length body bytes (required on streams)."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next(self) -> SipMessage | None:
        while self.buf[:2] == b"\r\n":                     # keep-alive CRLFs (RFC 5626)
            del self.buf[:2]
        i = self.buf.find(b"\r\n\r\n")
        if i < 0:
            if len(self.buf) > MAX_MESSAGE:
                raise SipParseError("header block too large", None)
            return None
        head = bytes(self.buf[:i])
        msg = _parse_head(head)
        cl = _content_length(msg)
        if cl is None:
            cl = 0
        end = i + 4 + cl
        if cl > MAX_MESSAGE:
            raise SipParseError("body too large", None)
        if len(self.buf) < end:
            return None
        msg.body = bytes(self.buf[i + 4:end])
        del self.buf[:end]
        return msg


# ---------------------------------------------------------------- proxy checks (RFC 3261 §16.3)

def check_request(msg: SipMessage) -> tuple[int, str, list] | None:
    """(status, reason, extra headers) to reject with, or None when the request may proceed."""
    try:
        for h in REQUIRED:
            if msg.count(h) == 0:
                return 400, f"Missing {h.title()} header", []
        for h in SINGLE:
            if msg.count(h) > 1 and len(set(v for n, v in msg.headers if canon(n) == h)) > 1:
                return 400, f"Multiple {h.title()} headers", []
        for v in msg.values("via"):
            parse_via(v)
        parse_name_addr(msg.get("to"))              # both must parse (quotbal: unbalanced quotes)
        parse_name_addr(msg.get("from"))
        cseq = msg.get("cseq").split()
        if len(cseq) != 2 or not cseq[0].isdigit():
            return 400, "Malformed CSeq", []
        if int(cseq[0]) > 2 ** 31 - 1:
            return 400, "CSeq number too large", []
        if cseq[1] != msg.method:
            return 400, "CSeq method does not match the request method", []
        mf = msg.get("max-forwards")
        if mf is not None and (not mf.strip().isdigit() or int(mf) > 255):
            return 400, "Bad Max-Forwards", []
        for h in ("contact", "route", "record-route"):
            for v in msg.values(h):
                if v != "*":
                    parse_name_addr(v)
        scheme = msg.uri.split(":", 1)[0].lower() if ":" in msg.uri else ""
        if scheme not in KNOWN_SCHEMES:
            return 416, "Unsupported URI Scheme", []
        if scheme in ("sip", "sips") and "?" in msg.uri.rpartition("@")[2]:   # '?' in the user part is legal
            return 400, "Bad Request (headers in the Request-URI)", []        # RFC 4475 escruri
        parse_uri(msg.uri)
    except SipParseError as e:
        return (e.status or 400), f"Bad Request ({e.reason})", []
    pr = msg.values("proxy-require")
    if pr:
        return 420, "Bad Extension", [["Unsupported", ", ".join(pr)]]
    return None


REASONS = {100: "Trying", 400: "Bad Request", 403: "Forbidden", 416: "Unsupported URI Scheme", 420: "Bad Extension",
           482: "Loop Detected", 483: "Too Many Hops", 500: "Server Internal Error", 501: "Not Implemented",
           502: "Bad Gateway", 503: "Service Unavailable", 505: "Version Not Supported", 603: "Decline",
           608: "Rejected"}


def make_response(req: SipMessage, status: int, reason: str | None = None, to_tag: str | None = None,
                  extra=()) -> SipMessage:
    """A response built from a request as RFC 3261 §8.2.6 says (Via, From, To, Call-ID, CSeq copied)."""
    r = SipMessage(status=status, reason=reason or REASONS.get(status, "Error"))
    for n, v in req.headers:
        c = canon(n)
        if c in ("via", "from", "call-id", "cseq"):
            r.headers.append([n, v])
        elif c == "to":
            if to_tag and ";tag=" not in v.replace(" ", "").lower():
                v = f"{v};tag={to_tag}"
            r.headers.append([n, v])
    for n, v in extra:
        r.headers.append([n, v])
    r.headers.append(["Content-Length", "0"])
    return r
