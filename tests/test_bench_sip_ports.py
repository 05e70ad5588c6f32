"""The SIP step's ports come from benchmarks.ports like every other benchmark's: below the kernel's ephemeral range
(a port the kernel hands out for port 0 may be given to any outgoing connection before the server binds it), and
the element's port free for UDP and TCP (serve's --sip-listen binds both, RFC 3261 §18). sip_bench bound UDP port 0
and used what the kernel gave (found by the bench probe)."""
import os
import socket

from benchmarks import ports, sip_bench


def test_sip_step_ports_are_drawn_below_the_ephemeral_range_and_free_for_udp_and_tcp(monkeypatch):
    # (without TELFILTER_TEST_PORTS: the test asserted this whatever the variable said, and failed under a range
    # above the ephemeral range's low end, e.g. 44000-44999 with Linux's 32768-60999)
    monkeypatch.delenv(ports.ENV, raising=False)
    low = ports._ephemeral_low()
    for _ in range(20):
        p = sip_bench._free_sip_port()
        assert p < low
        assert ports.bindable(p, socket.SOCK_STREAM) and ports.bindable(p, socket.SOCK_DGRAM)
        assert sip_bench._free_udp() < low


def test_sip_step_ports_keep_to_telfilter_test_ports_wherever_that_range_is(monkeypatch):
    # the range this run was given (else one of its own), even one above the ephemeral range's low end: ports.py
    # takes nothing from outside it
    lo, hi = ports.port_range(os.environ.get(ports.ENV, "").strip() or "44000-44999")
    monkeypatch.setenv(ports.ENV, f"{lo}-{hi}")
    for _ in range(min(20, (hi - lo + 1) // 2)):
        p = sip_bench._free_sip_port()
        assert lo <= p <= hi
        assert ports.bindable(p, socket.SOCK_STREAM) and ports.bindable(p, socket.SOCK_DGRAM)
        assert lo <= sip_bench._free_udp() <= hi


def test_sip_step_leaves_no_temporary_directory(tmp_path, monkeypatch):
    # every run left /tmp/tf-sipbench-* behind (and the SMPP step ~20 MB of lists in /tmp/tf-bench-*)
    import shutil
    import tempfile

    import pytest
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = sip_bench.run([], 1)
    assert out["steps"] == []
    assert list(tmp_path.iterdir()) == []
