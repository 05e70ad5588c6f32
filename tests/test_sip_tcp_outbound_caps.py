"""Outbound SIP TCP connections are bounded (bounds.py): in total (`max_tcp_out_connections`) and per destination
host (`max_tcp_out_per_host`), connects in flight included, and what waits for a connect is bounded in bytes. At a
cap the least recently used idle outbound connection is closed for the new one, else the new one is refused: a
request is answered 503, a large request falls back to UDP (RFC 3261 §18.1.1: its other option) without marking
the hop UDP-only, a response is dropped (§18.2.2: no other option the screen may use); each refusal counted as
`tcp_out_refused`. Before, every distinct (host, port) a peer named (a Route `;transport=tcp`, a TCP Via) got a
connection of its own, kept 300 s: 2,500 of them took every fd of `serve` under `ulimit -n 2048` and SMPP binds
failed (audit, reproduced end to end below). The shared fixtures and helpers of the test_sip_tcp_outbound_* files
are here; ringing INVITEs, lowered caps, host keys and forks are in test_sip_tcp_outbound_ringing.py. Every
server here is on 127.0.0.1 and stopped at the end; loads are bounded."""
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from engine.app import build
from engine.sip_screen import bounds
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import BRANCH_PREFIX, SipSettings

from .conftest import CONFIG, ROOT


@pytest.fixture
def pipe(tmp_path):
    return build(data_dir=tmp_path, with_model=False, persist=False)


