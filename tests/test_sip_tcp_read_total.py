"""What the SIP screen holds of what its TCP peers sent and it has not handled yet is bounded in all
(`max_tcp_read_buffered`, tcpreads.py), as what it holds for writing is (test_sip_tcp_write_total.py). One
connection held what one read gave (asyncio's 256 KB) and an unfinished message (MAX_MESSAGE) -- 100 connections
streaming INVITEs held 22 MB at once, 1,000 (the inbound cap) would hold a quarter of a gigabyte, as many outbound
as much again. Now a connection reads 32 KB at a time, and one that reads while the total is over the bound is not
read again until the screen has handled enough (`tcp_read_held`); it is answered all the same. On 127.0.0.1, ports
22000-22999; loads are bounded."""
import threading
import time

import pytest

from engine.app import build
from engine.sip_screen.tcp import TcpConnection

from .sip_helpers import offline_screen
from .sip_transport_helpers import FakeTransport
from .test_sip_tcp_outbound_caps import wait_for
from .test_sip_tcp_write_total import bound_socket, invite, start_screen


@pytest.fixture
def pipe(tmp_path):
    return build(data_dir=tmp_path, with_model=False, persist=False)


def read_buffered(screen) -> int:
    """Bytes read from TCP peers and not handled yet (run in the screen's loop thread)."""
    return sum(len(c.parser.buf) for c in screen.tcp_conns.values())


def test_what_100_streaming_connections_hold_unhandled_stays_under_max_tcp_read_buffered(pipe):
    bound = 1024 * 1024                         # (the least it may be: 100 reads of 32 KB are over it)
    h = start_screen(pipe, max_tcp_per_source=200, max_tcp_read_buffered=bound)
    socks, stop, answered = [], threading.Event(), [0] * 100
    try:
        for _ in range(100):
            s = bound_socket()
            s.connect(("127.0.0.1", h.port))
            s.setblocking(False)
            socks.append(s)
        # INVITEs the screen answers itself (483), padded to 1.5 KB: ~1 MB a connection, sent again and again
        data = [b"".join(invite(f"r{n}-{i}", s, max_forwards=0).replace(b"Content-Length", b"X-Pad: " + b"p" * 1400
                                                                        + b"\r\nContent-Length") for i in range(600))
                for n, s in enumerate(socks)]

        def stream(n):
            s, pos = socks[n], 0
            while not stop.is_set():
                try:
                    pos = (pos + s.send(data[n][pos:pos + 262144])) % len(data[n])
                except BlockingIOError:
                    time.sleep(0.005)
                except OSError:
                    return
                try:
                    answered[n] += s.recv(1 << 20).count(b"SIP/2.0 483")
                except BlockingIOError:
                    pass
                except OSError:
                    return
        threads = [threading.Thread(target=stream, args=(n,), daemon=True) for n in range(100)]
        for t in threads:
            t.start()
        held, end = [], time.monotonic() + 4
        while time.monotonic() < end:
            held.append(h.run(read_buffered, h.screen))
            time.sleep(0.02)
        stop.set()
        for t in threads:
            t.join(5)
        # (over it by at most what a connection reads while it is over: READ_LEAST, 2 KB, each)
        assert max(held) <= bound + 100 * 2048, (max(held), bound)
        assert min(answered) > 0, sorted(answered)[:5]          # every connection was served
        assert h.screen.stats.get("tcp_read_held", 0) > 0 and h.screen.stats["tcp_timed_out"] == 0
    finally:
        stop.set()
        for s in socks:
            s.close()
        h.stop()


