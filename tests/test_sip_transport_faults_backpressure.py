"""Transport faults of the SIP screen (second probe): many TCP connections cannot starve the loop
(one scheduler bounds TCP work per loop round for all of them, in turn), and UDP callers are answered within a
second during a flood on 200 TCP connections; a TCP peer or next hop that does not read is not read either and
is closed when it stays so (a connection we closed is aborted and its slot freed), and what it leaves unread is
bounded; a next hop that reads slowly is not closed as stalled. The shared fixtures and helpers of the
test_sip_transport_faults_* files are here; responses over TCP are in test_sip_transport_faults_responses.py,
where a CANCEL, an ACK and a retransmission go in test_sip_transport_faults_invite_path.py."""
import asyncio
import socket
import subprocess
import sys
import threading
import time

from engine.sip_screen import tcp, tcprounds
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.sip_screen.tcp import TcpConnection

from .sip_helpers import invite, offline_screen
from .sip_transport_helpers import FakeTransport, pipe, tcp_hop, udp_sock  # noqa: F401,F811  (pipe: fixture)


# ---------------------------------------------------------------- 2. TCP work per loop round, all connections

def test_tcp_work_is_bounded_per_loop_round_for_all_connections_together(pipe, monkeypatch):
    """Twenty connections whose messages all arrive in one loop round: that round handles one
    `batch_seconds` of their work in all (it was one per connection, so N times that before the
    loop could serve SMPP or a UDP caller), the rest wait with their reading paused and are served
    in turn, one message per connection per turn, each connection's messages in their order.
    The clock is the test's: each message costs 1 ms of it."""
    scr = offline_screen(pipe)
    assert (scr.s.batch_seconds, scr.s.batch_messages) == (0.005, 32)
    now = [0.0]
    monkeypatch.setattr(tcp, "perf_counter", lambda: now[0], raising=False)
    monkeypatch.setattr(tcprounds, "perf_counter", lambda: now[0])
    monkeypatch.setattr(tcp.time, "perf_counter", lambda: now[0])      # (as the old per-connection bound read it)
    handled = []

    def on_message(msg, tr, src, conn):
        handled.append((conn.n, int(msg.get("call-id").split("-")[1])))
        now[0] += 0.001
    scr.on_message = on_message
    conns = []
    for n in range(20):
        c = TcpConnection(scr)
        c.transport, c.peer, c.n = FakeTransport(), (f"127.0.0.{n + 2}", 5060), n
        conns.append(c)
    rounds = []
    real_run = scr.tcp_rounds.run

    def run():
        before = len(handled)
        real_run()
        rounds.append(len(handled) - before)
    scr.tcp_rounds.run = run

    async def main():
        for c in conns:                                         # one loop round: every connection's bytes arrive
            c.data_received(b"".join(invite(call_id=f"c{c.n}-{i}") for i in range(10)))
        in_first_round = len(handled)
        for _ in range(200):
            await asyncio.sleep(0)                             # loop rounds
            if len(handled) == 200:
                break
        return in_first_round

    in_first_round = asyncio.run(main())
    assert in_first_round <= 6, in_first_round                  # 5 ms of 1 ms messages (+ the one that ends over)
    assert rounds and max(rounds) <= 6, rounds                  # every later round too
    assert len(handled) == 200
    # in turn: after the first connection's burst, the next 20 messages handled are one of each connection
    assert {n for n, _ in handled[in_first_round:in_first_round + 20]} == set(range(20))
    for n in range(20):                                         # each connection's messages in their order
        assert [i for m, i in handled if m == n] == list(range(10))
    assert all(c.transport.reading and not c.queued for c in conns)    # all drained: read again


FLOOD = r"""
import socket, sys, time, select
port, seconds = int(sys.argv[1]), float(sys.argv[2])
vias = "".join("Via: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bKtf%020x\r\n" % (port, i) for i in range(98))
extra = "".join("X-Filler-%d: %s\r\n" % (i, "f" * 40) for i in range(146))
def inv(n, c):
    return ("INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKf%d\r\n" % n + vias +
            "Max-Forwards: 70\r\nFrom: <sip:09%08d@127.0.0.1>;tag=a\r\nTo: <sip:0912345678@127.0.0.1>\r\n"
            "Call-ID: tflood-%d-%d\r\nCSeq: 1 INVITE\r\n" % (c, c, n) + extra + "Content-Length: 0\r\n\r\n").encode()
socks = []
for a in range(4):                                   # 4 sources x 50: within sip.toml's caps
    for c in range(50):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (2 + a), 0))
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
buf = {s: b"".join(inv(i, k) for i in range(20)) for k, s in enumerate(socks)}
pos = {s: 0 for s in socks}
print("ready", flush=True)
end, sent = time.time() + seconds, 0
while time.time() < end:
    _, w, _ = select.select([], socks, [], 0.2)
    for s in w:
        try:
            n = s.send(buf[s][pos[s]:])
        except OSError:
            continue
        sent += n
        pos[s] = (pos[s] + n) % len(buf[s])
    r, _, _ = select.select(socks, [], [], 0)
    for s in r:
        try:
            s.recv(1 << 20)
        except OSError:
            pass
print(sent, flush=True)
"""


