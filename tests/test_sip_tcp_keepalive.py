"""RFC 5626 §3.5.1 keep-alives over TCP: a CRLFCRLF ping between messages is answered with a CRLF pong, on the
connection it came on; a lone CRLF (a pong, or a blank line before a start line) is not answered. Before, pings
were read and dropped: a peer that expects its pong (OpenSIPS and Kamailio send one; a UA or trunk that enforces
it) took the screen's connection for dead and tore it down. Over UDP a CRLF keep-alive stays unanswered (RFC 5626
uses STUN there)."""
import socket

from engine.sip_screen.framing import StreamParser

OPTIONS = ("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK{b}\r\nMax-Forwards: 0\r\n"
           "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: ka{b}\r\nCSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n")


def test_the_parser_counts_pings_and_skips_lone_crlfs():
    p = StreamParser()
    p.feed(b"\r\n\r\n")
    assert p.next() is None and p.pings == 1 and not p.pending()
    p.pings = 0
    p.feed(b"\r\n")                                     # half a ping: kept until the rest comes
    assert p.next() is None and p.pings == 0 and not p.pending()
    p.feed(b"\r\n")
    assert p.next() is None and p.pings == 1
    p.pings = 0
    p.feed(b"\r\n" + OPTIONS.format(port=1, b="x").encode())   # a pong before a message: skipped, not a ping
    m = p.next()
    assert m.method == "OPTIONS" and p.pings == 0
    p.feed(b"\r\n\r\n" + OPTIONS.format(port=1, b="y").encode())
    m = p.next()
    assert m.method == "OPTIONS" and p.pings == 1


def test_a_ping_over_tcp_gets_a_pong(loopback_screen):
    h = loopback_screen
    t = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    try:
        t.sendall(b"\r\n\r\n")
        assert t.recv(16) == b"\r\n"
        assert h.screen.stats["keepalives"] == 1
        # a lone CRLF (the peer's pong) is not answered: the next bytes back are the answer to the next request
        port = t.getsockname()[1]
        t.sendall(b"\r\n" + OPTIONS.format(port=port, b="1").encode())     # Max-Forwards 0: answered 483 here
        got = b""
        while b"\r\n\r\n" not in got:
            got += t.recv(65535)
        assert got.startswith(b"SIP/2.0 483")
        # the connection still frames messages after pings
        t.sendall(b"\r\n\r\n" + OPTIONS.format(port=port, b="2").encode())
        got = b""
        while b"SIP/2.0 483" not in got or not got.endswith(b"\r\n\r\n"):
            got += t.recv(65535)
        assert got.startswith(b"\r\nSIP/2.0 483")
    finally:
        t.close()
