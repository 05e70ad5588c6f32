"""An ICMP error about an ad call's INVITE that comes after the caller's retransmission was forwarded (a next hop on
the local network failing ARP is reported ~3 s later, a far one after a round trip past Timer A's 500 ms): the
retransmission, forwarded on the same branch with no counts of its own, overwrote the watch entry, so the 503 gave
nothing back -- the advertiser's one call a day used up by a call that never rang."""
from tests.test_sip_call_identity import AD, UAC, _invite, _screen, _sent


def test_the_503_for_an_unreachable_hop_gives_back_the_counts_after_a_retransmission(tmp_path):
    scr, _, _ = _screen(tmp_path)
    inv = _invite(b"0912999999", AD, b"icmp-rt", b"z9hG4bK-rt")
    scr.on_datagram(inv, UAC)
    out = list(scr.udp.out)
    (fwd, dest), = _sent(scr)
    assert fwd.method == "INVITE"
    scr.on_datagram(inv, UAC)                               # Timer A: the caller's retransmission, replayed
    (again, _), = _sent(scr)
    assert again.method == "INVITE" and scr.stats["replayed"] == 1
    scr.on_icmp_error(out[0][0], dest, 111)                 # ECONNREFUSED about the first copy
    (m, _), = _sent(scr)
    assert m.status == 503
    assert scr.stats["uncounted_unsent"] == 1
    scr.on_datagram(_invite(b"0912999999", AD, b"icmp-rt2", b"z9hG4bK-rt2"), UAC)   # the advertiser's retry
    (m, _), = _sent(scr)
    assert m.method == "INVITE", (m.status, m.get("reason"))
