"""SIP over TCP (RFC 3261 §18.3): framing a byte stream into messages by Content-Length. No I/O.

The head is parsed by codec's parser, once per message however slowly its bytes come; what one
peer can make us hold is bounded by MAX_MESSAGE.
"""
from __future__ import annotations

from .codec import MAX_MESSAGE, SipMessage, SipParseError, _content_length, _parse_head


class StreamParser:
    """Frames a TCP stream: headers, then exactly Content-Length body bytes (required on streams).
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
            msg = _parse_head(bytes(self.buf[:i]))
            cl = _content_length(msg)
            if cl is None:
                cl = 0
            if i + 4 + cl > self.max:
                raise SipParseError(f"message of {i + 4 + cl} bytes over the {self.max} limit",
                                    513 if msg.is_request else None, msg)
            self._head = (msg, i + 4, i + 4 + cl)
        msg, start, end = self._head
        if len(self.buf) < end:
            return None
        self._head = None
        msg.body = bytes(self.buf[start:end])
        del self.buf[:end]
        return msg
