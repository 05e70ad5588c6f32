"""Overload: one peer flooding INVITEs must not decide whose calls get through. While the screen is behind (its UDP
socket not found empty for `overload_after` seconds), INVITEs from a source over its fair share of the traffic are
dropped before they are parsed (shares.py); the other sources' calls are read and judged. Found at stop 35: a
caller sending 20 calls a second from its own address during a flood from another got ~5% of them judged."""
import time

import pytest

from benchmarks.sip_flood import calls_through_a_flood
from engine.app import build
from engine.sip_screen import shares
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.shares import SourceShares

from .sip_flood_sim import flood_through
from .sip_helpers import UAC, invite, offline_screen


def test_a_source_is_over_its_share_only_beyond_min_count_and_its_fair_share_one_source_never():
    s = SourceShares()
    assert not any(s.over_share("10.0.0.1", 0.0) for _ in range(10 * shares.MIN_COUNT))     # alone: never
    s = SourceShares()
    for _ in range(shares.MIN_COUNT):
        assert not s.over_share("10.0.0.1", 0.0)
    assert not s.over_share("10.0.0.2", 0.0)
    assert s.over_share("10.0.0.1", 0.0)                     # 65 of 66 from two sources: over its half
    assert not s.over_share("10.0.0.2", 0.0)
    assert not s.over_share("10.0.0.1", shares.WINDOW)       # a new window: counted afresh
    assert s.total == 1 and s.counts == {"10.0.0.1": 1}
    for _ in range(shares.MIN_COUNT):                        # ... with the window before's 2 sources: not alone
        s.over_share("10.0.0.1", shares.WINDOW)
    assert s.over_share("10.0.0.1", shares.WINDOW)
    assert not s.over_share("10.0.0.1", 3 * shares.WINDOW)   # after a window with nothing: alone again
    assert s.before == 0


def test_at_most_max_sources_are_counted_in_a_window(monkeypatch):
    monkeypatch.setattr(shares, "MAX_SOURCES", 3)
    s = SourceShares()
    for i in range(10):
        s.over_share(f"10.0.0.{i}", 0.0)
    assert len(s.counts) == 3 and s.total == 10


