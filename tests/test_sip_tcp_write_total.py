"""What the SIP screen holds for writing to its TCP peers is bounded in all (`max_tcp_write_buffered`,
tcpwrites.py), not only per connection (tcp.py WRITE_MAX, 1 MB): with the connection caps (over a thousand in and
as many out) a set of peers that send INVITEs and never read what comes back could make the process hold a
gigabyte. Now, at the bound, the connection holding most is closed (`tcp_write_evicted`) and a peer that reads is
served throughout. Everything here is on 127.0.0.1, on ports 22000-22999; loads are bounded."""
import random
import socket
import struct
import threading
import time
from fcntl import ioctl
from termios import TIOCOUTQ

import pytest

from engine.app import build
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings

from .test_sip_tcp_outbound_caps import wait_for

PORTS = range(22000, 23000)
BODY = b"v=0\r\na=x-pad:" + b"p" * 30_000 + b"\r\n"          # a 180's early-media offer, ~30 KB


@pytest.fixture
def pipe(tmp_path):
    return build(data_dir=tmp_path, with_model=False, persist=False)


def bound_socket(kind=socket.SOCK_STREAM, rcvbuf=None) -> socket.socket:
    """A socket bound to 127.0.0.1 on a free port of PORTS."""
    s = socket.socket(socket.AF_INET, kind)
    if rcvbuf:                                  # before connect: the window it offers stays small
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    start = random.randrange(len(PORTS))
    for i in range(len(PORTS)):
        try:
            s.bind(("127.0.0.1", PORTS[(start + i) % len(PORTS)]))
            return s
        except OSError:
            continue
    s.close()
    raise OSError("no free port in 22000-22999")


def start_screen(pipe, **settings) -> SipHarness:
    """A SIP screen listening on a free port of PORTS (UDP and TCP)."""
    for _ in range(20):
        probe = bound_socket(socket.SOCK_DGRAM)
        port = probe.getsockname()[1]
        probe.close()
        s = SipSettings(listen=f"127.0.0.1:{port}", allow_networks=["127.0.0.0/8"])
        for k, v in settings.items():           # (set after: a setting the code does not have yet fails the test
            setattr(s, k, v)                    # at its assertions, not at the constructor)
        try:
            return SipHarness(pipe, s).start()
        except OSError:
            continue
    raise OSError("no free port for the screen")