def test_unfinished_messages_that_fill_the_total_are_timed_out_and_a_caller_is_answered_meanwhile(pipe):
    """Twenty peers each start a 60 KB message and never finish it: 1.2 MB unhandled, over the bound; those read
    while it was over are held back, and their unfinished messages still time out (a connection held back keeps its
    clocks: else they held the total, and every reader after them, for ever). A caller is answered meanwhile (a
    read is READ_LEAST at least: a message that small goes in one)."""
    h = start_screen(pipe, max_tcp_read_buffered=1024 * 1024, tcp_incomplete_timeout=1.0)
    socks = []
    try:
        head = (b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-u\r\n"
                b"Content-Length: 60000\r\n\r\n")
        for _ in range(20):
            s = bound_socket()
            s.connect(("127.0.0.1", h.port))
            s.sendall(head + b"b" * 59_000)
            socks.append(s)
        assert wait_for(lambda: h.run(lambda: h.screen.tcp_reads.total) > 1024 * 1024 - 64 * 1024, 3)
        good = bound_socket()
        socks.append(good)
        good.connect(("127.0.0.1", h.port))
        good.settimeout(2)
        good.sendall(invite("good-0", good, max_forwards=0))
        assert good.recv(65535).startswith(b"SIP/2.0 483")
        assert wait_for(lambda: h.screen.stats["tcp_timed_out"] == 20, 6), h.screen.stats
        assert h.run(lambda: h.screen.tcp_reads.total) == 0
        good.sendall(invite("good-1", good, max_forwards=0))
        assert good.recv(65535).startswith(b"SIP/2.0 483")
    finally:
        for s in socks:
            s.close()
        h.stop()


def test_a_connection_held_back_keeps_the_clock_of_its_unfinished_message(pipe):
    """Held back for the total, a connection is not read, yet its unfinished message's clock runs: held-back
    connections' unfinished messages alone can keep the total over the bound, and nothing would read again (a
    connection paused for its own reasons -- its messages wait, it leaves our writes unread -- stops its clocks)."""
    scr = offline_screen(pipe)
    scr.s.max_tcp_read_buffered = 1024 * 1024
    head = (b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-u\r\n"
            b"Content-Length: 60000\r\n\r\n")
    conns = []
    for n in range(20):                         # 20 x 59 KB unfinished: 1.2 MB
        c = TcpConnection(scr)
        c.transport, c.peer = FakeTransport(), (f"127.0.0.{n + 2}", 5060)
        c.data_received(head + b"b" * 59_000)
        conns.append(c)
    held = [c for c in conns if c.held_back]
    assert held and all(not c.transport.reading for c in held) and scr.tcp_reads.total > 1024 * 1024
    later = time.monotonic() + scr.s.tcp_incomplete_timeout + 1
    assert all(c.expired(later) == "unfinished message" for c in conns)
    # connections that come, read while the total is over (held back) and go leave nothing behind
    for n in range(50):
        c = TcpConnection(scr)
        c.transport, c.peer = FakeTransport(), (f"127.0.1.{n + 2}", 5060)
        c.data_received(b"INVITE sip:x@127.0.0.1 SIP/2.0\r\n")
        assert c.held_back
        c.connection_lost(None)
    assert len(scr.tcp_reads.held_back) == len(held)
    for c in conns:
        c.connection_lost(None)
    assert len(scr.tcp_reads.held_back) == 0 and scr.tcp_reads.total == 0


def test_the_total_is_a_setting_checked_at_its_line(tmp_path):
    from engine.sip_screen.settings import load_sip_settings
    assert load_sip_settings(tmp_path).max_tcp_read_buffered == 64 * 1024 * 1024       # the default: no sip.toml
    (tmp_path / "sip.toml").write_text("[sip]\nmax_tcp_read_buffered = 2_097_152\n")
    assert load_sip_settings(tmp_path).max_tcp_read_buffered == 2 * 1024 * 1024
    for value in ("0", "-1", "32768"):
        (tmp_path / "sip.toml").write_text(f"[sip]\nmax_tcp_read_buffered = {value}\n")
        with pytest.raises(ValueError, match=r"sip.toml:2:1: \[sip\] max_tcp_read_buffered must be at least 1048576"):
            load_sip_settings(tmp_path)
