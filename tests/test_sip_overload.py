"""Overload: one peer flooding INVITEs must not decide whose calls get through. While the screen is behind (its UDP
socket not found empty for `overload_after` seconds), INVITEs from a source over its fair share of the traffic are
dropped before they are parsed (shares.py); the other sources' calls are read and judged. Found at stop 35: a
caller sending 20 calls a second from its own address during a flood from another got ~5% of them judged."""
import subprocess
import sys
import time

import pytest

from engine.app import build
from engine.sip_screen import shares
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.server import SipScreen, SipSettings
from engine.sip_screen.shares import SourceShares
from engine.smpp_proxy.harness import ProxyHarness

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


FLOOD = r"""
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
extra = "".join("X-Filler-%d: %s\r\n" % (i, "f" * 40) for i in range(20))
end, n = time.time() + seconds, 0
while time.time() < end:
    msg = ("INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:9;branch=z9hG4bKf%d\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=a\r\nTo: <sip:0912345678@127.0.0.1>\r\n"
           "Call-ID: flood-%d\r\nCSeq: 1 INVITE\r\n" % (n, n) + extra + "Content-Length: 0\r\n\r\n").encode()
    try:
        s.sendto(msg, ("127.0.0.1", port))
    except OSError:
        pass
    n += 1
print(n)
"""


CALLER = r"""
import socket, sys, time
port, seconds, rate = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.3", 0))
me = s.getsockname()[1]
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    msg = ("INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:%d;branch=z9hG4bKm%d\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:0901234568@127.0.0.1>;tag=b\r\nTo: <sip:0912345678@127.0.0.1>\r\n"
           "Call-ID: mine-%d\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n" % (me, n, n)).encode()
    s.sendto(msg, ("127.0.0.1", port))
    n += 1
    time.sleep(1.0 / rate)
print(n)
"""

SINK = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(0.5)
print(s.getsockname()[1], flush=True)
end, mine = time.monotonic() + float(sys.argv[1]), set()
while time.monotonic() < end:
    try:
        d = s.recv(65535)
    except socket.timeout:
        continue
    if b"Call-ID: mine-" in d:
        mine.add(d.split(b"Call-ID: mine-")[1].split(b"\r\n")[0])
print(len(mine))
"""


def calls_through_a_flood(tmp_path, overload_after, pump=True, seconds=3.0, rate=20):
    """A flood of INVITEs from 127.0.0.2 and `rate` calls a second from 127.0.0.3 for `seconds` (each sent once:
    no retransmission): how many of the latter the screen judged and forwarded to the next hop."""
    pipe = build(data_dir=tmp_path / "data", with_model=False)
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(seconds + 4.0)], stdout=subprocess.PIPE, text=True)
    try:
        sink_port = int(sink.stdout.readline())
        with ProxyHarness(pipe) as h:
            screen = SipScreen(pipe, SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{sink_port}",
                                                 allow_networks=["127.0.0.0/8"], overload_after=overload_after))
            screen.fast_path = pump
            h.call(screen.start())
            try:
                flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(screen.port), str(seconds + 1.0)],
                                         stdout=subprocess.PIPE)
                time.sleep(0.7)                                             # the flood is under way
                caller = subprocess.run([sys.executable, "-c", CALLER, str(screen.port), str(seconds), str(rate)],
                                        capture_output=True, text=True, timeout=60)
                flooded = int(flood.communicate(timeout=30)[0] or 0)
            finally:
                h.call(screen.stop())
        through = int(sink.communicate(timeout=30)[0])
    finally:
        sink.kill()
    return through, int(caller.stdout), flooded, dict(screen.stats)


@pytest.mark.parametrize("pump", [True, False], ids=["c-pump", "python-reader"])
def test_a_flood_from_one_address_leaves_another_addresss_calls_judged(tmp_path, pump):
    # (without the shares: ~20%; what is lost, the kernel dropped. On a quiet host 50-90% get through; 0.35 leaves
    # room for a host loaded by other work, where 40-43% were seen, and still fails without the shares. On a host
    # whose two cores other work also takes, one run in many let 30% through (stop 46's CI): a second run decides,
    # still failing without the shares. At load ~7 on two cores (busy loops and another test run beside it) a run
    # let 18-81% through with the shares (one in three below the bar, three in a row once), 2-15% without: what the
    # kernel drops while the screen waits for a core is the scheduler's doing, not the screen's. So up to three
    # runs. Without the shares 18 runs, loaded or not, let 2-33% through: none reached the bar, though a quiet host
    # came near it; the ratio is a capacity figure, which benchmarks/ would measure better.)
    runs = []
    for attempt in range(3):
        through, sent, flooded, st = calls_through_a_flood(tmp_path / f"run{attempt}", 0.25, pump)
        assert flooded > 20_000 and st["overload_source_dropped"] > 1000, (flooded, st)    # the flood really ran
        runs.append((through, sent, st))
        if through >= 0.35 * sent:
            return
    pytest.fail(f"fewer than 35% of a caller's INVITEs judged through a flood, three times: {runs}")


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