def invite(call_id: str, sock: socket.socket, max_forwards: int = 70) -> bytes:
    """An INVITE over TCP from `sock`, a caller and a callee of its own (no rule of the pipeline's takes it for a
    flood to one number)."""
    port, callee = sock.getsockname()[1], f"09{random.randrange(10**8):08d}"
    return (f"INVITE sip:{callee}@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK-{call_id}\r\nMax-Forwards: {max_forwards}\r\n"
            f"From: <sip:09{random.randrange(10**8):08d}@127.0.0.1>;tag=a\r\nTo: <sip:{callee}@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:{port};transport=tcp>\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def ringing(fwd: bytes) -> bytes:
    """A 180 with early media (BODY) to the INVITE `fwd` the screen forwarded."""
    head = fwd.split(b"\r\n\r\n")[0].decode().split("\r\n")
    keep = [ln for ln in head[1:] if ln.split(":")[0].lower() in ("via", "from", "call-id", "cseq")]
    return (("SIP/2.0 180 Ringing\r\n" + "\r\n".join(keep) + "\r\nTo: <sip:0912345678@127.0.0.1>;tag=callee\r\n"
             f"Content-Type: application/sdp\r\nContent-Length: {len(BODY)}\r\n\r\n").encode() + BODY)


class Callee(threading.Thread):
    """The next hop (UDP): every INVITE forwarded to it is answered with `copies` 180s carrying early media, sent
    back to the screen, which relays them on the caller's TCP connection (RFC 3261 §16.7, §18.2.2)."""

    def __init__(self, copies: int):
        super().__init__(daemon=True)
        self.sock = bound_socket(socket.SOCK_DGRAM, rcvbuf=4 << 20)     # (a burst of INVITEs waits in it)
        self.sock.settimeout(0.2)
        self.port, self.copies, self.stop, self.invites = self.sock.getsockname()[1], copies, False, 0
        self.screen_port = None

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data.startswith(b"INVITE "):
                continue
            self.invites += 1
            for _ in range(self.copies):
                self.sock.sendto(ringing(data), addr)
                time.sleep(0.001)               # (paced: the screen's UDP receive buffer is the kernel's to cap)

    def close(self):
        self.stop = True
        self.join(5)
        self.sock.close()


def write_buffered(screen) -> int:
    """Bytes written to TCP peers and not acknowledged by them: asyncio's buffers and the kernel's send queues (run
    in the screen's loop thread)."""
    n = 0
    for c in screen.tcp_conns.values():
        if c.transport is None or c.transport.is_closing():
            continue
        n += c.transport.get_write_buffer_size()
        n += struct.unpack("i", ioctl(c.transport.get_extra_info("socket").fileno(), TIOCOUTQ, b"\0" * 4))[0]
    return n


def test_peers_that_never_read_hold_no_more_than_max_tcp_write_buffered_and_a_reading_peer_is_served(pipe):
    """Twelve callers over TCP (a small receive window, never read) each send four INVITEs the next hop answers with
    twelve 30 KB 180s: 1.4 MB for each, 17 MB in all, of which each connection may hold 1 MB (WRITE_MAX). The total
    is bounded at 4 MB here: before, they held 12 MB; now the connection holding most is closed at the bound
    (counted, the peer named in the log) and a caller that reads its answers is answered throughout."""
    bound = 4 * 1024 * 1024
    callee = Callee(copies=12)
    callee.start()
    h = start_screen(pipe, next_hop=f"127.0.0.1:{callee.port}", max_tcp_write_buffered=bound)
    peers, good = [], None
    try:
        good = bound_socket()
        good.connect(("127.0.0.1", h.port))
        good.settimeout(2)
        for i in range(12):
            p = bound_socket(rcvbuf=4096)
            p.connect(("127.0.0.1", h.port))
            p.sendall(b"".join(invite(f"slow-{i}-{k}", p) for k in range(4)))
            peers.append(p)
        buffered, worst, n = [], 0.0, 0
        end = time.monotonic() + 6
        while time.monotonic() < end and callee.invites < 48 or time.monotonic() < end - 4:
            buffered.append(h.run(write_buffered, h.screen))
            n += 1                              # the reading caller: answered by the screen itself (483)
            t0 = time.monotonic()
            good.sendall(invite(f"good-{n}", good, max_forwards=0))
            got = b""
            while b"\r\n\r\n" not in got:
                got += good.recv(65535)
            assert got.startswith(b"SIP/2.0 483") and f"good-{n}".encode() in got, got[:200]
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.05)
        assert callee.invites == 48             # every INVITE was forwarded (and answered with its 180s)
        assert wait_for(lambda: h.screen.stats["responses"] >= 48 * 12, 10), h.screen.stats
        buffered.append(h.run(write_buffered, h.screen))
        st = h.screen.stats
        assert max(buffered) <= bound, (max(buffered), bound)
        assert st["tcp_write_evicted"] >= 12 - bound // (1024 * 1024) - 1, st
        assert h.run(lambda: h.screen.tcp_writes.total) <= bound
        assert worst < 1.0, worst               # (a liveness bound with a wide margin)
        # the reading caller was never the one closed
        good.sendall(invite("good-last", good, max_forwards=0))
        assert good.recv(65535).startswith(b"SIP/2.0 483")
    finally:
        for p in peers:
            p.close()
        if good is not None:
            good.close()
        h.stop()
        callee.close()


def test_the_total_is_a_setting_checked_at_its_line(tmp_path):
    from engine.sip_screen.settings import load_sip_settings
    assert load_sip_settings(tmp_path).max_tcp_write_buffered == 64 * 1024 * 1024      # the default: no sip.toml
    (tmp_path / "sip.toml").write_text("[sip]\nmax_tcp_write_buffered = 8_388_608\n")
    assert load_sip_settings(tmp_path).max_tcp_write_buffered == 8 * 1024 * 1024
    for value in ("0", "-1", "65536"):          # below one connection's 1 MB: every busy connection closed
        (tmp_path / "sip.toml").write_text(f"[sip]\nmax_tcp_write_buffered = {value}\n")
        with pytest.raises(ValueError, match=r"sip.toml:2:1: \[sip\] max_tcp_write_buffered must be at least 1048576"):
            load_sip_settings(tmp_path)


def test_a_next_hop_that_never_reads_is_closed_at_the_bound_and_the_call_it_could_not_take_answered_503(pipe):
    """The connection written to is the one holding most (here the only one: a TCP next hop that accepts and never
    reads): at the bound it is closed, not written to, and the INVITE that could not leave is answered 503 as one
    over the connection's own bound (WRITE_MAX) is; the next call opens a new connection."""
    hop = bound_socket()
    hop.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # (inherited by what it accepts)
    hop.listen(8)
    hop.settimeout(3)
    bound = 1024 * 1024
    h = start_screen(pipe, next_hop=f"127.0.0.1:{hop.getsockname()[1]};transport=tcp", max_tcp_write_buffered=bound)
    cli = bound_socket(socket.SOCK_DGRAM, rcvbuf=1 << 20)
    cli.settimeout(0.05)
    accepted, answers = [], []
    try:
        for i in range(60):                     # 60 x 30 KB: the hop's connection would hold 1.8 MB
            req = (invite(f"hop-{i}", cli).replace(b"SIP/2.0/TCP", b"SIP/2.0/UDP")
                   .replace(b"Content-Length: 0\r\n\r\n", b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n"
                            % len(BODY)) + BODY)
            cli.sendto(req, ("127.0.0.1", h.port))
            if i == 0:
                accepted.append(hop.accept()[0])    # and never read
            try:
                answers.append(cli.recv(65535))
            except socket.timeout:
                pass
        cli.settimeout(1)
        while True:
            try:
                answers.append(cli.recv(65535))
            except socket.timeout:
                break
        busy = [a for a in answers if a.startswith(b"SIP/2.0 503")]
        evicted = h.screen.stats.get("tcp_write_evicted", 0)
        assert evicted >= 1, h.screen.stats
        assert len(busy) == evicted and h.screen.stats["forward_failed"] == len(busy)
        assert all(b"not reading what we write" in a for a in busy), busy[:1]
        accepted.append(hop.accept()[0])        # the next INVITE: a new connection
    finally:
        for c in accepted:
            c.close()
        cli.close()
        h.stop()
        hop.close()