def test_udp_callers_are_answered_within_a_second_during_a_flood_on_200_tcp_connections(pipe):
    """The probe's many-connections flood, on loopback: 200 connections (4 sources x 50) stream
    costly INVITEs while a UDP caller's requests, answered by the screen itself (483), must still be
    answered within a second (a liveness bound with a wide margin, as test_sip_fairness's; with a
    per-connection bound a round cost 200 x 5 ms, and an answer waited 1-3 s)."""
    sink = udp_sock()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{sink.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(h.port), "4"], stdout=subprocess.PIPE, text=True)
        try:
            assert flood.stdout.readline().strip() == "ready"
            cli = udp_sock("127.0.0.9")
            time.sleep(0.5)                                     # the flood is under way
            worst, n = 0.0, 0
            end = time.monotonic() + 2.5
            while time.monotonic() < end:
                n += 1
                req = invite(call_id=f"probe-{n}", max_forwards="0", via_port=cli.getsockname()[1])
                t0 = time.monotonic()
                cli.sendto(req, ("127.0.0.1", h.port))
                cli.settimeout(5)
                while f"probe-{n}".encode() not in (got := cli.recv(65535)):
                    pass
                assert got.startswith(b"SIP/2.0 483")
                worst = max(worst, time.monotonic() - t0)
                time.sleep(0.1)
        finally:
            sent = int(flood.communicate(timeout=30)[0].split()[-1])
        assert sent > 10_000_000 and h.screen.stats["requests"] > 500, (sent, h.screen.stats)   # the flood ran
        assert worst < 1.0, f"a UDP caller waited {worst:.2f} s during the TCP flood"
        cli.close()
    sink.close()


# ---------------------------------------------------------------- 3. a peer that does not read

def write_buffered(screen) -> int:
    """Bytes queued to TCP peers (run in the screen's loop thread)."""
    return sum(c.transport.get_write_buffer_size() for c in screen.tcp_conns.values() if c.transport)


def wait_for(cond, seconds=4.0) -> bool:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _requests_answered_by_the_screen(n_vias=90):
    """Requests the screen answers itself (483: Max-Forwards 0) with answers as large as they are (~8 KB)."""
    vias = [b"SIP/2.0/TCP 127.0.0.%d:5060;branch=z9hG4bK%s%d" % (1 + i % 200, b"x" * 40, i) for i in range(n_vias)]
    return lambda i: invite(call_id=f"noread-{i}", max_forwards="0", vias=vias).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")


def test_a_tcp_peer_that_does_not_read_is_not_read_and_closed_when_it_stays_so(pipe, monkeypatch):
    """RFC 3261 §18.3 gives a stream no other push-back: a peer that sends requests and never reads the
    answers is not read once WRITE_HIGH bytes wait for it (so what we queue for it stays bounded: it
    grew with what the peer sent, 500 MB in the probe), and is closed after WRITE_STALL seconds,
    counted as tcp_write_stalled; a peer that reads is served throughout."""
    monkeypatch.setattr(tcp, "WRITE_STALL", 1.0, raising=False)
    req = _requests_answered_by_the_screen()
    s = SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        peer.connect(("127.0.0.1", h.port))
        peer.setblocking(False)
        sent, stuck_since, buffered = 0, None, []
        deadline = time.monotonic() + 6
        data = b"".join(req(i) for i in range(5000))           # 42 MB of requests, as much in answers
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += peer.send(data[sent:sent + 65536])
                stuck_since = None
            except BlockingIOError:
                stuck_since = stuck_since or time.monotonic()
                if time.monotonic() - stuck_since > 0.5:
                    break                                       # the screen stopped reading us
                time.sleep(0.01)
            except OSError:
                break
            buffered.append(h.run(write_buffered, h.screen))
        # it stopped reading once its answers waited (what it read then is the kernel's buffers' worth)
        assert sent < len(data) and h.screen.stats["requests"] < 1000, (sent, h.screen.stats["requests"])
        assert max(buffered) <= tcp.WRITE_MAX
        # it stays stalled (the peer reads nothing): closed within WRITE_STALL and the sweeper's second
        assert wait_for(lambda: h.screen.stats["tcp_write_stalled"] == 1 and not h.screen.tcp_conns)
        assert h.screen.stats["tcp_timed_out"] == 0             # not blamed on an unfinished message
        peer.close()
        # a peer that reads its answers is served to the end
        good = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        got = bytearray()

        def read():
            while got.count(b"SIP/2.0 483") < 200:
                got.extend(good.recv(1 << 20))
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        good.sendall(b"".join(req(i) for i in range(200)))
        reader.join(10)
        assert got.count(b"SIP/2.0 483") == 200 and h.screen.stats["tcp_write_stalled"] == 1
        good.close()


