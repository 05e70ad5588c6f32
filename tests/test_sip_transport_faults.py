"""Transport faults of the SIP screen (second probe): many TCP connections cannot starve the loop
(one scheduler bounds TCP work per loop round for all of them, in turn); a TCP peer or next hop
that does not read is not read either and is closed when it stays so, and what it leaves unread is
bounded; a response over TCP goes back on the request's connection while it is open, else to
`received` and the sent-by port (RFC 3261 §18.2.2; rport only when asked, RFC 3581); a CANCEL, the
ACK of a non-2xx and a retransmission go where their INVITE went and over its transport, also after
a reload changed the next hop (§9.1, §17.1.1.3) and when §18.1.1 sent a large INVITE over TCP."""
import asyncio
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.sip_screen import fastpath, tcp
from engine.sip_screen.codec import make_response, parse_datagram
from engine.sip_screen.framing import StreamParser
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.live_settings import apply_sip_settings
from engine.sip_screen.server import SipSettings
from engine.sip_screen.tcp import TcpConnection
from engine.sip_screen.transport import Pump, make_pump

from .sip_helpers import UAC, UAS, invite, offline_screen

WAYS = ["python", "pump"]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    d = tmp_path_factory.mktemp("sipfaults")
    ListStore(d).import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    return build(data_dir=d, with_model=False, persist=False)