class Held:
    """A connection as tcpwrites.py sees it: what it holds unacknowledged, and when its peer last took some."""

    def __init__(self, name, unacked, taken_at):
        self.peer, self.unacked_now, self.taken_at, self.aborted = (name, 5060), unacked, taken_at, False
        self.held, self.progress_at = 0, 0.0

    def unacked(self):
        return 0 if self.aborted else self.unacked_now

    def abort(self):
        self.aborted = True


def test_at_the_bound_the_peer_that_takes_nothing_is_closed_not_a_trunk_with_more_in_flight(pipe):
    """A trunk reading all the time may have more in flight than any one peer that never reads (the kernel grows
    its send queue to megabytes); at the bound the closed one is a peer holding the average or more that has
    taken nothing for the longest. Before, the one holding most was closed: the trunk."""
    from .sip_helpers import offline_screen
    scr = offline_screen(pipe)
    scr.s.max_tcp_write_buffered = 8 * 1024 * 1024
    now = time.monotonic()
    trunk = Held("10.0.0.1", 3_000_000, now - 30)       # seen long ago, and taking bytes since (refresh: 2.9 MB)
    stuck = [Held(f"10.0.1.{i}", 1_500_000, now - 20 + i) for i in range(3)]
    small = Held("10.0.2.1", 10_000, now - 60)           # taking nothing either, but holding little
    budget = scr.tcp_writes
    for c in (trunk, *stuck, small):
        budget.seen(c, c.unacked_now)
        c.progress_at = c.taken_at
    trunk.unacked_now = 2_900_000
    assert budget.room(trunk, 1_000_000)                # 7.5 + 1 MB: over; the oldest of the big stuck ones goes
    assert [c.aborted for c in (trunk, *stuck, small)] == [False, True, False, False, False]
    assert budget.total == 2_900_000 + 2 * 1_500_000 + 10_000 and scr.stats["tcp_write_evicted"] == 1


def test_a_connection_closed_with_nothing_queued_ends_as_before_one_with_a_queue_is_reset(pipe):
    """An abort resets the connection only when the kernel holds bytes for its peer (to let go of them): one closed
    idle still ends with a FIN, the peer reading the end of the stream as before."""
    h = start_screen(pipe, tcp_idle_timeout=0.5)
    c = bound_socket()
    try:
        c.connect(("127.0.0.1", h.port))
        c.settimeout(4)
        assert c.recv(100) == b""                      # closed idle: the end, not ConnectionResetError
        assert h.screen.stats["tcp_timed_out"] == 1
    finally:
        c.close()
        h.stop()


def test_at_the_bound_a_connection_holding_nothing_is_not_the_one_closed(pipe):
    """Found by the stop's review: the connection written to was weighed by when it last drained, so a trunk that
    had taken everything (holding nothing, drained a while ago) or a brand-new connection was closed for the write
    while 200 peers that never read kept their bytes. Now it is a candidate only while it holds bytes itself."""
    from .sip_helpers import offline_screen
    scr = offline_screen(pipe)
    scr.s.max_tcp_write_buffered = 1024 * 1024
    now = time.monotonic()
    stuck = [Held(f"10.0.1.{i}", 5_300, now - 0.1) for i in range(200)]     # 1,060,000 held, none taken since
    trunk = Held("10.0.0.1", 0, now - 0.2)                                  # drained 0.2 s ago: holds nothing
    budget = scr.tcp_writes
    for c in stuck:
        budget.seen(c, c.unacked_now)
        c.progress_at = c.taken_at
    trunk.progress_at = trunk.taken_at
    assert budget.room(trunk, 4_000)
    assert not trunk.aborted and sum(c.aborted for c in stuck) >= 1
    assert budget.total + 4_000 <= 1024 * 1024
    fresh = Held("10.0.0.2", 0, 0.0)                                         # never held anything
    assert budget.room(fresh, 4_000) and not fresh.aborted
