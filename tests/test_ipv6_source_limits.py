"""Per-source limits over IPv6: a party holds a /64 (2^64 addresses), so each limit keyed by the full
address let it through as 2^64 sources. Found by a probe; each test here failed before engine/sourcekey.py
(the address spoofed at unit level: on loopback only ::1 can be bound)."""
import asyncio
import time

from engine import sourcekey
from engine.sip_screen import shares
from engine.sip_screen.shares import SourceShares
from engine.smpp_proxy.admission import BindThrottle, ConnectionCaps
from engine.sourcekey import source_key

from .sip_helpers import UAC, invite, offline_screen
from .test_smpp_inline_safety_binds import _Job


def test_source_key_ipv6_by_its_64_mapped_as_ipv4_ipv4_and_names_unchanged():
    assert source_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == source_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"              # the next /64: another source
    assert source_key("2001:0DB8:0001:0002:0:0:0:9") == "2001:db8:1:2::/64"  # however it is written
    assert source_key("::ffff:10.1.2.3") == source_key("10.1.2.3") == "10.1.2.3"
    assert source_key("10.1.2.4") == "10.1.2.4"                              # IPv4: the address
    assert source_key("fe80::1%eth0") == source_key("fe80::2") == "fe80::/64"  # scope id dropped
    assert source_key("::1") == "::/64"
    assert source_key("not:an:address") == "not:an:address" and source_key("?") == "?"


def test_source_key_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(sourcekey, "CACHE", 8)
    monkeypatch.setattr(sourcekey, "_cache", {})
    for i in range(100):
        assert source_key(f"2001:db8:1:2::{i:x}") == "2001:db8:1:2::/64"
    assert len(sourcekey._cache) <= 8


class _Sess:
    """What ConnectionCaps reads of an ESME session."""

    def __init__(self, host):
        self.peer, self.admitted, self.aborted = (host, 40000), False, False
        self.connected_at, self.bind_pending = time.monotonic(), False

    def abort(self):
        self.aborted = True


def test_smpp_max_connections_per_source_holds_a_whole_64():
    caps = ConnectionCaps(total=1000, per_source=3)
    try:
        flood = [_Sess(f"2001:db8:1:2::{i:x}") for i in range(1, 21)]     # 20 addresses of one /64
        for s in flood[:3]:
            assert caps.admit(s)
            caps.bound(s)                                                  # all three bound: the cap is full
        assert not any(caps.admit(s) for s in flood[3:])                    # (before: all 20 admitted)
        assert caps.stats["refused"] == 17 and caps.count == 3
        assert caps.by_source == {"2001:db8:1:2::/64": 3}
        other = _Sess("2001:db8:1:3::1")                                   # another /64: its own cap
        assert caps.admit(other)
        caps.release(flood[0])
        assert caps.admit(flood[3])                                        # room again in the /64
        # a dual-stack listener's IPv4-mapped peer is its IPv4 address: one cap with the plain one
        v4 = [_Sess("10.0.0.9"), _Sess("::ffff:10.0.0.9"), _Sess("10.0.0.9")]
        assert all(caps.admit(s) for s in v4) and caps.by_source["10.0.0.9"] == 3
        assert caps.admit(_Sess("::ffff:10.0.0.9"))                        # unbound ones: the oldest closed
        assert v4[0].aborted and caps.by_source["10.0.0.9"] == 3
        for s in [*flood[1:4], other, *v4[1:]]:
            caps.release(s)
        assert caps.count == 1 and set(caps.by_source) == {"10.0.0.9"}     # nothing left behind
    finally:
        caps.close()