def test_behind_an_invite_over_its_share_is_dropped_unread_others_and_in_dialog_requests_go_on():
    pipe = build(with_model=False, persist=False)
    scr = offline_screen(pipe)
    flooder = ("127.0.0.2", 5080)
    for i in range(shares.MIN_COUNT):
        scr.on_datagram(invite(call_id=f"f{i}"), flooder)
    scr.on_datagram(invite(call_id="u1"), UAC)
    assert len(scr.udp.out) == shares.MIN_COUNT + 1          # not behind: all judged and forwarded
    scr.udp.out.clear()
    scr.udp.behind = time.monotonic() - 0.3                  # behind for 0.3 s (overload_after 0.25)
    scr.on_datagram(invite(call_id="f-over"), flooder)
    assert scr.udp.out == [] and scr.stats["overload_source_dropped"] == 1
    scr.on_datagram(invite(call_id="u2"), UAC)               # the other source: judged
    ((d, _),) = scr.udp.out
    assert parse_datagram(d).method == "INVITE"
    scr.udp.out.clear()
    bye = (b"BYE sip:0912345678@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bK-bye\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=a\r\nTo: <sip:0912345678@127.0.0.1>;tag=b\r\n"
           b"Call-ID: f0\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
    scr.on_datagram(bye, flooder)                            # in-dialog, from the flooder: never dropped
    ((d, _),) = scr.udp.out
    assert parse_datagram(d).method == "BYE"
    scr.udp.out.clear()
    scr.udp.behind = time.monotonic() - 0.01                 # dropping the flood emptied the socket, it fills again:
    scr.on_datagram(invite(call_id="f-held"), flooder)       # still overloaded for HOLD seconds
    assert scr.udp.out == [] and scr.stats["overload_source_dropped"] == 2
    scr.overloaded_until = time.monotonic()                  # HOLD seconds later
    scr.udp.behind = time.monotonic() - 0.1                  # behind, not for long enough
    scr.on_datagram(invite(call_id="f-ok"), flooder)
    assert len(scr.udp.out) == 1
    scr = offline_screen(pipe, overload_after=0.0)           # off
    scr.udp.behind = time.monotonic() - 60
    for i in range(shares.MIN_COUNT + 2):
        scr.on_datagram(invite(call_id=f"g{i}"), flooder)
    scr.on_datagram(invite(call_id="u3"), UAC)
    scr.on_datagram(invite(call_id="g-last"), flooder)
    assert len(scr.udp.out) == shares.MIN_COUNT + 4 and scr.stats["overload_source_dropped"] == 0


def test_behind_a_source_over_its_share_is_dropped_unread_and_the_others_calls_are_judged(monkeypatch):
    # The fairness property on a fake clock (tests/sip_flood_sim.py: the kernel's queue, the rounds, the screen's
    # time per datagram), the same on every host: a flood of 4,000 INVITEs a second from one address at a screen
    # that judges 1,000, beside a caller sending 20. Its figure on real sockets, with the scheduler's share in it,
    # is measured in benchmarks/sip_flood.py.
    on = flood_through(monkeypatch, overload_after=0.25, seconds=9.0)
    off = flood_through(monkeypatch, overload_after=0.0, seconds=9.0)
    for r in (on, off):
        for who in (r["flooder"], r["caller"]):
            assert who["sent"] == who["lost"] + who["dropped_unread"] + who["judged"], r
    caller, flooder = on["caller"], on["flooder"]
    assert flooder["dropped_unread"] > flooder["judged"] > 0, on       # cut back, not cut off
    assert caller["dropped_unread"] == 0, on                           # under its share: always read and judged
    # lost only in the kernel's queue while the screen had not yet been behind for overload_after (20/s x 0.25 s), at
    # the start: the hold is renewed while the flood is shed (it lapsed every HOLD, 2 s, and the queue filled again
    # for overload_after: 12 of 180 lost in 9 s, 3 now)
    assert caller["lost"] <= 20 * 0.25 and caller["judged"] == caller["sent"] - caller["lost"] > 0, on
    # without the shares the flood decides: the caller's calls are lost in the queue as the flood's are
    assert off["flooder"]["dropped_unread"] == off["caller"]["dropped_unread"] == 0, off
    assert off["caller"]["judged"] < caller["judged"] / 2 and off["caller"]["lost"] > caller["sent"] / 2, (on, off)


def test_the_hold_ends_with_the_flood_the_largest_source_of_a_load_the_screen_judges_is_not_held(monkeypatch):
    # The hold is renewed only while the flood is shed as fast as the rest is judged: once the flooder's address
    # goes down to 800 INVITEs a second (a softswitch's own traffic, which a screen judging 1,000 keeps up with),
    # nothing of it is dropped unread after the hold in force when the flood ended (HOLD, and the window it was
    # renewed on), and every call of both is judged from then on.
    r = flood_through(monkeypatch, overload_after=0.25, seconds=3.0, then=(6.0, 800))
    assert r["flooder"]["dropped_unread"] > 1000, r
    assert 0 < r["last_drop"] < 3.0 + shares.HOLD + 2 * shares.WINDOW, r
    assert r["caller"]["dropped_unread"] == 0 and r["caller"]["lost"] <= 20 * 0.25, r


@pytest.mark.parametrize("pump", [True, False], ids=["c-pump", "python-reader"])
def test_a_flood_from_one_address_on_real_sockets_is_cut_back_and_another_addresss_calls_are_judged(tmp_path, pump):
    # End to end, no capacity figure: the flood ran, the shares dropped some of it unread, and some of the other
    # caller's calls got through. The share that gets through is the scheduler's at this load (50-90% on a quiet
    # host, 18-81% at load ~7 on two cores; 2-33% without the shares): benchmarks/sip_flood.py measures it, with
    # and without the shares in one run.
    through, sent, flooded, st = calls_through_a_flood(tmp_path, 0.25, pump)
    assert flooded > 20_000 and st["overload_source_dropped"] > 1000, (flooded, st)     # the flood really ran
    assert 0 < through <= sent, (through, sent, st)


def test_behind_a_reinvite_of_an_answered_call_from_a_source_over_its_share_goes_on_a_made_up_one_does_not():
    """Found by a SIP probe (stop 35): a re-INVITE starts with "INVITE " too, and from a source over its share (a
    softswitch carrying a flood and its own calls' re-INVITEs) it was dropped unread while behind, though in-dialog
    requests are never dropped so. It is read; an INVITE with a made-up To tag is still dropped."""
    from engine.sip_screen.codec import make_response
    pipe = build(with_model=False, persist=False)
    scr = offline_screen(pipe)
    flooder = ("127.0.0.2", 5080)
    scr.on_datagram(invite(call_id="up-1"), flooder)
    ((fwd, _),) = scr.udp.out
    scr.on_datagram(make_response(parse_datagram(fwd), 200, None, to_tag="uas1").to_bytes(), ("127.0.0.1", 5070))
    scr.on_datagram(invite(call_id="u1"), UAC)
    for i in range(shares.MIN_COUNT):
        scr.on_datagram(invite(call_id=f"f{i}"), flooder)
    scr.udp.out.clear()
    scr.udp.behind = time.monotonic() - 0.3                  # behind for 0.3 s (overload_after 0.25)
    to_tag = lambda b, t: b.replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=" + t)
    re_inv = to_tag(invite(call_id="up-1", cseq="2 INVITE"), b"uas1").replace(b"z9hG4bK-", b"z9hG4bK-r-")
    scr.on_datagram(re_inv, flooder)
    ((d, _),) = scr.udp.out
    assert parse_datagram(d).method == "INVITE" and parse_datagram(d).get("cseq") == "2 INVITE"
    assert scr.stats["overload_source_dropped"] == 0
    scr.udp.out.clear()
    scr.on_datagram(to_tag(invite(call_id="f-made-up"), b"x"), flooder)
    assert scr.udp.out == [] and scr.stats["overload_source_dropped"] == 1


def test_in_the_hold_an_invite_over_its_share_is_judged_while_the_socket_is_found_empty():
    """Found by a SIP probe (stop 35): for HOLD (2 s) after the screen was last behind, an INVITE over its source's
    share was dropped even while the socket was found empty, the screen idle: a softswitch offering 8,000 INVITEs a
    second beside a source offering 2 had 8,721 of 48,000 judged in 6 s (64 in some seconds), 37,345 with the
    feature off. In the hold it is dropped only while a round finds the socket not empty."""
    pipe = build(with_model=False, persist=False)
    scr = offline_screen(pipe)
    big, small = ("127.0.0.2", 5080), ("127.0.0.3", 5080)
    scr.on_datagram(invite(call_id="s0"), small)
    for i in range(shares.MIN_COUNT):
        scr.on_datagram(invite(call_id=f"b{i}"), big)
    scr.udp.out.clear()
    scr.udp.behind = time.monotonic() - 0.3                  # behind for 0.3 s: overloaded
    scr.on_datagram(invite(call_id="b-over"), big)
    assert scr.udp.out == [] and scr.stats["overload_source_dropped"] == 1
    scr.udp.behind = 0.0                                     # the last round found the socket empty: time to spare
    scr.on_datagram(invite(call_id="b-spare"), big)
    ((d, _),) = scr.udp.out
    assert parse_datagram(d).get("call-id") == "b-spare" and scr.stats["overload_source_dropped"] == 1


def test_the_python_reader_finds_a_round_after_an_idle_not_behind():
    """Found by review: the Python reader (no C extension) set full_since at a round's 8th datagram and cleared it
    only at the EAGAIN ending a round, after that round's datagrams were handled; after a round that read exactly
    PUMP_BATCH and then an idle, the next round's INVITEs were handled as if the screen had been behind since that
    old round (overload_after long past): a bursty dialler's INVITEs over its share dropped, the screen idle. It
    now reads the round first and says behind from what it read, as the pump's recvmmsg does."""
    import socket
    from engine.sip_screen.transport import PUMP_BATCH, UdpEndpoint
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    seen = []

    class Screen:
        stats = {"internal_errors": 0}

        def on_datagram(self, data, addr):
            seen.append((data, ep.behind_since()))
    ep = UdpEndpoint(Screen(), a)
    try:
        for _ in range(PUMP_BATCH):
            b.send(b"burst")
        ep.readable()                                           # a whole batch; the socket then empty
        assert len(seen) == PUMP_BATCH and seen[-1][1]
        time.sleep(0.3)                                         # idle for longer than overload_after
        b.send(b"later")
        ep.readable()
        assert seen[-1] == (b"later", 0.0)
    finally:
        a.close()
        b.close()
