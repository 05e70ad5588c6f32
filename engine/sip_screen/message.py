"""`SipMessage`: a parsed SIP (RFC 3261) message, its headers in order, and the edits a proxy makes to it. No I/O.

codec.py builds one from bytes (`parse_datagram`, `framing.StreamParser` on a stream) and `to_bytes()` gives the
bytes back; `headers` holds [name as received, value, canonical name] lists, the methods keep the canonical name
right. The C extension, when built, builds plain requests itself (`_sipfast.parse_request`, told here what
`__init__` leaves in each slot) and joins and indexes headers faster.
"""
from __future__ import annotations

from .grammar import _CANON, NameAddr, SipParseError, Via, canon, parse_name_addr, split_list

# (_CANON.get bound once: a method of a name imported from another module is read with LOAD_ATTR, not LOAD_METHOD,
# by Python 3.11's compiler, which then makes a bound method through the generic getattr: ~400 instructions a call)
_canon_get = _CANON.get

# headers whose value is a comma-separated list (RFC 3261 §7.3.1); others are single values
LIST_HEADERS = {"via", "route", "record-route", "contact", "allow", "supported", "require", "proxy-require",
                "unsupported", "accept", "accept-encoding", "accept-language", "allow-events", "in-reply-to",
                "warning", "content-encoding", "content-language", "path", "p-asserted-identity"}


