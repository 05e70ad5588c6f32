"""The SIP step's ports come from benchmarks.ports like every other benchmark's: below the kernel's ephemeral range
(a port the kernel hands out for port 0 may be given to any outgoing connection before the server binds it), and
the element's port free for UDP and TCP (serve's --sip-listen binds both, RFC 3261 §18). sip_bench bound UDP port 0
and used what the kernel gave (found by the bench probe)."""
import socket

from benchmarks import ports, sip_bench


def test_sip_step_ports_are_drawn_below_the_ephemeral_range_and_free_for_udp_and_tcp():
    low = ports._ephemeral_low()
    for _ in range(20):
        p = sip_bench._free_sip_port()
        assert p < low
        assert ports.bindable(p, socket.SOCK_STREAM) and ports.bindable(p, socket.SOCK_DGRAM)
        assert sip_bench._free_udp() < low
