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

    def feed(self, data: bytes) -> None:
        self.buf += data

    def pending(self) -> bool:
        if self._head is not None:
            return True
        return any(b not in (13, 10) for b in self.buf[:8]) if self.buf else False

    def next(self) -> SipMessage | None:
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
                e.resynced = True
                msg = e
            else:
                cl = _content_length(msg)
                if cl is None:
                    if msg.get("content-type") is not None:
                        # a body announced (§20.15) and no length to end it by (§18.3, §20.14: required on a
                        # stream): read as bodyless, its body became the next message's head and that message was
                        # skipped, unanswered. Nothing says where the next message starts
                        raise SipParseError("Content-Type without Content-Length on a stream (RFC 3261 §18.3)",
                                            _status_for(msg), msg)
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
