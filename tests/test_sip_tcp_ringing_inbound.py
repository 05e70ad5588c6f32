"""Found by a SIP probe: a caller's INVITE over TCP rings with nothing on its connection after the 180 (RFC 3261
§17.2.1; Timer C, §16.8, is over 3 minutes), and its final goes back on that connection while it is open (§18.2.2,
our Via's `;i=`). The sweeper closed the caller's connection as idle after `tcp_idle_timeout` (300 s by default)
whatever waited on it: the callee's 200 then went to a new connection to the Via's sent-by port, refused by a caller
that does not listen there (a client's ephemeral port, a NAT) and lost (probed through serve with
tcp_idle_timeout = 3: closed after 3.4 s of ringing, the 200's connect refused). Now an inbound connection is not
idle while an INVITE that came on it and was forwarded waits for its final (INVITE_WAIT_MAX at most)."""
import socket
import time

import pytest

from engine.app import build
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings

from .test_sip_tcp_outbound_caps import wait_for

IDLE = 1.0                      # tcp_idle_timeout here (the sweeper looks every IDLE / 2 s)


@pytest.fixture
def pipe(tmp_path):
    return build(data_dir=tmp_path, with_model=False, persist=False)


def invite(call_id, port):
    return (f"INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK-{call_id}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=abc\r\nTo: <sip:0912345678@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:0901234567@127.0.0.1:{port};transport=tcp>\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def answer(fwd: bytes, code: int, reason: str) -> bytes:
    head = fwd.split(b"\r\n\r\n")[0].decode().split("\r\n")
    keep = [ln for ln in head[1:] if ln.split(":")[0].lower() in ("via", "from", "call-id", "cseq")]
    return (f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join(keep) + "\r\nTo: <sip:0912345678@127.0.0.1>;tag=callee\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def read_status(c) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(65535)
        if not chunk:
            return b"<closed>"
        data += chunk
    return data.split(b"\r\n", 1)[0]


def test_a_callers_tcp_connection_is_kept_while_its_invite_rings_and_the_200_comes_back_on_it(pipe):
    callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    callee.bind(("127.0.0.1", 0))
    callee.settimeout(5)
    h = SipHarness(pipe, SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{callee.getsockname()[1]}",
                                     allow_networks=["127.0.0.0/8"], tcp_idle_timeout=IDLE)).start()
    c = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    try:
        c.sendall(invite("in-ring", c.getsockname()[1]))
        fwd, _ = callee.recvfrom(65535)
        callee.sendto(answer(fwd, 180, "Ringing"), ("127.0.0.1", h.port))
        assert read_status(c) == b"SIP/2.0 180 Ringing"
        time.sleep(3 * IDLE)                                # ringing, nothing on the connection
        assert h.screen.stats["tcp_timed_out"] == 0
        callee.sendto(answer(fwd, 200, "OK"), ("127.0.0.1", h.port))
        assert read_status(c) == b"SIP/2.0 200 OK"          # on the caller's own connection
        assert wait_for(lambda: h.screen.stats["tcp_timed_out"] == 1, 4 * IDLE)     # answered: idle is idle again
    finally:
        c.close()
        callee.close()
        h.stop()


def test_an_invite_that_never_gets_a_final_keeps_the_callers_connection_for_invite_wait_max_only(pipe, monkeypatch):
    import engine.sip_screen.forwarding as F
    monkeypatch.setattr(F, "INVITE_WAIT_MAX", 3 * IDLE)
    callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)      # a next hop that never answers
    callee.bind(("127.0.0.1", 0))
    callee.settimeout(5)
    h = SipHarness(pipe, SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{callee.getsockname()[1]}",
                                     allow_networks=["127.0.0.0/8"], tcp_idle_timeout=IDLE)).start()
    c = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    try:
        c.sendall(invite("black-holed", c.getsockname()[1]))
        callee.recvfrom(65535)
        time.sleep(2 * IDLE)
        assert h.screen.stats["tcp_timed_out"] == 0
        assert wait_for(lambda: h.screen.stats["tcp_timed_out"] == 1, 4 * IDLE)
    finally:
        c.close()
        callee.close()
        h.stop()