def wait_for(cond, seconds=5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Listeners:
    """TCP listeners on 127.0.0.1 that never accept (the kernel completes the handshakes): next hops."""

    def __init__(self, n):
        self.socks = []
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            self.socks.append(s)
        self.ports = [s.getsockname()[1] for s in self.socks]

    def close(self):
        for s in self.socks:
            s.close()


def options(i, uac_port, route_port, transport="tcp", pad=0):
    return (f"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{uac_port};branch=z9hG4bK-out{i}x;rport\r\n"
            f"Route: <sip:127.0.0.1:{route_port};transport={transport};lr>\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\n"
            f"Call-ID: out-{i}\r\nCSeq: 1 OPTIONS\r\n" + (f"X-Pad: {'p' * pad}\r\n" if pad else "")
            + "Content-Length: 0\r\n\r\n").encode()


class Peer:
    """A SIP screen on loopback and a UDP peer sending it requests."""

    def __init__(self, pipe, **settings):
        s = SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"], **settings)
        self.h = SipHarness(pipe, s).start()
        self.scr = self.h.screen
        self.u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.u.bind(("127.0.0.1", 0))
        self.u.settimeout(0.3)
        self.port = self.u.getsockname()[1]

    def send(self, data):
        self.u.sendto(data, ("127.0.0.1", self.h.port))

    def answers(self, n, seconds=5.0):
        """Up to `n` answers the screen sent back, within `seconds`."""
        got, end = [], time.monotonic() + seconds
        while len(got) < n and time.monotonic() < end:
            try:
                got.append(self.u.recvfrom(65535)[0])
            except socket.timeout:
                pass
        return got

    def outbound(self):
        return self.h.run(lambda: (self.scr.tcp_outbound, sorted(k[1] for k, c in self.scr.tcp_conns.items()
                                                                 if c.key is not None and c.is_open())))

    def close(self):
        self.u.close()
        self.h.stop()


def test_outbound_connections_are_capped_and_a_request_beyond_the_cap_is_answered_503(pipe):
    hops = Listeners(8)
    p = Peer(pipe, max_tcp_out_connections=5, max_tcp_out_per_host=100)
    try:
        for i, port in enumerate(hops.ports):
            p.send(options(i, p.port, port))
            if i < 5:                   # connected, the OPTIONS written: no answer from the screen
                assert wait_for(lambda: p.outbound()[0] == i + 1 and len(p.outbound()[1]) == i + 1)
        answers = p.answers(3)
        assert len(answers) == 3 and all(a.startswith(b"SIP/2.0 503") for a in answers), answers
        assert all(b'Warning: 399 telfilter "too many outbound TCP connections"' in a for a in answers)
        assert p.outbound() == (5, sorted(hops.ports[:5]))
        st = p.scr.stats
        assert (st["tcp_out_refused"], st["forward_failed"], st["tcp_out_evicted"]) == (3, 3, 0)
        # a destination with a connection already open is still served at the cap
        p.send(options(20, p.port, hops.ports[0]))
        assert p.answers(1, 0.5) == [] and p.scr.stats["tcp_out_refused"] == 3
    finally:
        p.close()
        hops.close()


def test_outbound_connections_are_capped_per_destination_host(pipe):
    hops = Listeners(3)
    p = Peer(pipe, max_tcp_out_connections=100, max_tcp_out_per_host=2)
    try:
        for i, port in enumerate(hops.ports):
            p.send(options(i, p.port, port))
        (answer,) = p.answers(1)
        assert answer.startswith(b"SIP/2.0 503") and b"out-2" in answer
        assert wait_for(lambda: p.outbound() == (2, sorted(hops.ports[:2])))
        assert p.scr.stats["tcp_out_refused"] == 1
    finally:
        p.close()
        hops.close()


def test_connects_in_flight_count_against_the_cap(pipe):
    """A next hop that never completes the handshake holds a connect (an fd, up to TCP_QUEUE messages) for
    TCP_CONNECT seconds: those are counted too, so black-holed destinations cannot pile up connects."""
    p = Peer(pipe, max_tcp_out_connections=5, max_tcp_out_per_host=100)

    async def never(host, port):                # a connect that does not end (until the stop cancels it)
        await asyncio.sleep(60)
    p.scr._tcp_connect = never
    try:
        for i in range(8):
            p.send(options(i, p.port, 40000 + i))
        answers = p.answers(3)
        assert len(answers) == 3 and all(a.startswith(b"SIP/2.0 503") for a in answers)
        assert p.h.run(lambda: (len(p.scr.tcp_connecting), len(p.scr.tcp_connects), p.scr.tcp_outbound)) == (5, 5, 5)
    finally:
        p.close()
    assert p.scr.tcp_outbound == 0                    # the cancelled connects gave their places back


def test_messages_waiting_for_a_connect_are_bounded_in_bytes(pipe):
    """What waits behind one connect is bounded like an open connection's write buffer (WRITE_MAX), not only
    in count (TCP_QUEUE): 256 messages of 60 KB would be 15 MB for one destination."""
    p = Peer(pipe)

    async def never(host, port):
        await asyncio.sleep(60)
    p.scr._tcp_connect = never
    failed = []

    def send_all():
        for _ in range(40):
            p.scr._send(b"x" * 60_000, ("127.0.0.1", 40001), "TCP", on_fail=failed.append)
    try:
        p.h.run(send_all)
        assert len(failed) == 40 - 1_048_576 // 60_000
        assert failed[0] == "too many messages waiting for the TCP connection"
    finally:
        p.close()


def test_at_the_cap_the_least_recently_used_idle_connection_is_closed_for_a_new_one(pipe, monkeypatch):
    monkeypatch.setattr(bounds, "TCP_OUT_IDLE", 0.0)            # every connection is idle at once
    hops = Listeners(4)
    p = Peer(pipe, max_tcp_out_connections=3, max_tcp_out_per_host=100)
    a, b, c, d = hops.ports
    try:
        for i, port in enumerate((a, b, c, a)):                 # `a` used again: `b` is the least recently used
            p.send(options(i, p.port, port))
            assert wait_for(lambda: p.outbound() == (min(i + 1, 3), sorted(set((a, b, c, a)[:i + 1]))))
        p.send(options(9, p.port, d))
        assert wait_for(lambda: p.outbound() == (3, sorted((a, c, d))))
        assert p.answers(1, 0.5) == []
        assert (p.scr.stats["tcp_out_evicted"], p.scr.stats["tcp_out_refused"]) == (1, 0)
    finally:
        p.close()
        hops.close()


def test_a_response_for_a_tcp_via_at_the_cap_is_dropped_and_counted(pipe):
    """§18.2.2: a response whose next Via is TCP, its request's connection gone, needs a new connection to
    `received` and the sent-by port; at the cap, with none idle, it is dropped (the screen answers no response
    and names no other address: responses are never reflected where the sender says) and counted."""
    hops = Listeners(2)
    p = Peer(pipe, max_tcp_out_connections=1)
    try:
        p.send(options(0, p.port, hops.ports[0]))              # the one outbound connection, in use
        # settled: connected, and its connect's place given back (while the connect ends both count: 2)
        assert wait_for(lambda: p.outbound() == (1, [hops.ports[0]]))
        hops.socks[1].settimeout(0.5)
        resp = (f"SIP/2.0 200 OK\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{p.h.port};branch={BRANCH_PREFIX}0123456789abcdef;rport\r\n"
                f"Via: SIP/2.0/TCP 127.0.0.1:{hops.ports[1]};branch=z9hG4bK-uac1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
                f"To: <sip:x@127.0.0.1>;tag=2\r\nCall-ID: r-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        p.send(resp)
        assert wait_for(lambda: p.scr.stats["tcp_out_refused"] == 1)
        assert p.outbound() == (1, [hops.ports[0]])
        with pytest.raises(socket.timeout):
            hops.socks[1].accept()                           # no connection was opened to it
    finally:
        p.close()
        hops.close()


def test_a_large_request_at_the_cap_goes_over_udp_and_the_hop_is_not_marked_udp_only(pipe):
    """§18.1.1: a request over 1300 bytes tries TCP first; refused by our own cap it takes its other option,
    UDP, at once -- and the hop is not remembered as refusing TCP (the cap is of the moment, not the hop's)."""
    p = Peer(pipe, max_tcp_out_connections=1)
    hop = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hop.bind(("127.0.0.1", 0))
    hop.settimeout(5)
    tcp_hop = Listeners(1)
    try:
        p.send(options(0, p.port, tcp_hop.ports[0]))           # the cap's one connection
        assert wait_for(lambda: p.outbound() == (1, [tcp_hop.ports[0]]))
        p.send(options(1, p.port, hop.getsockname()[1], transport="udp", pad=1500))
        data, _ = hop.recvfrom(65535)
        assert data.startswith(b"OPTIONS ") and b"SIP/2.0/UDP" in data.split(b"\r\n")[1]
        assert p.scr.stats["tcp_out_refused"] == 1 and p.scr.udp_only == {} and p.scr.stats["forward_failed"] == 0
    finally:
        p.close()
        hop.close()
        tcp_hop.close()


SMSC = r'''
import asyncio, sys
sys.path.insert(0, sys.argv[2])
from engine.smpp_proxy.simulator import SmscSimulator
async def main():
    s = SmscSimulator(); await s.start("127.0.0.1", 0)
    print(s.server.sockets[0].getsockname()[1], flush=True); await asyncio.sleep(120)
asyncio.run(main())
'''


def _bind(port):
    import smpplib.client
    c = smpplib.client.Client("127.0.0.1", port, timeout=5)
    try:
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        c.unbind()
        return True
    except Exception:
        return False
    finally:
        try:
            c.disconnect()
        except Exception:
            pass


def test_serve_with_more_tcp_destinations_than_fds_keeps_binding_smpp(tmp_path):
    """The audit's reproduction, scaled down: `serve` under `ulimit -n 512` (soft and hard), a UDP peer naming
    600 distinct TCP destinations (listeners on 127.0.0.1 that accept nothing; sip.toml lets 1000 go to one
    host so that only the total cap applies). Before: one connection each until the fds ran out and an ESME
    could not bind. Now: the outbound cap (within the fd budget) holds, the rest are answered 503, the
    refusals are in /metrics and `ctl stats`, and SMPP binds."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1000:
        pytest.skip("this test process needs 1,000 file descriptors for the listeners")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    toml = (cfg / "sip.toml").read_text()
    (cfg / "sip.toml").write_text(toml.replace("max_tcp_out_per_host = 50", "max_tcp_out_per_host = 1000"))
    hops = Listeners(600)
    procs = []
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(0.2)
    try:
        smsc = subprocess.Popen([sys.executable, "-c", SMSC, "x", str(ROOT)], stdout=subprocess.PIPE, text=True)
        procs.append(smsc)
        smsc_port = int(smsc.stdout.readline())
        ready, data = tmp_path / "ready", tmp_path / "data"
        serve = subprocess.Popen(
            ["bash", "-c", 'ulimit -n 512 && exec "$@"', "serve", sys.executable, "-m", "engine.cli", "serve",
             "--config", str(cfg), "--data-dir", str(data), "--smpp-listen", "127.0.0.1:0",
             "--smsc", f"127.0.0.1:{smsc_port}", "--smsc-system-id", "x", "--esme-account", "esme1:secret",
             "--sip-listen", "127.0.0.1:0", "--sip-allow-networks", "127.0.0.0/8", "--log", "/dev/null",
             "--metrics-listen", "127.0.0.1:0", "--ready-file", str(ready)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.log", "w"),
            env={**os.environ, "TELFILTER_SMSC_PASSWORD": "y"})
        procs.append(serve)
        assert wait_for(ready.exists, 30), (tmp_path / "stderr.log").read_text()
        ports = dict(line.split() for line in ready.read_text().splitlines())
        smpp_port, sip_port, mport = int(ports["smpp"]), int(ports["sip"]), int(ports["metrics"])
        assert _bind(smpp_port)
        answered = set()

        def drain(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    a = u.recvfrom(65535)[0]
                except socket.timeout:
                    continue
                if a.startswith(b"SIP/2.0 503"):
                    answered.add(a.split(b"Call-ID: ", 1)[1].split(b"\r\n", 1)[0])
        for i, port in enumerate(hops.ports):
            u.sendto(options(i, u.getsockname()[1], port), ("127.0.0.1", sip_port))
            if i % 20 == 19:
                drain(0.05)
        drain(1.0)
        fds = len(os.listdir(f"/proc/{serve.pid}/fd"))
        assert fds < 512 - 16 and len(answered) > 300, (fds, len(answered))
        assert _bind(smpp_port)
        from .test_metrics import _get, _samples
        _, text = _get(mport, "/metrics")
        ev = {s.labels["event"]: s.value for s in _samples(text, "telfilter_sip_events_total")}
        assert ev["tcp_out_refused"] == len(answered)
        ctl = subprocess.run([sys.executable, "-m", "engine.cli", "ctl", "--data-dir", str(data), "stats"],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert "tcp_out_refused" in ctl.stdout, ctl.stdout + ctl.stderr
        err = (tmp_path / "stderr.log").read_text()
        assert "file descriptor limit 512" in err and "SIP max_tcp_out_connections 1000 ->" in err
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        u.close()
        hops.close()
