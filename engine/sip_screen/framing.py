"""SIP over TCP (RFC 3261 §18.3): framing a byte stream into messages by Content-Length. No I/O.

The head is parsed by codec's parser, once per message however slowly its bytes come; what one
peer can make us hold is bounded by MAX_MESSAGE.
"""
from __future__ import annotations

import re

from .codec import MAX_MESSAGE, SipParseError, _content_length, _parse_head, _status_for
from .message import SipMessage

# a head's Content-Length lines read as bytes, for a head the parser refused (§7.3.3: "l" is its compact form)
_CL_LINE = re.compile(rb"\r\n(?:content-length|l)[ \t]*:([^\r\n]*)", re.I)
_CL_VALUE = re.compile(rb"[ \t]*([0-9]{1,9})[ \t]*")
# a message's start line (§7.1, §7.2; the version case-insensitive), and a request line's method as far as it came
_START_LINE = re.compile(rb"(?i:SIP/2\.0) [0-9]{3} [^\r\n]*|[!%'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ (?i:SIP/2\.0)")
_TOKEN = re.compile(rb"[!%'*+\-.^_`|~0-9A-Za-z]*")


class StreamParser:
    """Frames a TCP stream: headers, then exactly Content-Length body bytes (required on streams).
    A head the parser refuses raises its SipParseError with `resynced` set when its Content-Length lines still
    say where the message ends (the message is skipped, the stream goes on); without `resynced`, the stream is lost.
    Between messages a CRLFCRLF is a keep-alive ping (RFC 5626 §3.5.1), counted in `pings` for the connection to
    answer with a CRLF (its pong); a lone CRLF (a pong, or a blank line before a start line) is skipped.

    `pending()` says whether a message has been started but not finished (the server times
    such connections out). A message over MAX_MESSAGE raises with status 513 when its head
    could be read (so the request can be answered), after which the stream is unusable."""

    def __init__(self, max_message: int = MAX_MESSAGE):
        self.buf = bytearray()
        self.max = max_message
        # a read costs what it adds, not what is buffered (a dribbling peer must not make us re-read
        # the head per byte): where the blank-line search goes on; the parsed head (msg, start, end)
        self._scan, self._head = 0, None
        self.pings = 0              # CRLFCRLF keep-alive pings read and not answered yet (the connection answers)
        # the last message had a Content-Type and no Content-Length, and nothing came after it yet: what comes next
        # must begin a message, else it had a body that nothing measures (next())
        self._unmeasured = False

    def feed(self, data: bytes) -> None:
        self.buf += data

    def pending(self) -> bool:
        if self._head is not None:
            return True
        return any(b not in (13, 10) for b in self.buf[:8]) if self.buf else False

    def next(self) -> SipMessage | None:
        if self._unmeasured and self.buf:
            begins = _begins_message(self.buf)
            if begins is None:
                return None                                 # too few bytes yet to say
            self._unmeasured = False
            if not begins:
                raise SipParseError("a body after a message with no Content-Length on a stream (RFC 3261 §18.3): "
                                    "nothing says where it ends", None)
        if self._head is None:
            while self.buf[:2] == b"\r\n":                 # keep-alive CRLFs (RFC 5626 §3.5.1)
                if self.buf[:4] == b"\r\n\r\n":            # a ping, which asks for a pong (a CRLF)
                    del self.buf[:4]
                    self.pings += 1
                elif len(self.buf) < 4 and self.buf[2:] in (b"", b"\r"):
                    break                                   # perhaps a ping's first bytes: wait for the rest
                else:                                       # a pong (one CRLF), or CRLFs before a start line
                    del self.buf[:2]
                self._scan = 0
            i = self.buf.find(b"\r\n\r\n", self._scan, self.max + 4)
            if i < 0:
                if len(self.buf) > self.max:
                    raise SipParseError("header block too large", None)
                self._scan = max(0, len(self.buf) - 3)        # a CRLFCRLF may straddle the next read
                return None
            self._scan = 0
            head = bytes(self.buf[:i])
            try:
                msg = _parse_head(head)
            except SipParseError as e:
                # A head refused whole still ends at its blank line: when its length is plain, the message is
                # skipped and the stream goes on (the error is answered, the connection kept: a trunk's one bad
                # message took every request behind it on the connection, unanswered, when it was closed)
                cl = _raw_content_length(head)
                if cl is None or i + 4 + cl > self.max:
                    raise
                if _CL_LINE.search(head) is None:
                    # no length at all: a body, or none, as for a head that parses (below); a body skipped as the
                    # next message's head had that message refused in its name (its Via, Call-ID: answered 400)
                    begins = _begins_message(self.buf[i + 4:i + 4 + _LOOK])
                    if begins is False:
                        raise
                    self._unmeasured = begins is None
                e.resynced = True
                msg = e
            else:
                cl = _content_length(msg)
                if cl is None:
                    # no length to end a body by (§18.3, §20.14: required on a stream): a body, or none (a UA that
                    # leaves the header out of a bodyless message; with a Content-Type, an empty body of that type,
                    # §20.15: some UAs' BYE). What follows says which: a body read as the next message's head had
                    # that message skipped, unanswered; so bytes that begin no message are refused, nothing saying
                    # where the next one starts. None yet (the peer awaits an answer): bodyless, and the next bytes
                    # are looked at (_unmeasured)
                    begins = _begins_message(self.buf[i + 4:i + 4 + _LOOK])
                    if begins is False:
                        raise SipParseError("a body without Content-Length on a stream (RFC 3261 §18.3)",
                                            _status_for(msg), msg)
                    self._unmeasured = begins is None
                    cl = 0
            if i + 4 + cl > self.max:
                raise SipParseError(f"message of {i + 4 + cl} bytes over the {self.max} limit",
                                    513 if msg.is_request else None, msg)
            self._head = (msg, i + 4, i + 4 + cl)
        msg, start, end = self._head
        if len(self.buf) < end:
            return None
        self._head = None
        if isinstance(msg, SipParseError):              # a refused head's message, skipped whole
            del self.buf[:end]
            raise msg
        msg.body = bytes(self.buf[start:end])
        del self.buf[:end]
        return msg


_LOOK = 8192            # bytes a start line is looked for in (a longer one without its CRLF: no message)


def _begins_message(b) -> bool | None:
    """Whether bytes `b`, after a message without Content-Length, begin a message (a start line, or a CRLF: a
    keep-alive, §7.5) rather than a body: True, False, or None while too few have come to say."""
    if b[:2] == b"\r\n":
        return True
    if b == b"\r":
        return None
    e = b.find(b"\r\n", 0, _LOOK)
    if e >= 0:
        return _START_LINE.fullmatch(b, 0, e) is not None
    if len(b) >= _LOOK:
        return False
    head = bytes(b[:8]).upper()
    if b"SIP/2.0 "[:len(head)] == head[:8]:
        return None                                         # a status line's start, perhaps
    t = _TOKEN.match(b).end()
    return None if t == len(b) or (t and b[t:t + 1] == b" ") else False


def _raw_content_length(head: bytes) -> int | None:
    """The body length of a head the parser refused, read from its Content-Length lines as bytes: 0 without one
    (as a parsed head's), None when one is not a plain number, two differ or a line ends in a bare LF (then
    nothing says where the next message starts)."""
    if head.count(b"\n") != head.count(b"\r\n"):
        return None
    lengths = set()
    for v in _CL_LINE.findall(head):
        m = _CL_VALUE.fullmatch(v)
        if m is None:
            return None
        lengths.add(int(m.group(1)))
    if len(lengths) > 1:
        return None
    return lengths.pop() if lengths else 0
