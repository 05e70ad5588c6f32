"""Outbound SIP TCP connections at their caps (bounds.py) while INVITEs ring (review 74): a connection whose
INVITE is ringing is not closed for a new one, and one that never gets a final holds it for `invite_wait_max`
only; every fork of a ringing INVITE keeps its connection, the final (or our 503) of one fork leaves the others
waiting, a waiting INVITE is remembered in fixed size and one transaction waits at a bounded number of
destinations; over a lowered cap idle connections are closed only when that admits the new one, and none when
too few are idle; the per-host cap and the connection keys take one text per address. Every server here is on
127.0.0.1 and stopped at the end; loads are bounded."""
import socket
import time

import pytest

from engine.sip_screen import bounds
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings

from .test_sip_tcp_outbound_caps import Listeners, Peer, options, pipe, wait_for  # noqa: F401,F811  (pipe: fixture)


# ------------------------------------------------------------ review 74: ringing INVITEs, lowered caps, host keys
class Hop:
    """A next hop on 127.0.0.1 that accepts one connection and answers what comes on it by hand."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.conn = None

    def request(self):
        if self.conn is None:
            self.lsock.settimeout(5)
            self.conn, _ = self.lsock.accept()
            self.conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.conn.recv(65535)
        return data.split(b"\r\n\r\n")[0].decode()

    def close(self):
        for s in (self.conn, self.lsock):
            if s is not None:
                s.close()


def invite_via_tcp(call_id, uac_port, route_port):
    return (f"INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{uac_port};branch=z9hG4bK-{call_id};rport\r\n"
            f"Route: <sip:127.0.0.1:{route_port};transport=tcp;lr>\r\nMax-Forwards: 70\r\n"
            f"From: <sip:0901234567@127.0.0.1>;tag=abc\r\nTo: <sip:0912345678@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:0901234567@127.0.0.1:{uac_port}>\r\nContent-Length: 0\r\n\r\n").encode()


def response_to(head, code, reason):
    lines = head.split("\r\n")
    vias = [ln for ln in lines if ln.lower().startswith("via:")]
    call_id = next(ln for ln in lines if ln.lower().startswith("call-id:"))
    cseq = next(ln for ln in lines if ln.lower().startswith("cseq:"))
    return (f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join(vias) + "\r\nFrom: <sip:0901234567@127.0.0.1>;tag=abc\r\n"
            f"To: <sip:0912345678@127.0.0.1>;tag=callee\r\n{call_id}\r\n{cseq}\r\nContent-Length: 0\r\n\r\n").encode()


def test_a_connection_whose_invite_is_ringing_is_not_closed_for_a_new_one(pipe, monkeypatch):
    """RFC 3261 §17.2.1, §16.8: an INVITE rings for minutes (Timer C > 3 min) with nothing on its connection after
    the 180, and the callee's 200 comes back on it (§18.2.2). Before, at the cap it was closed as idle after
    TCP_OUT_IDLE and the 200 was lost (review 74, r3). Now it is in no eviction order from its INVITE to its
    final: the new connection is refused (503) instead, and once the 200 has passed it may be closed again."""
    monkeypatch.setattr(bounds, "TCP_OUT_IDLE", 0.3)
    callee, other, third = Hop(), Listeners(1), Listeners(1)
    p = Peer(pipe, max_tcp_out_connections=1)
    try:
        p.send(invite_via_tcp("ring-1", p.port, callee.port))
        head = callee.request()
        callee.conn.sendall(response_to(head, 180, "Ringing"))
        assert p.answers(1)[0].startswith(b"SIP/2.0 180")
        time.sleep(0.5)                                         # idle by TCP_OUT_IDLE, still ringing
        p.send(options(1, p.port, other.ports[0]))
        (refused,) = p.answers(1)
        assert refused.startswith(b"SIP/2.0 503") and b"out-1" in refused
        assert (p.scr.stats["tcp_out_evicted"], p.scr.stats["tcp_out_refused"]) == (0, 1)
        callee.conn.sendall(response_to(head, 200, "OK"))       # the callee answers on the INVITE's connection
        (ok,) = p.answers(1)
        assert ok.startswith(b"SIP/2.0 200") and b"ring-1" in ok
        assert p.h.run(lambda: (dict(p.scr.tcp_out_ringing), len(p.scr.tcp_out_invites))) == ({}, 0)
        time.sleep(0.5)                                         # the call is answered: idle is idle again
        p.send(options(2, p.port, third.ports[0]))
        assert wait_for(lambda: p.outbound() == (1, [third.ports[0]]))
        assert p.scr.stats["tcp_out_evicted"] == 1
    finally:
        p.close()
        callee.close()
        other.close()
        third.close()


def test_an_invite_that_never_gets_a_final_holds_its_connection_for_invite_wait_max_only(pipe, monkeypatch):
    """A next hop that black-holes INVITEs (or answers 180 and never a final) keeps its connection out of the
    eviction order for INVITE_WAIT_MAX at most; retransmissions count once; the memory is bounded."""
    monkeypatch.setattr(bounds, "TCP_OUT_IDLE", 0.0)
    monkeypatch.setattr(bounds, "INVITES_WAITING", 3)
    callee, other = Hop(), Listeners(1)
    p = Peer(pipe, max_tcp_out_connections=1)
    try:
        p.send(invite_via_tcp("bh-1", p.port, callee.port))
        callee.request()
        p.send(invite_via_tcp("bh-1", p.port, callee.port))     # a retransmission
        assert wait_for(lambda: p.h.run(lambda: len(p.scr.tcp_out_invites)) == 1)
        key = ("127.0.0.1", callee.port)
        assert p.h.run(lambda: p.scr.tcp_out_ringing) == {key: 1}
        p.send(options(1, p.port, other.ports[0]))
        assert p.answers(1)[0].startswith(b"SIP/2.0 503")
        p.h.run(lambda: p.scr.tcp_out_expire(time.monotonic() + bounds.INVITE_WAIT_MAX + 1))
        assert p.h.run(lambda: (p.scr.tcp_out_ringing, len(p.scr.tcp_out_invites))) == ({}, 0)
        p.send(options(2, p.port, other.ports[0]))
        assert wait_for(lambda: p.outbound() == (1, [other.ports[0]]))
        assert p.scr.stats["tcp_out_evicted"] == 1

        def bounded():
            for n in range(10):
                p.scr.tcp_out_invite(f"x-{n} 1", ("127.0.0.1", 9))
            return len(p.scr.tcp_out_invites), p.scr.tcp_out_ringing
        assert p.h.run(bounded) == (3, {("127.0.0.1", 9): 3})
    finally:
        p.close()
        callee.close()
        other.close()


def settled(p, n):
    """`n` outbound connections open and no connect under way (a connect holds a place of its own until its task
    ends, after the connection is made)."""
    return wait_for(lambda: p.h.run(lambda: (p.scr.tcp_outbound, len(p.scr.tcp_connects), len(p.scr.tcp_out_lru)))
                    == (n, 0, n))


# idle after this long in the two lowered-cap tests: the connections used last must stay in use from their request
# to the next one's (a settle and a reload between: 0.3 s was a bet on a loaded host's scheduling)
IDLE = 1.5


def test_over_a_lowered_cap_idle_connections_are_closed_only_when_that_admits_the_new_one(pipe, monkeypatch):
    """After `ctl reload sip` lowered max_tcp_out_per_host below the connections open, each new connection used to
    close one idle connection and be refused all the same (review 74, r6). Now the idle ones are closed as many
    as bring the count under the cap, and the new one is admitted; if not that many are idle, none is closed."""
    from dataclasses import replace

    from engine.sip_screen.live_settings import apply_sip_settings
    monkeypatch.setattr(bounds, "TCP_OUT_IDLE", IDLE)
    hops = Listeners(8)
    p = Peer(pipe, max_tcp_out_connections=100, max_tcp_out_per_host=10)
    try:
        for i in range(5):
            p.send(options(i, p.port, hops.ports[i]))
        assert settled(p, 5)
        time.sleep(IDLE + 0.2)                                         # all five idle
        p.send(options(5, p.port, hops.ports[5]))               # used again: not idle
        assert settled(p, 6)
        p.h.run(lambda: apply_sip_settings(p.scr, replace(p.scr.s, max_tcp_out_per_host=2), {}))
        # 6 open, cap 2: the new one needs 5 closed, only 5 are idle but the 5th least recently used is not
        # (hops 0-4 idle, 5 in use): 5 idle ones are enough -- closed, the new one admitted
        p.send(options(6, p.port, hops.ports[6]))
        assert settled(p, 2) and p.outbound() == (2, sorted(hops.ports[5:7]))
        assert (p.scr.stats["tcp_out_evicted"], p.scr.stats["tcp_out_refused"]) == (5, 0)
        p.h.run(lambda: apply_sip_settings(p.scr, replace(p.scr.s, max_tcp_out_per_host=1), {}))
        # 2 open (both in use), cap 1: two would have to close, none is idle: refused, nothing closed
        p.send(options(7, p.port, hops.ports[7]))
        assert p.answers(1)[0].startswith(b"SIP/2.0 503")
        assert p.outbound() == (2, sorted(hops.ports[5:7]))
        assert (p.scr.stats["tcp_out_evicted"], p.scr.stats["tcp_out_refused"]) == (5, 1)
        time.sleep(IDLE + 0.2)                                         # now both are idle: both closed, the new one in
        p.send(options(8, p.port, hops.ports[7]))
        assert wait_for(lambda: p.outbound() == (1, [hops.ports[7]]))
        assert (p.scr.stats["tcp_out_evicted"], p.scr.stats["tcp_out_refused"]) == (7, 1)
    finally:
        p.close()
        hops.close()


def test_a_lowered_total_cap_with_too_few_idle_connections_closes_none(pipe, monkeypatch):
    """The total cap the same way: the k-th least recently used decides (they are in order of last use)."""
    from dataclasses import replace

    from engine.sip_screen.live_settings import apply_sip_settings
    monkeypatch.setattr(bounds, "TCP_OUT_IDLE", IDLE)
    hops = Listeners(5)
    p = Peer(pipe, max_tcp_out_connections=10, max_tcp_out_per_host=100)
    try:
        for i in range(2):
            p.send(options(i, p.port, hops.ports[i]))
        assert settled(p, 2)
        time.sleep(IDLE + 0.2)
        for i in range(2, 4):
            p.send(options(i, p.port, hops.ports[i]))
        assert settled(p, 4)
        p.h.run(lambda: apply_sip_settings(p.scr, replace(p.scr.s, max_tcp_out_connections=1), {}))
        p.send(options(4, p.port, hops.ports[4]))               # 4 would have to close, 2 are idle
        assert p.answers(1)[0].startswith(b"SIP/2.0 503")
        assert p.outbound()[0] == 4 and p.scr.stats["tcp_out_evicted"] == 0
    finally:
        p.close()
        hops.close()


SPELLINGS = ["::1", "0::1", "0:0::1", "0:0:0::1", "::0:1", "0000::1", "0:0:0:0:0:0:0:1"]


def test_the_per_host_cap_and_the_connection_keys_take_one_text_per_address(pipe):
    """`[::1]`, `[0::1]`, `[0:0::1]` ... are one host: before, each spelling was a host of its own for
    max_tcp_out_per_host and got a connection of its own (review 74, r5). Now the address is written one way
    (compressed; an IPv4-mapped one as IPv4) for every key: one connection to [::1]:port, reused."""
    try:
        lsock = socket.socket(socket.AF_INET6)
        lsock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    lsock.listen(16)
    port = lsock.getsockname()[1]
    s = SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8", "::1/128"], max_tcp_out_connections=100,
                    max_tcp_out_per_host=1)
    h = SipHarness(pipe, s).start()
    scr = h.screen
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    try:
        for i, sp in enumerate(SPELLINGS):
            u.sendto((f"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{u.getsockname()[1]};"
                      f"branch=z9hG4bK-v6{i};rport\r\nRoute: <sip:[{sp}]:{port};transport=tcp;lr>\r\n"
                      f"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\n"
                      f"Call-ID: v6-{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(),
                     ("127.0.0.1", h.port))
        assert wait_for(lambda: h.run(lambda: scr.tcp_outbound) == 1 and scr.stats["requests"] >= len(SPELLINGS))
        time.sleep(0.3)
        assert h.run(lambda: (scr.tcp_outbound, dict(scr.tcp_out_hosts), scr.stats["tcp_out_refused"])) == \
            (1, {"::1": 1}, 0)
        assert h.run(lambda: [k for k, c in scr.tcp_conns.items() if c.key]) == [("::1", port)]
        assert [scr._canonical(x) for x in ("::FFFF:127.0.0.1", "0:0:0:0:0:ffff:7f00:1", "localhost", "10.0.0.1",
                                            "example.com")] == \
            ["127.0.0.1", "127.0.0.1", "127.0.0.1", "10.0.0.1", "example.com"]
    finally:
        u.close()
        h.stop()
        lsock.close()


def _fork_invite(call_id, uac_port, route_port, branch):
    return (f"INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{uac_port};branch=z9hG4bK-{branch};rport\r\n"
            f"Route: <sip:127.0.0.1:{route_port};transport=tcp;lr>\r\nMax-Forwards: 70\r\n"
            f"From: <sip:0901234567@127.0.0.1>;tag=abc\r\nTo: <sip:0912345678@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:0901234567@127.0.0.1:{uac_port}>\r\nContent-Length: 0\r\n\r\n").encode()


def _two_forks(p, a, b, call_id, b_status, b_reason):
    """One INVITE forked upstream (same Call-ID and CSeq, a branch each) over TCP to hops A and B; A rings, B
    answers `b_status`; both answers relayed."""
    p.send(_fork_invite(call_id, p.port, a.port, call_id + "-a"))
    ha = a.request()
    p.send(_fork_invite(call_id, p.port, b.port, call_id + "-b"))
    hb = b.request()
    a.conn.sendall(response_to(ha, 180, "Ringing"))
    b.conn.sendall(response_to(hb, b_status, b_reason))
    p.answers(2)


def test_every_fork_of_a_ringing_invite_keeps_its_connection(pipe, monkeypatch):
    """An upstream forking proxy sends one INVITE (same Call-ID and CSeq, a branch per fork) through the
    screen to two callees over TCP: both connections wait for their own final (a review found the second
    fork's connection closed as idle while it rang)."""
    monkeypatch.setattr(bounds, "TCP_OUT_IDLE", 0.3)
    a, b, other = Hop(), Hop(), Listeners(1)
    p = Peer(pipe, max_tcp_out_connections=2)
    try:
        _two_forks(p, a, b, "fork-1", 180, "Ringing")
        assert wait_for(lambda: len(p.h.run(lambda: dict(p.scr.tcp_out_ringing))) == 2)   # each fork waits
        time.sleep(0.5)                         # both idle by TCP_OUT_IDLE, both ringing
        p.send(options(1, p.port, other.ports[0]))
        p.answers(1, seconds=1.0)
        wait_for(lambda: p.scr.stats["tcp_out_evicted"] or p.scr.stats["tcp_out_refused"], 2)
        assert p.scr.stats["tcp_out_evicted"] == 0, "a ringing fork's connection was closed"
    finally:
        p.close()
        a.close()
        b.close()
        other.close()


def test_the_final_of_one_fork_leaves_the_other_waiting(pipe, monkeypatch):
    """Fork 1 over TCP to A, fork 2 over TCP to B; B answers 486 first (same Call-ID and CSeq): A, still
    ringing, keeps its connection."""
    monkeypatch.setattr(bounds, "TCP_OUT_IDLE", 0.3)
    a, b, other = Hop(), Hop(), Listeners(1)
    p = Peer(pipe, max_tcp_out_connections=2)
    try:
        _two_forks(p, a, b, "fork-2", 486, "Busy Here")
        time.sleep(0.5)
        p.send(options(7, p.port, b.port))      # B's connection used again (e.g. the ACK of its 486, hop by hop)
        time.sleep(0.05)
        p.send(options(1, p.port, other.ports[0]))
        p.answers(1, seconds=1.0)
        wait_for(lambda: p.scr.stats["tcp_out_evicted"] or p.scr.stats["tcp_out_refused"], 2)
        # which connection went? A's (ringing) must not
        outs = p.outbound()
        assert a.port in outs[1], "A's connection, whose INVITE still rings, was closed"
    finally:
        p.close()
        a.close()
        b.close()
        other.close()


def test_a_waiting_invite_is_remembered_in_fixed_size(pipe):
    """The wait of an INVITE over TCP is keyed by a digest of its transaction, not its text: a peer's 4 KB
    Call-IDs cost the memory of INVITES_WAITING small entries, not INVITES_WAITING x 8 KB."""
    a = Hop()
    p = Peer(pipe)
    try:
        p.send(_fork_invite("x" * 4000, p.port, a.port, "h1"))
        a.request()
        assert wait_for(lambda: p.h.run(lambda: len(p.scr.tcp_out_invites)) == 1)
        keys = p.h.run(lambda: list(p.scr.tcp_out_invites))
        assert all(type(d) is int and len(repr(dest)) < 64 for d, dest in keys), keys
    finally:
        p.close()
        a.close()


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_our_503_for_one_fork_leaves_the_other_forks_waiting(pipe, monkeypatch):
    """Fork 1 to A rings; fork 2 (same Call-ID and CSeq) cannot be sent (our cap): our 503 for fork 2 ends
    fork 2's wait only, and A's ringing connection is not closed for a new one (a review found it was)."""
    monkeypatch.setattr(bounds, "TCP_OUT_IDLE", 0.3)
    a, other = Hop(), Listeners(1)
    p = Peer(pipe, max_tcp_out_connections=1)
    try:
        p.send(_fork_invite("fk-1", p.port, a.port, "k1"))
        ha = a.request()
        a.conn.sendall(response_to(ha, 180, "Ringing"))
        assert p.answers(1)[0].startswith(b"SIP/2.0 180")
        assert p.h.run(lambda: dict(p.scr.tcp_out_ringing)) == {("127.0.0.1", a.port): 1}
        p.send(_fork_invite("fk-1", p.port, _closed_port(), "k2"))   # fork 2: refused (cap 1) -> our 503
        ans = p.answers(1)
        assert ans and ans[0].startswith(b"SIP/2.0 503"), ans
        ringing = p.h.run(lambda: dict(p.scr.tcp_out_ringing))
        time.sleep(0.5)
        p.send(options(1, p.port, other.ports[0]))
        p.answers(1, seconds=1.0)
        wait_for(lambda: p.scr.stats["tcp_out_evicted"] or p.scr.stats["tcp_out_refused"] > 1, 2)
        assert ringing == {("127.0.0.1", a.port): 1}, f"A's wait ended by fork 2's 503: {ringing}"
        assert p.scr.stats["tcp_out_evicted"] == 0, "A's ringing connection was closed"
    finally:
        p.close()
        a.close()
        other.close()


def test_one_transaction_waits_at_a_bounded_number_of_destinations(pipe):
    """A peer naming one Call-ID and CSeq with ever new destinations: the transaction's forks are bounded
    (the oldest forgotten), so a final's look-up stays small."""
    p = Peer(pipe)
    try:
        def setup():
            for i in range(500):
                p.scr.tcp_out_invite("cid 1", ("127.0.0.2", 1 + i))
            return len(p.scr.tcp_out_by_tx[next(iter(p.scr.tcp_out_by_tx))]), len(p.scr.tcp_out_invites)
        assert p.h.run(setup) == (bounds.FORKS_WAITING, bounds.FORKS_WAITING)
    finally:
        p.close()