def udp_sock(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(2)
    return s


def tcp_hop(rcvbuf=None):
    """A next hop's listening TCP socket on loopback (a small receive buffer: a slow or stalled reader)."""
    hop = socket.socket()
    if rcvbuf:
        hop.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    hop.bind(("127.0.0.1", 0))
    hop.listen(1)
    hop.settimeout(3)
    return hop


def feeder(scr, way):
    """How a datagram reaches the screen: the Python paths, or the C pump as `serve` runs it."""
    if way == "pump":
        if Pump is None:
            pytest.skip("C extension not built")
        def sendto(data, addr):                                 # what the pump relays itself: UDP
            scr.sent_transports.append("UDP")
            scr.udp.sendto(data, addr)
        return make_pump(scr, -1, sendto).handle
    return scr.on_datagram


def sent(scr):
    """What the screen sent since the last look: (message, address, transport)."""
    out = [(parse_datagram(d), a, t) for (d, a), t in zip(scr.udp.out, scr.sent_transports)]
    scr.udp.out.clear()
    scr.sent_transports.clear()
    return out


def branch_of(via: str) -> str:
    return re.search(r";branch=([^;]+)", via).group(1)


def cancel_of(inv: bytes) -> bytes:
    """The UAC's CANCEL of `inv` (RFC 3261 §9.1: its Request-URI, Call-ID, From, To, CSeq number, top Via)."""
    head = inv.split(b"\r\n\r\n", 1)[0]
    keep = [ln for ln in head.split(b"\r\n")[1:] if ln.split(b":", 1)[0].lower() in
            (b"via", b"from", b"to", b"call-id", b"max-forwards")]
    vias = [ln for ln in keep if ln.lower().startswith(b"via")]
    rest = [ln for ln in keep if not ln.lower().startswith(b"via")]
    return b"\r\n".join([head.split(b"\r\n", 1)[0].replace(b"INVITE ", b"CANCEL ", 1), vias[0], *rest,
                         b"CSeq: 1 CANCEL", b"Content-Length: 0"]) + b"\r\n\r\n"


def ack_of(inv: bytes, to_tag: str) -> bytes:
    """The UAC's ACK of a non-2xx final to `inv` (§17.1.1.3: the INVITE's top Via, the response's To)."""
    return cancel_of(inv).replace(b"CANCEL ", b"ACK ", 1).replace(b"1 CANCEL", b"1 ACK").replace(
        b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=" + to_tag.encode())


# ---------------------------------------------------------------- 2. TCP work per loop round, all connections


class FakeTransport:
    def __init__(self):
        self.reading, self.out = True, []

    def is_closing(self):
        return False

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True

    def get_write_buffer_size(self):
        return 0

    def write(self, data):
        self.out.append(data)


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


# ---------------------------------------------------------------- 4. responses over TCP (RFC 3261 §18.2.2)

def test_a_tcp_response_goes_on_the_requests_connection_then_to_the_sent_by_port(pipe):
    """A UAC over TCP that did not ask for rport gets none stamped (RFC 3581: on request only); our Via
    names its connection; the 180 comes back on that connection; once it has closed, the 486 goes
    over a new connection to `received` and the sent-by port -- not to the dead connection's port,
    where the probe's response was lost."""
    uas = udp_sock()
    listener = socket.socket()                                  # the UAC's sent-by port
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    listener.settimeout(3)
    sent_by = listener.getsockname()[1]
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        c = socket.create_connection(("127.0.0.1", h.port), timeout=3)
        inv = invite(call_id="tcp-close-1", via_port=sent_by).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP") \
            .replace(b";rport\r\n", b"\r\n")
        c.sendall(inv)
        fwd = parse_datagram(uas.recv(65535))
        ours, uac = fwd.values("via")[:2]
        assert "rport" not in uac and re.search(r";i=[0-9a-f]+", ours), fwd.values("via")
        uas.sendto(make_response(fwd, 180, None, to_tag="u1").to_bytes(), ("127.0.0.1", h.port))
        p = StreamParser()
        while (r := p.next()) is None:
            p.feed(c.recv(65535))
        assert r.status == 180 and r.values("via") == [uac]     # on the request's own connection
        c.close()
        time.sleep(0.2)
        uas.sendto(make_response(fwd, 486, None, to_tag="u1").to_bytes(), ("127.0.0.1", h.port))
        a, _ = listener.accept()                                # a new connection to the sent-by port
        a.settimeout(3)
        p = StreamParser()
        while (r := p.next()) is None:
            p.feed(a.recv(65535))
        assert r.status == 486 and r.get("call-id") == "tcp-close-1"
        a.close()
    listener.close()
    uas.close()


def test_a_tcp_via_that_asked_for_rport_still_gets_it(pipe):
    """RFC 3581 over TCP: a bare rport is stamped with the source port, and the response still
    comes back on the connection."""
    uas = udp_sock()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    with SipHarness(pipe, s) as h:
        c = socket.create_connection(("127.0.0.1", h.port), timeout=3)
        c.sendall(invite(call_id="tcp-rport-1", via_port=5099).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        fwd = parse_datagram(uas.recv(65535))
        assert fwd.values("via")[1].endswith(f";rport={c.getsockname()[1]}")
        uas.sendto(make_response(fwd, 180, None, to_tag="u1").to_bytes(), ("127.0.0.1", h.port))
        assert c.recv(65535).startswith(b"SIP/2.0 180")
        c.close()
    uas.close()


def _response_for_tcp_via(conn_id: int, received=b""):
    return (b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtf0123456789abcdef0123;rport;i=%x\r\n"
            b"Via: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK1;rport=40123%s\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
            b"To: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n") % (conn_id, received)


@pytest.mark.parametrize("way", WAYS)
def test_a_response_for_a_tcp_via_is_the_full_paths_and_a_made_up_connection_is_not_used(pipe, way):
    """Both fast paths leave a response bound for a TCP Via to the full path (which connection is its
    decision); with no open connection of that id from that address, it goes to the sent-by port (not
    to rport: RFC 3581 §4 is for unreliable transports), and a connection from another address named
    in our Via is not used."""
    our = tuple(f"SIP/2.0/{t} 127.0.0.1:5060;branch=z9hG4bKtf".encode() for t in ("UDP", "TCP"))
    scr = offline_screen(pipe)
    other = TcpConnection(scr)
    other.transport, other.peer = FakeTransport(), ("127.0.0.7", 40123)
    scr.tcp_ids[other.id] = other
    data = _response_for_tcp_via(other.id)
    assert fastpath.relay_response(data, our) is fastpath.FULL_PARSE
    if fastpath._c_relay_response is not None:
        assert fastpath._c_relay_response(data, our) is None
    feeder(scr, way)(data, UAS)
    ((r, dest, tr),) = sent(scr)
    assert (r.status, dest, tr) == (180, ("127.0.0.1", 5099), "TCP") and other.transport.out == []
    feeder(scr, way)(_response_for_tcp_via(other.id, b";received=127.0.0.7"), UAS)     # from there: its connection
    assert sent(scr) == [] and len(other.transport.out) == 1 and other.transport.out[0].startswith(b"SIP/2.0 180")


def test_our_answer_after_the_connection_closed_goes_to_the_sent_by_port(pipe):
    """Our own answer (608) to a TCP request whose connection has closed meanwhile: §18.2.2's new
    connection to the source address and the sent-by port (it was written to the closed one)."""
    scr = offline_screen(pipe)

    class Closed(FakeTransport):
        def is_closing(self):
            return True
    c = TcpConnection(scr)
    c.transport, c.peer = Closed(), ("127.0.0.1", 40999)
    inv = invite(caller="0987000666", call_id="closed-1", via_port=5099).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
    c.data_received(inv)
    ((r, dest, tr),) = sent(scr)
    assert (r.status, dest, tr) == (608, ("127.0.0.1", 5099), "TCP")


# ---------------------------------------------------------------- 5, 6. CANCEL, ACK, retransmission: where the INVITE went

@pytest.mark.parametrize("way", WAYS)
def test_cancel_ack_and_retransmission_go_where_the_invite_went_after_a_reload(pipe, way):
    """A call rings at next hop A; `ctl reload sip` makes B the next hop; the INVITE's retransmission,
    its CANCEL and the ACK of its 487 still go to A (RFC 3261 §9.1, §17.1.1.3), with its branch; a
    new call goes to B."""
    scr = offline_screen(pipe)
    feed = feeder(scr, way)
    inv = invite(call_id="reload-1")
    feed(inv, UAC)
    ((fwd, dest, _),) = sent(scr)
    assert dest == ("127.0.0.1", 5070)
    branch = branch_of(fwd.values("via")[0])
    apply_sip_settings(scr, replace(scr.s, next_hop="127.0.0.1:5071"), {})
    feed(inv, UAC)                                              # the UAC retransmits
    feed(cancel_of(inv), UAC)                                   # and hangs up
    (re_inv, d1, _), (cancel, d2, _) = sent(scr)
    assert (re_inv.method, d1, cancel.method, d2) == ("INVITE", ("127.0.0.1", 5070), "CANCEL", ("127.0.0.1", 5070))
    assert branch_of(re_inv.values("via")[0]) == branch_of(cancel.values("via")[0]) == branch
    feed(make_response(fwd, 487, None, to_tag="a1").to_bytes(), UAS)
    assert sent(scr)[0][0].status == 487
    feed(ack_of(inv, "a1"), UAC)
    ((ack, d3, _),) = sent(scr)
    assert (ack.method, d3, branch_of(ack.values("via")[0])) == ("ACK", ("127.0.0.1", 5070), branch)
    feed(invite(call_id="reload-2"), UAC)                       # a new call: the new next hop
    assert [d for _, d, _ in sent(scr)] == [("127.0.0.1", 5071)]


@pytest.mark.parametrize("way", WAYS)
def test_cancel_and_ack_of_a_large_invite_follow_it_over_tcp(pipe, way):
    """An INVITE over 1300 bytes from a UDP caller leaves over TCP (§18.1.1); its CANCEL and the ACK
    of its 487 are small but go over TCP too, with a TCP Via, to the same place (they went over UDP
    with a UDP Via, and a next hop whose INVITE transaction lives on TCP never matched them)."""
    scr = offline_screen(pipe)
    feed = feeder(scr, way)
    sdp = "v=0\r\n" + "".join(f"a=candidate:{i} 1 UDP 2130706431 127.0.0.1 {40000 + i} typ host\r\n" for i in range(30))
    inv = invite(call_id="big-1", body=sdp.encode(), extra=["Content-Type: application/sdp"])
    assert len(inv) > 1300
    feed(inv, UAC)
    ((fwd, dest, tr),) = sent(scr)
    assert (dest, tr) == (("127.0.0.1", 5070), "TCP") and fwd.values("via")[0].startswith("SIP/2.0/TCP ")
    feed(cancel_of(inv), UAC)
    ((cancel, dest, tr),) = sent(scr)
    assert (cancel.method, dest, tr) == ("CANCEL", ("127.0.0.1", 5070), "TCP")
    assert cancel.values("via")[0].startswith("SIP/2.0/TCP ") and cancel.get("content-length") == "0"
    feed(make_response(fwd, 487, None, to_tag="b1").to_bytes(), UAS)
    assert sent(scr)[0][0].status == 487
    feed(ack_of(inv, "b1"), UAC)
    ((ack, dest, tr),) = sent(scr)
    assert (ack.method, dest, tr) == ("ACK", ("127.0.0.1", 5070), "TCP") and ack.values("via")[0].startswith("SIP/2.0/TCP ")
    assert branch_of(ack.values("via")[0]) == branch_of(cancel.values("via")[0]) == branch_of(fwd.values("via")[0])
    assert len(scr.invites) == 1                                # one entry per INVITE transaction


def test_what_waited_behind_a_failed_connect_follows_its_invite_to_udp(pipe):
    """A large INVITE's TCP connect fails (the hop takes UDP only): the INVITE goes over UDP (§18.1.1),
    and its retransmission and CANCEL that waited behind that connect follow it there, instead of
    being answered 503 while their INVITE is on its way."""
    scr = offline_screen(pipe)
    real = scr._send
    waiting = []

    def send(data, dest, transport="UDP", on_fail=None):
        if transport == "TCP":
            waiting.append(on_fail)                             # behind the one connect under way
            return
        real(data, dest, transport, on_fail)
    scr._send = send
    inv = invite(call_id="fallback-1", body=b"v=0\r\n" + b"a=x:" + b"y" * 1400 + b"\r\n")
    scr.on_datagram(inv, UAC)
    scr.on_datagram(inv, UAC)
    scr.on_datagram(cancel_of(inv), UAC)
    assert len(waiting) == 3 and sent(scr) == []
    for on_fail in waiting:                                     # the connect is refused
        on_fail("TCP connection refused or timed out")
    out = sent(scr)
    assert [(m.method, d, t) for m, d, t in out] == [("INVITE", ("127.0.0.1", 5070), "UDP")] * 2 + [
        ("CANCEL", ("127.0.0.1", 5070), "UDP")]
    assert all(m.values("via")[0].startswith("SIP/2.0/UDP ") for m, _, _ in out)
    assert scr.stats["forward_failed"] == 0


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


def test_what_waits_for_a_connect_goes_before_what_comes_once_it_is_made(pipe, monkeypatch):
    """A CANCEL handled between the outbound connection's connection_made and the connect's resumption
    overtook its INVITE on the stream."""
    hop = tcp_hop()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{hop.getsockname()[1]};transport=tcp",
                    allow_networks=["127.0.0.0/8"])
    inv = invite(call_id="order-1", via_port=5099)
    with SipHarness(pipe, s) as h:
        real = TcpConnection.connection_made

        def made(self, tr):
            real(self, tr)
            if self.key is not None:
                asyncio.get_running_loop().call_soon(h.screen.on_datagram, cancel_of(inv), ("127.0.0.1", 5099))
        monkeypatch.setattr(TcpConnection, "connection_made", made)
        h.run(h.screen.on_datagram, inv, ("127.0.0.1", 5099))
        c, _ = hop.accept()
        c.settimeout(2)
        p, got, end = StreamParser(), [], time.monotonic() + 3
        while len(got) < 2 and time.monotonic() < end:
            try:
                p.feed(c.recv(65535))
            except socket.timeout:
                break
            while (m := p.next()) is not None:
                got.append(m.method)
        c.close()
    hop.close()
    assert got == ["INVITE", "CANCEL"]


@pytest.mark.parametrize("way", ["python", "c"])
def test_a_received_or_rport_the_sender_wrote_itself_is_overwritten(pipe, monkeypatch, way):
    """RFC 3261 §18.2.1 / RFC 3581 §4: the server sets them from the packet's source. One the sender wrote
    (received=127.0.0.99, rport=6000) used to be kept: responses went wherever the sender named."""
    if way == "python":
        monkeypatch.setattr(fastpath, "_c_in_dialog", None)
    scr = offline_screen(pipe)
    inv = invite(call_id="rcv-1").replace(b";rport\r\n", b";received=127.0.0.99;rport=6000\r\n")
    scr.on_datagram(inv, UAC)
    (d, _a), = scr.udp.out
    scr.udp.out.clear()
    fwd = parse_datagram(d)
    assert fwd.values("via")[1].endswith(";received=127.0.0.1;rport=5080")
    scr.on_datagram(make_response(fwd, 180, None, to_tag="x").to_bytes(), UAS)
    assert scr.udp.out[0][1] == UAC
    scr.udp.out.clear()
    bye = (b"BYE sip:0912345678@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKb1;"
           b"received=127.0.0.99;rport=6000\r\nMax-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=a\r\n"
           b"To: <sip:0912345678@127.0.0.1>;tag=x\r\nCall-ID: rcv-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
    scr.on_datagram(bye, UAC)
    (d, _a), = scr.udp.out
    assert parse_datagram(d).values("via")[1].endswith(";received=127.0.0.1;rport=5080")


VIA_VARIANTS = {
    "dup-received": b";received=127.0.0.99;received=127.0.0.98;rport",
    "dup-rport": b";rport=6000;rport=6001",
    "bare-received": b";received;rport",
    "empty-received": b";received=;rport",
    "blank-after-value": b";received=127.0.0.99\x1e;rport=6666",
    "blank-before-name": b";\x1ereceived=127.0.0.99;\x0brport=6666",
    "blank-before-equals": b";received\x1e=127.0.0.99;rport\x1e=6666",
    "nbsp-before-name": ";\u00a0received=127.0.0.99;rport=6666".encode(),
}


@pytest.mark.parametrize("way", ["full", "fast", "fast-python", "pump"])
@pytest.mark.parametrize("v", list(VIA_VARIANTS))
def test_no_copy_of_a_sender_written_received_or_rport_steers_the_response(pipe, monkeypatch, way, v):
    """Review: the grammar lets the last copy of a parameter win, and a bare received got no value."""
    scr = offline_screen(pipe)
    feed = scr.on_datagram
    if way == "full":
        scr.fast_path = False
    elif way == "fast-python":
        monkeypatch.setattr(fastpath, "_c_in_dialog", None)
        monkeypatch.setattr(fastpath, "_c_relay_response", None)
    elif way == "pump":
        feed = feeder(scr, way)
    src = ("127.0.0.1", 5080) if b"rport" in VIA_VARIANTS[v] else ("127.0.0.5", 5080)
    lines = invite(call_id="v-" + v).split(b"\r\n")
    lines[1] = b"Via: SIP/2.0/UDP 127.0.0.77:5080;branch=z9hG4bK-x1" + VIA_VARIANTS[v]
    feed(b"\r\n".join(lines), src)
    (d, _a), = scr.udp.out
    scr.udp.out.clear()
    fwd = parse_datagram(d)
    feed(make_response(fwd, 180, None, to_tag="x").to_bytes(), UAS)
    (_d, a), = scr.udp.out
    assert a == src


@pytest.mark.parametrize("fast", [True, False])
def test_a_looping_ack_is_dropped_quietly(pipe, fast):
    ack = (b"ACK sip:0912345678@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKack1;rport\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=abc\r\nTo: <sip:0912345678@127.0.0.1>;tag=x\r\n"
           b"Call-ID: loop-ack\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
    scr = offline_screen(pipe)
    scr.fast_path = fast
    scr.on_datagram(ack, UAC)
    (fwd, dest), = scr.udp.out
    scr.udp.out.clear()
    scr.on_datagram(fwd, dest)                      # it comes back to us: a loop
    assert scr.udp.out == [] and scr.stats["internal_errors"] == 0 and scr.stats["loop_detected_ack"] == 1


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
