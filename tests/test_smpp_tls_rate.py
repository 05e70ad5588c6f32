"""The rate of TLS handshakes on the ESME side's TLS listener (engine/smpp_proxy/tls_rate.py): a flood of
ClientHellos from other loopback addresses is refused at accept, beyond a per-source and a listener-wide token
bucket, while an ESME bound over TLS before it keeps being answered. Certificates: test_smpp_tls's `pki`."""
import selectors
import socket
import ssl
import threading
import time

import smpplib.client
import smpplib.consts
import smpplib.exceptions

from engine.smpp_proxy.tls_rate import HandshakeRate

from .test_smpp_tls import HAM, client_context, pki, pipe, tls_harness      # noqa: F401 (fixtures)
from .test_smpp_proxy import wait

FLOOD_FROM = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")     # Linux routes all of 127/8 to loopback


def client_hello(pki) -> bytes:
    """The first flight of a real TLS client (a ClientHello): each copy sent makes the server do a full handshake's
    work (key exchange, its signature) before it can tell the peer will not finish."""
    ctx = client_context(pki)
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class HelloFlood:
    """Connects from FLOOD_FROM, sends a ClientHello, waits for the first answer byte (a ServerHello: the server
    did the handshake's work) or the close (refused), and closes; at most `parallel` at once, `seconds` long and
    `most` connections in all, paced to `most` / `seconds` a second so the flood lasts its `seconds` however fast
    the refusals come (bounded load). One thread, non-blocking sockets."""

    def __init__(self, port, hello, seconds=3.0, parallel=32, most=6000):
        self.port, self.hello, self.seconds, self.parallel, self.most = port, hello, seconds, parallel, most
        self.answered = self.refused = self.started = 0
        self.elapsed = 0.0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        sel, t0 = selectors.DefaultSelector(), time.monotonic()
        open_, end = 0, t0 + self.seconds
        while True:
            now = time.monotonic()
            paced = (now - t0) * self.most / self.seconds + 1
            while now < end and open_ < self.parallel and self.started < min(self.most, paced):
                s = socket.socket()
                s.setblocking(False)
                s.bind((FLOOD_FROM[self.started % len(FLOOD_FROM)], 0))
                s.connect_ex(("127.0.0.1", self.port))
                sel.register(s, selectors.EVENT_WRITE, "connecting")
                self.started += 1
                open_ += 1
            if not open_ and (now >= end or self.started >= self.most):
                break
            for key, _ in sel.select(0.1 if open_ else 0.002):
                s = key.fileobj
                if key.data == "connecting":
                    try:
                        s.sendall(self.hello)       # a few hundred bytes: the socket buffer takes them at once
                        sel.modify(s, selectors.EVENT_READ, "sent")
                        continue
                    except OSError:
                        self.refused += 1
                else:
                    try:
                        if s.recv(1):
                            self.answered += 1
                        else:
                            self.refused += 1
                    except OSError:                 # reset: refused at accept
                        self.refused += 1
                sel.unregister(s)
                s.close()
                open_ -= 1
            if time.monotonic() > end + 10:         # answers owed by a stuck server: give up on them
                break
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        self.elapsed = time.monotonic() - t0