class SipMessage:
    """A parsed message. `headers` holds [name as received, value, canonical name] lists in
    order; use the methods, which keep the canonical name right."""

    __slots__ = ("method", "uri", "status", "reason", "version", "headers", "body", "vias", "our_via", "_na", "ruri",
                 "first", "charge", "replay_of", "logged", "tx", "call_key")

    def __init__(self, method=None, uri=None, status=None, reason="", version="SIP/2.0", headers=None, body=b""):
        self.method, self.uri, self.status, self.reason, self.version = method, uri, status, reason, version
        self.headers = headers if headers is not None else []
        self.body = body
        self.vias: list[Via] | None = None             # parsed by check_request, in order
        self.our_via = False                           # the proxy has put its Via on top
        self._na: dict = {}                            # header value -> NameAddr, parsed once
        self.ruri = None                               # the Request-URI parsed, by check_request
        self.first: dict | None = None                 # canonical name -> first value as received (first_values)
        self.charge = None                             # (verdict key, Verdict, transaction key) of a call counted
                                                       # toward caps (screening)
        self.replay_of = None                          # (Call-ID digest, caller key) of a call tried again whose
                                                       # verdict it was given (screening)
        self.logged = None                             # an INVITE's verdict-log line: the Call judged, True for a
                                                       # refusal of the screen's own, None: none yet (calllog.py)
        self.tx = None                                 # an INVITE's transaction key (`transactions`, screening)
        self.call_key = None                           # an INVITE's Call-ID digest in `answered` (screening._screen,
                                                       # read again by forwarding._forward)

    def name_addr(self, value: str) -> NameAddr:
        """parse_name_addr(value), remembered for this message (To and From are read three times)."""
        na = self._na.get(value)
        if na is None:
            na = self._na[value] = parse_name_addr(value)
        return na

    def first_values(self) -> dict:
        """Canonical name -> the first value of each header, as received: one pass, kept in
        `first` (check_request fills it on the way). The proxy reads Call-ID, CSeq, From, To and
        the like from it instead of scanning the headers for each; it is not updated by the
        edits (Via, Max-Forwards, Route, Record-Route, a tag header), so it is read only for
        headers the proxy does not edit, or before it edits them."""
        if self.first is None:
            first: dict = {}
            for h in self.headers:
                first.setdefault(h[2], h[1])
            self.first = first
        return self.first

    def tag(self, name: str) -> str:
        """The tag parameter of To or From ('' when there is none or the header does not parse)."""
        return self.tag_in(self.get(name))

    def tag_in(self, v: str | None) -> str:
        """The tag parameter of a To or From value of this message (its name-addr parsed once)."""
        if not v or "tag=" not in v and "tag" not in v.lower():      # (most write "tag=", in lower case; LWS
            return ""                                                   # may come before the "=": ";tag = x")
        na = self._na.get(v)
        if na is None:
            try:
                na = self.name_addr(v)
            except SipParseError:
                return ""
        return na.params.get("tag", "")

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        c = canon(name)
        for h in self.headers:
            if h[2] == c:
                return h[1]
        return None

    def values(self, name: str) -> list[str]:
        """Every value of a header, list headers split at top-level commas."""
        c = canon(name)
        out = []
        for h in self.headers:
            if h[2] == c:
                if c in LIST_HEADERS:
                    out.extend(split_list(h[1]))
                else:
                    out.append(h[1])
        return out

    def count(self, name: str) -> int:
        c = canon(name)
        return sum(1 for h in self.headers if h[2] == c)

    def add(self, name: str, value: str) -> None:
        self.headers.append([name, value, _canon_get(name) or canon(name)])    # (a name known: no canon frame)

    def set(self, name: str, value: str) -> None:
        c = _canon_get(name) or canon(name)
        i = _c_index(self.headers, c) if _c_index is not None else -2
        if i >= 0:
            self.headers[i][1] = value
            return
        if i == -2:
            for h in self.headers:
                if h[2] == c:
                    h[1] = value
                    return
        self.add(name, value)

    def remove(self, name: str) -> None:
        c = canon(name)
        self.headers = [h for h in self.headers if h[2] != c]

    def prepend(self, name: str, value: str) -> None:
        self.headers.insert(0, [name, value, canon(name)])

    def insert_before_first(self, name: str, value: str) -> None:
        c = _canon_get(name) or canon(name)
        i = _c_index(self.headers, c) if _c_index is not None else -2
        if i != -2:
            self.headers.insert(i if i > 0 else 0, [name, value, c])     # (max(i, 0) parsed its keywords)
            return
        for i, h in enumerate(self.headers):
            if h[2] == c:
                self.headers.insert(i, [name, value, c])
                return
        self.headers.insert(0, [name, value, c])

    def pop_first_value(self, name: str) -> str | None:
        """Remove the first value of a list header (the top Via, the top Route)."""
        c = canon(name)
        for i, h in enumerate(self.headers):
            if h[2] == c:
                vals = split_list(h[1])
                if len(vals) > 1:
                    h[1] = ", ".join(vals[1:])
                else:
                    del self.headers[i]
                return vals[0]
        return None

    def start_line(self) -> str:
        return (f"{self.method} {self.uri} {self.version}" if self.method is not None
                else f"{self.version} {self.status} {self.reason}")

    def to_bytes(self) -> bytes:
        if _c_join is not None:
            # an ASCII head, in C; None: below (a request's start line made here, without start_line's frame)
            b = _c_join(f"{self.method} {self.uri} {self.version}" if self.method is not None else self.start_line(),
                        self.headers, self.body)
            if b is not None:
                return b
        head = "".join([f"{h[0]}: {h[1]}\r\n" for h in self.headers])
        return f"{self.start_line()}\r\n{head}\r\n".encode("utf-8", "surrogateescape") + self.body

    def __repr__(self):
        return f"SipMessage({self.start_line()!r}, {len(self.headers)} headers, {len(self.body)} body bytes)"


try:
    from ._sipfast import header_index as _c_index, join_message as _c_join, set_message_type
    # parse_request builds a SipMessage itself: what __init__ leaves in each other slot (a new dict for `_na`)
    set_message_type(SipMessage, tuple((n, type(v) if isinstance(v, (dict, list)) else v) for n, v in
                                       ((n, getattr(SipMessage(), n)) for n in SipMessage.__slots__)
                                       if n not in ("method", "uri", "headers", "body")))
except ImportError:                                      # no C extension: the Python pass does it all
    _c_join = _c_index = None