def test_smpp_bind_back_off_holds_a_whole_64():
    """Wrong passwords, each from a new address of one /64: paced as one source (before: each address was
    a new source with `bind_failures_free` free tries, so the back-off never started)."""
    async def run():
        th, log, other = BindThrottle(free=2, backoff=30, backoff_max=30), [], []
        for i in range(1, 11):
            th.submit(f"2001:db8:1:2::{i:x}", "esme1", _Job(False, log))
        th.submit("2001:db8:1:3::1", "esme1", _Job(False, other))       # another /64 is not held up
        await asyncio.sleep(0.05)
        assert len(log) == 2 and len(other) == 1, (len(log), len(other))
        assert th.records[("2001:db8:1:2::/64", "esme1")].failures == 2
        assert len(th.sources["2001:db8:1:2::/64"].queue) == 8              # waiting, one queue for the /64
        for t in list(th.sources.values()):
            if t.timer:
                t.timer.cancel()
    asyncio.run(run())


def test_sip_invite_share_holds_a_whole_64():
    s = SourceShares()
    n = 4 * shares.MIN_COUNT
    over = [s.over_share(f"2001:db8:1:2::{i:x}", 0.0) for i in range(n)] + [s.over_share("10.0.0.1", 0.0)]
    over += [s.over_share(f"2001:db8:1:2:ffff::{i:x}", 0.0) for i in range(4)]
    assert over[-4:] == [True] * 4 and not over[n]                      # (before: no address over MIN_COUNT)
    assert set(s.counts) == {"2001:db8:1:2::/64", "10.0.0.1"}


def test_sip_screen_drops_a_64s_flood_of_invites_from_distinct_addresses_when_behind():
    from engine.app import build
    scr = offline_screen(build(with_model=False, persist=False))
    for i in range(shares.MIN_COUNT):
        scr.on_datagram(invite(call_id=f"f{i}"), (f"2001:db8:1:2::{i + 1:x}", 5080))
    scr.on_datagram(invite(call_id="u1"), UAC)
    scr.udp.out.clear()
    scr.udp.behind = time.monotonic() - 0.3                              # behind for 0.3 s (overload_after 0.25)
    for i in range(5):
        scr.on_datagram(invite(call_id=f"g{i}"), (f"2001:db8:1:2:{i + 1:x}::1", 5080))
    assert scr.stats["overload_source_dropped"] == 5 and scr.udp.out == []
    scr.on_datagram(invite(call_id="u2"), UAC)                          # the other source: judged
    assert len(scr.udp.out) == 1


def test_sip_max_tcp_per_source_holds_a_whole_64():
    from types import SimpleNamespace

    from engine.app import build
    scr = offline_screen(build(with_model=False, persist=False), max_tcp_per_source=3)
    conns = [SimpleNamespace(peer=(f"2001:db8:1:2::{i:x}", 40000), counted=False) for i in range(1, 21)]
    admitted = [scr.tcp_admit(c) for c in conns]
    assert admitted == [True] * 3 + [False] * 17 and scr.stats["tcp_refused"] == 17    # (before: all 20)
    assert scr.tcp_admit(SimpleNamespace(peer=("2001:db8:1:3::1", 40000), counted=False))   # another /64
    assert scr.tcp_admit(SimpleNamespace(peer=("::ffff:10.0.0.1", 40000), counted=False))
    assert scr.tcp_per_source == {"2001:db8:1:2::/64": 3, "2001:db8:1:3::/64": 1, "10.0.0.1": 1}
    scr.tcp_release(conns[0])
    assert scr.tcp_per_source["2001:db8:1:2::/64"] == 2 and scr.tcp_admit(conns[3])


def test_tls_handshake_rate_per_source_holds_a_whole_64():
    from engine.smpp_proxy.tls_rate import HandshakeRate
    r = HandshakeRate(per_second=1000, per_source=1, per_source_burst=3)
    admitted = sum(r.admit(f"2001:db8:1:2::{i:x}", 100.0) for i in range(1, 21))
    assert admitted == 3                            # 20 addresses of one /64: one source's burst
    assert r.admit("2001:db8:1:3::1", 100.0)        # the next /64 is another source