def test_a_flood_of_client_hellos_is_refused_beyond_the_rate_and_a_bound_esme_is_still_answered(pipe, pki):
    """Each full handshake costs the loop ~0.45 ms of CPU (ECDSA P-256; more with client certificates): nothing
    bounded their rate, so ClientHellos from anywhere took the loop from every session. Now a connection over the
    per-source or the listener-wide rate is closed at accept, before any handshake work."""
    per_second, per_source, burst = 20.0, 5.0, 10
    h = tls_harness(pipe, pki, tls_handshakes_per_second=per_second, tls_handshakes_per_source=per_source,
                    tls_handshakes_per_source_burst=burst)
    c = None
    try:
        c = smpplib.client.Client("localhost", h.proxy.tls_port, timeout=5, ssl_context=client_context(pki))
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        flood = HelloFlood(h.proxy.tls_port, client_hello(pki))
        flood.thread.start()
        waits, answers = [], 0
        while flood.thread.is_alive():
            t0 = time.monotonic()
            c.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=c))
            assert c.read_pdu().command == "enquire_link_resp"
            c.send_message(source_addr_ton=1, source_addr_npi=1, source_addr="84901234567", dest_addr_ton=1,
                           dest_addr_npi=1, destination_addr=f"849{12345678 + answers}", short_message=HAM.encode())
            resp = c.read_pdu()
            assert resp.command == "submit_sm_resp" and resp.status == 0
            waits.append(time.monotonic() - t0)
            answers += 1
            time.sleep(0.05)
        flood.thread.join()
        assert flood.started >= 200, vars(flood)            # a flood, not a trickle
        # handshakes done: at most the listener-wide burst (one second of it) and rate over the flood's time
        bound = per_second + per_second * flood.elapsed + 1       # (+1: the two sides read their clocks apart)
        assert flood.answered <= bound, (f"{flood.answered} handshakes done in {flood.elapsed:.1f} s, over the "
                                         f"bound {bound:.0f}; {flood.refused} refused of {flood.started}")
        assert flood.answered >= 1 and flood.refused >= flood.started - bound
        assert h.proxy.stats["tls_handshakes_refused"] == flood.refused
        # the bound ESME's answers went on meanwhile (a generous bound: liveness, not speed)
        assert answers >= 5 and max(waits) < 2.0, waits
        assert len(h.sim.submits()) == answers
    finally:
        if c is not None:
            c.disconnect()
        h.stop()


def test_an_esme_reconnecting_within_its_burst_is_not_refused(pipe, pki):
    """The per-source burst is sized for an ESME binding all its connections at once after a restart."""
    h = tls_harness(pipe, pki, tls_handshakes_per_source=0.1, tls_handshakes_per_source_burst=4)
    try:
        for i in range(4):
            c = smpplib.client.Client("localhost", h.proxy.tls_port, timeout=5, ssl_context=client_context(pki))
            c.connect()
            c.bind_transmitter(system_id="esme1", password="secret")
            c.disconnect()
        c = smpplib.client.Client("localhost", h.proxy.tls_port, timeout=5, ssl_context=client_context(pki))
        try:
            c.connect()
            c.bind_transmitter(system_id="esme1", password="secret")
            raise AssertionError("a fifth handshake within 10 s was taken")
        except (OSError, smpplib.exceptions.ConnectionError):
            pass
        assert wait(lambda: h.proxy.stats["tls_handshakes_refused"] == 1)
        assert h.proxy.stats["tls_handshakes"] == 4
    finally:
        h.stop()


def test_the_per_source_table_is_bounded_and_forgets_the_oldest_source():
    r = HandshakeRate(per_second=1e9, per_source=1.0, per_source_burst=1, max_sources=3)
    assert r.admit("10.0.0.1", 0.0) and not r.admit("10.0.0.1", 0.1)
    for host in ("10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.4"):    # 10.0.0.1 seen again: 10.0.0.2 is the oldest
        r.admit(host, 0.2)
    assert list(r.sources) == ["10.0.0.3", "10.0.0.1", "10.0.0.4"]
    assert not r.admit("10.0.0.1", 0.3)                 # still remembered: its bucket still empty
    assert r.admit("10.0.0.1", 1.3)                     # one token a second


def test_the_listener_wide_rate_bounds_many_sources_and_a_refusal_costs_no_source_token():
    r = HandshakeRate(per_second=2.0, per_source=100.0, per_source_burst=100)
    assert [r.admit(f"10.0.0.{i}", 0.0) for i in range(4)] == [True, True, False, False]
    assert r.admit("10.0.0.9", 0.5)                     # the listener's bucket refilled by one
    r = HandshakeRate(per_second=1.0, per_source=1.0, per_source_burst=1)
    assert r.admit("10.0.0.1", 0.0)
    assert not r.admit("10.0.0.2", 0.0)                 # the listener's bucket is empty ...
    assert r.admit("10.0.0.2", 1.0)                     # ... 10.0.0.2's own token was not taken by that refusal
