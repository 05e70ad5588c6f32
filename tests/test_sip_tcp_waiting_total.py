"""What waits for outbound TCP connects is bounded for all destinations together (`max_tcp_write_buffered`, as what
is written: tcpwrites.py), not only per destination (WRITE_MAX): with the connects a peer can make us open (over a
thousand in flight, each up to 2 s) that was a gigabyte of messages held in the process, and the bound of what is
written did not count them (noticed when that bound was built). Beyond it a request gets its 503 (on_fail), counted
as `tcp_waiting_refused`, and a connect that ends gives its bytes back. Servers on 127.0.0.1 only."""
import socket

from .test_sip_tcp_outbound_caps import Peer, pipe, wait_for  # noqa: F401  (the fixture)

MB = 1024 * 1024
REFUSED = "too many bytes waiting for TCP connections"


class Stuck:
    """Next hops on 127.0.0.1 whose connects hang: a listener with its accept queue full (one connection made,
    never accepted, backlog 0) drops the SYNs of the next ones, until the screen's TCP_CONNECT gives up."""

    def __init__(self, n):
        self.socks = []
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(0)
            c = socket.create_connection(s.getsockname(), timeout=2)
            self.socks += [s, c]
        self.ports = [s.getsockname()[1] for s in self.socks[::2]]

    def close(self):
        for s in self.socks:
            s.close()


def test_messages_waiting_for_connects_are_bounded_for_all_destinations(pipe):  # noqa: F811
    hops = Stuck(3)
    p = Peer(pipe, max_tcp_write_buffered=MB)
    failed = []

    def send_all():
        for i in range(60):                     # 3 destinations x 20 x 60 KB = 3.6 MB offered
            p.scr._send(b"x" * 60_000, ("127.0.0.1", hops.ports[i % 3]), "TCP", on_fail=failed.append)
        return p.scr.tcp_writes.waiting, sum(w.size for w in p.scr.tcp_connecting.values())
    try:
        waiting, held = p.h.run(send_all)
        assert waiting == held <= MB, (waiting, held)
        refused = 60 - MB // 60_000
        assert len(failed) == refused and set(failed) == {REFUSED}, failed
        assert p.scr.stats["tcp_waiting_refused"] == refused
        # the connects give up (TCP_CONNECT): what waited is failed, its bytes given back
        assert wait_for(lambda: p.h.run(lambda: p.scr.tcp_writes.waiting) == 0, 10)
        assert len(failed) == 60 and p.h.run(lambda: p.scr.tcp_connecting) == {}
    finally:
        p.close()
        hops.close()


def test_a_connect_that_is_refused_gives_its_bytes_back(pipe):  # noqa: F811
    p = Peer(pipe, max_tcp_write_buffered=MB)
    failed = []
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))               # bound, not listening: a connect is refused at once
    port = closed.getsockname()[1]
    try:
        assert p.h.run(lambda: p.scr._send(b"x" * 60_000, ("127.0.0.1", port), "TCP", on_fail=failed.append)
                       or p.scr.tcp_writes.waiting) == 60_000
        assert wait_for(lambda: p.h.run(lambda: p.scr.tcp_writes.waiting) == 0)
        assert len(failed) == 1 and "refused" in failed[0], failed
    finally:
        p.close()
        closed.close()


def test_the_tcp_totals_are_on_metrics(pipe):  # noqa: F811
    """An operator sees how near the bounds SIP over TCP is (the totals lived only on the screen's objects)."""
    from engine.metrics import Metrics
    hops = Stuck(1)
    p = Peer(pipe, max_tcp_write_buffered=MB)
    try:
        p.h.run(lambda: p.scr._send(b"x" * 60_000, ("127.0.0.1", hops.ports[0]), "TCP", on_fail=lambda why: None))
        m = Metrics(pipe, sip=p.scr)
        got = p.h.run(lambda: {s.labels["what"]: s.value for fam in m.registry.collect() for s in fam.samples
                               if s.name == "telfilter_sip_tcp_buffered_bytes"})
        assert got == {"write": 0, "waiting": 60_000, "read": 0}, got
    finally:
        p.close()
        hops.close()


def test_a_connect_cancelled_before_it_ran_gives_its_bytes_back(pipe):  # noqa: F811
    """Review: a connect task cancelled before its first step (a stop right after the forward) never ran the
    code that takes what waited for it, so the budget's `waiting` kept those bytes."""
    p = Peer(pipe, max_tcp_write_buffered=MB)

    def send_and_cancel():
        p.scr._send(b"x" * 60_000, ("127.0.0.1", 40001), "TCP", on_fail=lambda why: None)
        for t in list(p.scr.tcp_connects):
            t.cancel()                          # before the loop ran it
        return p.scr.tcp_writes.waiting
    try:
        assert p.h.run(send_and_cancel) == 60_000
        assert wait_for(lambda: p.h.run(lambda: (p.scr.tcp_writes.waiting, len(p.scr.tcp_connecting))) == (0, 0))
    finally:
        p.close()
