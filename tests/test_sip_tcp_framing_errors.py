"""A message the parser refuses on a TCP connection (a header line without a colon, an over-long header, a bad
request line) is answered (400, 505 …) and skipped when its Content-Length lines still say where it ends; the
connection goes on with the messages behind it. Before, the connection was closed at any such error: every request
a trunk had pipelined behind the bad one was lost unanswered (nobody retransmits over TCP). When nothing says where
the next message starts (a Content-Length that is no plain number, two that differ, a folded one, bare LFs), the
connection is closed as before."""
import socket

import pytest

from engine.sip_screen.framing import StreamParser
from engine.sip_screen.grammar import SipParseError


def _options(call_id: str, port=1, bad=b"", cl=b"Content-Length: 0", body=b"") -> bytes:
    return (b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bK%s\r\n" % (port, call_id.encode())
            + b"Max-Forwards: 0\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: " + call_id.encode()
            + b"\r\nCSeq: 1 OPTIONS\r\n" + bad + cl + b"\r\n\r\n" + body)


def test_a_refused_message_is_skipped_by_its_length():
    p = StreamParser()
    p.feed(_options("bad", bad=b"No colon here\r\n", cl=b"l: 5", body=b"INVIT") + _options("good"))
    with pytest.raises(SipParseError) as e:
        p.next()
    assert e.value.resynced and e.value.status == 400 and e.value.msg.get("call-id") == "bad"
    assert p.next().get("call-id") == "good"


def test_a_refused_message_waits_for_its_body_before_it_is_skipped():
    p = StreamParser()
    whole = _options("bad", bad=b"No colon here\r\n", cl=b"Content-Length: 6", body=b"v=0\r\nx") + _options("good")
    cut = whole.index(b"v=0") + 2
    p.feed(whole[:cut])
    assert p.next() is None and p.pending()
    p.feed(whole[cut:])
    with pytest.raises(SipParseError) as e:
        p.next()
    assert e.value.resynced
    assert p.next().get("call-id") == "good"


@pytest.mark.parametrize("cl", [b"Content-Length: 5x", b"Content-Length:\r\n 5", b"Content-Length: 5\r\nl: 6",
                                b"Content-Length: -5", b"Content-Length: 5\nX-Y: z"])
def test_a_refused_message_without_a_plain_length_loses_the_stream(cl):
    p = StreamParser()
    p.feed(_options("bad", bad=b"No colon here\r\n", cl=cl, body=b"abcde") + _options("good"))
    with pytest.raises(SipParseError) as e:
        p.next()
    assert not getattr(e.value, "resynced", False)


def _answers(t, n):
    got = b""
    while got.count(b"\r\n\r\n") < n:
        chunk = t.recv(65535)
        assert chunk, f"connection closed after {got!r}"
        got += chunk
    return [line for line in got.split(b"\r\n") if line.startswith((b"SIP/2.0", b"Call-ID"))]


def test_requests_behind_a_refused_one_on_a_connection_are_answered(loopback_screen):
    t = socket.create_connection(("127.0.0.1", loopback_screen.port), timeout=5)
    try:
        port = t.getsockname()[1]
        t.sendall(_options("bad1", port, bad=b"No colon here\r\n") + _options("good1", port)
                  + _options("bad2", port).replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1) + _options("good2", port))
        assert _answers(t, 4) == [b"SIP/2.0 400 Bad Request", b"Call-ID: bad1",
                                  b"SIP/2.0 483 Too Many Hops", b"Call-ID: good1",       # (Max-Forwards 0)
                                  b"SIP/2.0 505 Version Not Supported", b"Call-ID: bad2",
                                  b"SIP/2.0 483 Too Many Hops", b"Call-ID: good2"]
    finally:
        t.close()


