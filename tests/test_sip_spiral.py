"""An INVITE the screen let through that comes back through it from its next hop with another Request-URI (RFC 3261
§16.3 step 4: a spiral, not a loop -- a softswitch's number-portability routing, `;npdi;rn=`, or its E.164 form of
the same number) is the same call: its verdict is replayed, not judged and counted again. Found by the SIP counting
probe (h_sipcount): the spiral was judged as a new call on the Call-ID and refused AD_CALL_FREQUENCY_CAP by the
call's own count, so every ad call routed that way failed. Only from where the INVITE was sent, with our Via over
the Via it was sent for: a caller adding a Via of ours to its next call is judged as ever."""
import re
from datetime import datetime, timezone

import pytest


from .sip_helpers import AD_CALLER, ad_pipe, CallLines as Lines, invite, offline_screen, sent as _sent, UAC, UAS

SECOND_HOP = ("127.0.0.1", 5090)


@pytest.fixture
def pipe(tmp_path):
    return ad_pipe(tmp_path)


def _screen(pipe, vlog):
    scr = offline_screen(pipe, vlog)
    scr.clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)     # 10:00 in Hanoi: ad hours
    return scr


def _spiral(forwarded: bytes, ruri: bytes) -> bytes:
    """The INVITE as the next hop sends it back: its own Via on top, a new Request-URI routed to a second hop."""
    back = forwarded.replace(b"Via: SIP/2.0/UDP 127.0.0.1:5060",
                             b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-hop1\r\nVia: SIP/2.0/UDP 127.0.0.1:5060", 1)
    return re.sub(rb"^INVITE \S+ SIP/2.0", b"INVITE " + ruri.replace(b"\\", b"\\\\") + b" SIP/2.0", back, count=1)


@pytest.mark.parametrize("ruri", [b"sip:0912345678;npdi;rn=+8491999@127.0.0.1:5090;user=phone",
                                  b"sip:+84912345678@127.0.0.1:5090;user=phone"])
def test_a_spiral_of_a_let_through_call_is_replayed_not_judged_again(pipe, ruri):
    vlog = Lines()
    scr = _screen(pipe, vlog)
    scr.s.next_hop = ""                                          # routed by Request-URI: the spiral to its host
    inv = invite(caller=AD_CALLER, call_id="spiral-1").replace(b"@127.0.0.1 SIP/2.0", b"@127.0.0.1:5070 SIP/2.0", 1)
    scr.on_datagram(inv, UAC)
    ((fwd, dest),) = [(d, a) for d, a in scr.udp.out]
    scr.udp.out.clear()
    assert dest == UAS
    back = _spiral(fwd, ruri)
    for _ in range(2):                                          # the spiral and its retransmission
        scr.on_datagram(back, UAS)
        ((m, dest),) = _sent(scr)
        assert m.method == "INVITE" and dest == SECOND_HOP
    assert scr.stats["screened"] == 1 and len(vlog.calls) == 1 and scr.stats["call_id_reused"] == 0
    scr.on_datagram(invite(caller=AD_CALLER, call_id="spiral-2"), UAC)      # the cap still holds
    ((m, _),) = _sent(scr)
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in m.get("reason")


def test_a_made_up_spiral_from_the_caller_is_judged(pipe):
    vlog = Lines()
    scr = _screen(pipe, vlog)
    inv = invite(caller=AD_CALLER, call_id="spiral-3")
    scr.on_datagram(inv, UAC)
    ((fwd, _),) = [(d, a) for d, a in scr.udp.out]
    scr.udp.out.clear()
    caller_host = ("127.0.0.9", 5080)                           # (the next hop is 127.0.0.1)
    scr.on_datagram(_spiral(fwd, b"sip:+84912345678@127.0.0.1;user=phone"), caller_host)    # not from the next hop
    ((m, _),) = _sent(scr)
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in m.get("reason") and len(vlog.calls) == 2