def test_a_next_hop_that_does_not_read_is_closed_and_what_it_cannot_take_is_answered_503(pipe, monkeypatch):
    """Outbound alike: a TCP next hop that accepts our connection and never reads gets at most
    WRITE_MAX bytes queued; a forward that would go over is not written (tcp_write_dropped) and its
    caller hears 503 instead of silence; the connection is closed after WRITE_STALL seconds."""
    monkeypatch.setattr(tcp, "WRITE_STALL", 1.0, raising=False)
    monkeypatch.setattr(tcp, "WRITE_MAX", 128 * 1024, raising=False)
    hop = tcp_hop(rcvbuf=4096)
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{hop.getsockname()[1]};transport=tcp",
                    allow_networks=["127.0.0.0/8"])
    body = b"v=0\r\n" + b"a=x-pad:" + b"p" * 30000 + b"\r\n"
    with SipHarness(pipe, s) as h:
        cli = udp_sock()
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        answers = []
        cli.sendto(invite(caller="0901000000", call_id="big-0", via_port=cli.getsockname()[1], body=body),
                   ("127.0.0.1", h.port))
        conn, _ = hop.accept()                                  # and never read from it
        for i in range(1, 300):
            cli.sendto(invite(caller=f"0901{i:06d}", call_id=f"big-{i}", via_port=cli.getsockname()[1], body=body),
                       ("127.0.0.1", h.port))
            time.sleep(0.002)
            if h.screen.stats["tcp_write_dropped"] >= 5:
                break
        cli.settimeout(1)
        try:
            while True:
                answers.append(parse_datagram(cli.recv(65535)))
        except socket.timeout:
            pass
        dropped = h.screen.stats["tcp_write_dropped"]
        assert dropped >= 5, h.screen.stats
        busy = [a for a in answers if a.status == 503]
        assert len(busy) == dropped and all("not reading" in a.get("warning") for a in busy)
        assert 0 < h.run(write_buffered, h.screen) <= tcp.WRITE_MAX
        assert wait_for(lambda: h.screen.stats["tcp_write_stalled"] == 1 and not h.screen.tcp_conns)
        conn.close()
        cli.close()
    hop.close()


# ---------------------------------------------------------------- review of the transport commit
def test_a_connection_we_closed_whose_peer_does_not_read_is_aborted_and_its_slot_freed(pipe):
    """Closed for a parse error while queued (reading paused) with answers its peer never reads: close()
    waits for the buffer to drain, which it never does; it used to hold its slot for ever."""
    def req(i):
        return invite(call_id=f"leak-{i}", max_forwards="0").replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
    s = SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"], tcp_idle_timeout=1.0,
                    tcp_incomplete_timeout=1.0, max_tcp_per_source=1)
    with SipHarness(pipe, s) as h:
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(("127.0.0.1", h.port))
        i, end = 0, time.monotonic() + 10
        while time.monotonic() < end:                  # answers the peer never reads, until we hold some
            peer.sendall(b"".join(req(i + k) for k in range(200)))
            i += 200
            time.sleep(0.05)
            if h.run(lambda: [c.transport.get_write_buffer_size() for c in h.screen.tcp_conns.values()]) != [0]:
                break
        peer.sendall(b"".join(req(10**6 + k) for k in range(40)) + b"this is not sip\r\n\r\n")
        assert wait_for(lambda: h.screen.tcp_inbound == 0, 6)
        c2 = socket.create_connection(("127.0.0.1", h.port), timeout=2)
        c2.sendall(req(5))
        assert c2.recv(30).startswith(b"SIP/2.0 483")
        c2.close()
        peer.close()


def test_a_next_hop_that_reads_slowly_is_not_closed_as_stalled(pipe, monkeypatch):
    """Review: the stall clock restarted only when asyncio's buffer fell to its low-water mark; a hop reading
    all the time, slower than callers send, was closed. Progress now counts the kernel's send queue too."""
    import threading
    monkeypatch.setattr(tcp, "WRITE_STALL", 2.0)
    hop = tcp_hop(rcvbuf=8192)
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{hop.getsockname()[1]};transport=tcp",
                    allow_networks=["127.0.0.0/8"])
    body = b"v=0\r\na=x-pad:" + b"p" * 8000 + b"\r\n"
    stop, read = threading.Event(), [0]

    def slow_reader(c):
        c.settimeout(0.5)
        while not stop.is_set():
            try:
                d = c.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            read[0] += len(d)
            time.sleep(0.02)                        # ~200 KB/s, all the time
    with SipHarness(pipe, s) as h:
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cli.bind(("127.0.0.1", 0))
        port = cli.getsockname()[1]
        cli.sendto(invite(caller="0901000000", call_id="slow-0", via_port=port, body=body), ("127.0.0.1", h.port))
        c, _ = hop.accept()
        t = threading.Thread(target=slow_reader, args=(c,), daemon=True)
        t.start()
        t0, i = time.monotonic(), 0
        while time.monotonic() - t0 < 6:
            i += 1
            cli.sendto(invite(caller=f"0901{i:06d}", call_id=f"slow-{i}", via_port=port, body=body), ("127.0.0.1", h.port))
            time.sleep(0.004)                       # ~2 MB/s of INVITEs
        stalled = h.screen.stats["tcp_write_stalled"]
        stop.set()
        cli.close()
        c.close()
    hop.close()
    assert read[0] > 500_000 and stalled == 0