def test_a_message_with_a_body_but_no_content_length_loses_the_stream():
    """RFC 3261 §18.3, §20.14: on a stream the Content-Length says where a message ends. One that announces a body
    (Content-Type) without it was read as bodyless: an INVITE went on without its SDP, and its SDP became the head of
    the next message, which was skipped by that message's length -- the request behind it lost, unanswered. Now the
    message is refused (400 for a request) and the connection closed, as for a length that cannot be trusted. A
    request with neither (no body announced) is still read as bodyless."""
    p = StreamParser()
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    p.feed(_options("nocl", bad=b"Content-Type: application/sdp\r\n", cl=b"X-Pad: 1") + sdp + _options("good"))
    with pytest.raises(SipParseError) as e:
        p.next()
    assert e.value.status == 400 and e.value.msg.get("call-id") == "nocl" and "Content-Length" in e.value.reason
    assert not getattr(e.value, "resynced", False)
    p = StreamParser()
    p.feed(_options("bare", cl=b"X-Pad: 1") + _options("good"))
    assert [p.next().get("call-id"), p.next().get("call-id")] == ["bare", "good"]


def test_a_request_with_a_body_but_no_content_length_is_answered_and_the_connection_closed(loopback_screen):
    t = socket.create_connection(("127.0.0.1", loopback_screen.port), timeout=5)
    try:
        port = t.getsockname()[1]
        t.sendall(_options("nocl", port, bad=b"Content-Type: application/sdp\r\n", cl=b"X-Pad: 1")
                  + b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" + _options("good", port))
        got = b""
        while chunk := t.recv(65535):
            got += chunk
        assert got.startswith(b"SIP/2.0 400 ") and got.count(b"SIP/2.0 ") == 1 and b"Call-ID: nocl" in got
    finally:
        t.close()


@pytest.mark.parametrize("ctype", [b"Content-Type: application/sdp\r\n", b"c: application/sdp\r\n"])
def test_a_bodyless_message_with_content_type_and_no_content_length_is_read(ctype):
    """§20.15: a Content-Type with an empty body says that body is empty -- some UAs send one on a BYE, without
    Content-Length. It was refused 400 and the connection closed (the BYE never reached the callee, every other call's
    requests on that trunk connection cut). What follows it says it had no body: a message, a CRLF, or nothing yet."""
    for after in (_options("next"), b"\r\n\r\n" + _options("next"), b""):
        p = StreamParser()
        p.feed(_options("bye", bad=ctype, cl=b"X-Pad: 1") + after)
        assert p.next().get("call-id") == "bye"
        assert (p.next().get("call-id") if after else p.next()) == ("next" if after else None)
    p = StreamParser()                  # the next message comes later, a byte at a time
    p.feed(_options("bye", bad=ctype, cl=b"X-Pad: 1"))
    assert p.next().get("call-id") == "bye"
    got = []
    for b in b"\r\n\r\n" + _options("next"):             # (a keep-alive first)
        p.feed(bytes([b]))
        got.append(p.next())
    assert [m.get("call-id") for m in got if m is not None] == ["next"]


def test_a_body_without_content_length_that_comes_after_its_head_loses_the_stream():
    """The head read first, alone (its body in the next read): framed bodyless, then the bytes that begin no message
    say a body came that nothing measures -- the stream is lost (closed), not its next message skipped unanswered."""
    p = StreamParser()
    p.feed(_options("nocl", bad=b"Content-Type: application/sdp\r\n", cl=b"X-Pad: 1"))
    assert p.next().get("call-id") == "nocl"
    p.feed(b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" + _options("good"))
    with pytest.raises(SipParseError) as e:
        p.next()
    assert e.value.status is None and not getattr(e.value, "resynced", False) and "Content-Length" in e.value.reason


def test_a_bodyless_bye_with_content_type_and_no_content_length_is_forwarded(loopback_screen):
    t = socket.create_connection(("127.0.0.1", loopback_screen.port), timeout=5)
    try:
        port = t.getsockname()[1]
        t.sendall(_options("ct-only", port, bad=b"Content-Type: application/sdp\r\n", cl=b"X-Pad: 1")
                  + _options("good", port))
        got = b""
        while got.count(b"SIP/2.0 ") < 2 and (chunk := t.recv(65535)):
            got += chunk
        assert b"SIP/2.0 400 " not in got and b"Call-ID: ct-only" in got and b"Call-ID: good" in got, got
    finally:
        t.close()


def test_a_body_with_neither_content_type_nor_content_length_loses_the_stream():
    """A message with neither header that is followed by bytes beginning no message had a body nothing measures (a
    UA that left out both, §18.3): it was framed bodyless and the body became the next message's head, that message
    skipped unanswered. Now it is refused and the connection closed, as with a Content-Type; a message with neither
    followed by a message, a CRLF or nothing yet is read as bodyless."""
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    p = StreamParser()
    p.feed(_options("nocl", cl=b"X-Pad: 1") + sdp + _options("good"))
    with pytest.raises(SipParseError) as e:
        p.next()
    assert e.value.status == 400 and e.value.msg.get("call-id") == "nocl" and "Content-Length" in e.value.reason
    p = StreamParser()                  # its body in a later read: the stream lost at it
    p.feed(_options("nocl", cl=b"X-Pad: 1"))
    assert p.next().get("call-id") == "nocl"
    p.feed(sdp + _options("good"))
    with pytest.raises(SipParseError) as e:
        p.next()
    assert e.value.status is None and "Content-Length" in e.value.reason
    for after in (_options("next"), b"\r\n\r\n" + _options("next")):
        p = StreamParser()
        p.feed(_options("bare", cl=b"X-Pad: 1") + after)
        assert [p.next().get("call-id"), p.next().get("call-id")] == ["bare", "next"]


def test_a_refused_head_without_content_length_followed_by_a_body_loses_the_stream():
    """A head the parser refuses (here a header line without a colon) is skipped by its Content-Length lines; with
    none it was taken as bodyless whatever followed: a body behind it (a UA that leaves out Content-Length) was read
    with the next message's head as one message, refused 400 in that message's name (its Via, Call-ID, CSeq) -- the
    good request behind it answered 400 'malformed header line', never judged. As for a head that parses, bytes that
    begin no message after it lose the stream (the refused head answered, the connection closed); a message, a CRLF
    or nothing yet after it still skip it alone."""
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    p = StreamParser()
    p.feed(_options("bad", bad=b"No colon here\r\n", cl=b"X-Pad: 1") + sdp + _options("good"))
    with pytest.raises(SipParseError) as e:
        p.next()
    assert e.value.status == 400 and e.value.msg.get("call-id") == "bad"
    assert not getattr(e.value, "resynced", False)
    p = StreamParser()                  # its body in a later read: the stream lost at it
    p.feed(_options("bad", bad=b"No colon here\r\n", cl=b"X-Pad: 1"))
    with pytest.raises(SipParseError) as e:
        p.next()
    assert e.value.resynced and e.value.msg.get("call-id") == "bad"
    p.feed(sdp + _options("good"))
    with pytest.raises(SipParseError) as e:
        p.next()
    assert e.value.status is None and not getattr(e.value, "resynced", False) and "Content-Length" in e.value.reason
    for after in (_options("next"), b"\r\n\r\n" + _options("next")):
        p = StreamParser()
        p.feed(_options("bad", bad=b"No colon here\r\n", cl=b"X-Pad: 1") + after)
        with pytest.raises(SipParseError) as e:
            p.next()
        assert e.value.resynced
        assert p.next().get("call-id") == "next"


def test_a_request_behind_a_refused_bodied_head_without_content_length_is_not_answered_400(loopback_screen):
    t = socket.create_connection(("127.0.0.1", loopback_screen.port), timeout=5)
    try:
        port = t.getsockname()[1]
        t.sendall(_options("bad", port, bad=b"No colon here\r\n", cl=b"X-Pad: 1")
                  + b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" + _options("good", port))
        got = b""
        while chunk := t.recv(65535):
            got += chunk
        assert got.startswith(b"SIP/2.0 400 ") and got.count(b"SIP/2.0 ") == 1 and b"Call-ID: bad" in got, got
    finally:
        t.close()
