"""TELFILTER_TEST_PORTS=LOW-HIGH keeps the loopback ports tests and benchmarks listen on inside a range of their
own (runs sharing a machine kept apart): they were drawn from anywhere below the kernel's ephemeral range, whatever
else ran there. A value not of that form is refused with a message saying what is wanted. And
`engine.sip_screen.instrbench --port-base PORT` puts its sipp capture on PORT and PORT+1 (the kernel's before)."""
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from benchmarks import ports
from engine.sip_screen import instrbench

from .conftest import ROOT


def _free_run(n: int) -> int:
    """The first of `n` consecutive loopback ports free for TCP and UDP now, from a random start (fixed ports failed
    when another test or run held one: the very sharing the range is for)."""
    import random
    start = random.randrange(20000, 30000)
    for base in range(start, start + 2000):
        if all(ports.bindable(p, socket.SOCK_STREAM) and ports.bindable(p, socket.SOCK_DGRAM)
               for p in range(base, base + n)):
            return base
    pytest.skip(f"no {n} consecutive free loopback ports found")


@pytest.mark.parametrize("value, want", [("25000-25999", (25000, 25999)), (" 25000-25000 ", (25000, 25000)),
                                         ("1024-65535", (1024, 65535))])
def test_a_range_is_read_with_both_ends_included(value, want):
    assert ports.port_range(value) == want


@pytest.mark.parametrize("value", ["", "25000", "25000-", "-25999", "a-b", "25999-25000", "80-90", "25000-70000",
                                   "25000:25999", "25000-25999-26000", "0x6000-0x7000"])
def test_a_range_not_of_the_form_low_high_is_refused_saying_what_is_wanted(value):
    with pytest.raises(ValueError, match=r"TELFILTER_TEST_PORTS=.*: give LOW-HIGH, two port numbers from 1024 to "
                                         r"65535 with LOW no greater than HIGH, e.g. 25000-25999"):
        ports.port_range(value)


def test_ports_drawn_lie_in_the_range_given_and_are_free(monkeypatch):
    b = _free_run(20)
    monkeypatch.setenv(ports.ENV, f"{b}-{b + 49}")
    monkeypatch.setattr(ports, "_given", set())
    got = [ports.free_port(socket.SOCK_STREAM, socket.SOCK_DGRAM) for _ in range(20)]
    assert all(b <= p <= b + 49 for p in got) and len(set(got)) == 20
    assert all(ports.bindable(p, socket.SOCK_STREAM) and ports.bindable(p, socket.SOCK_DGRAM) for p in got)


def test_a_range_used_up_is_said_and_no_port_is_taken_from_outside_it(monkeypatch):
    b = _free_run(3)
    monkeypatch.setenv(ports.ENV, f"{b}-{b + 2}")
    monkeypatch.setattr(ports, "_given", set())
    busy = socket.socket()
    busy.bind(("127.0.0.1", b + 1))       # one of the three taken by another program
    try:
        assert sorted(ports.free_port() for _ in range(2)) == [b, b + 2]
        with pytest.raises(RuntimeError, match=f"no loopback port free for SOCK_STREAM in TELFILTER_TEST_PORTS={b}-{b + 2}"):
            ports.free_port()
    finally:
        busy.close()


def test_a_bad_range_stops_the_first_draw_and_the_suite_before_it_measures(monkeypatch):
    monkeypatch.setenv(ports.ENV, "25000")
    with pytest.raises(ValueError, match="TELFILTER_TEST_PORTS='25000': give LOW-HIGH"):
        ports.free_port()
    p = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", os.devnull], cwd=ROOT,
                       env={**os.environ, ports.ENV: "25999-25000"}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "python -m benchmarks: error: TELFILTER_TEST_PORTS='25999-25000': give LOW-HIGH" \
        in p.stderr, p.stderr
    h = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert "TELFILTER_TEST_PORTS=LOW-HIGH" in h.stdout


@pytest.mark.parametrize("value", ["80", "65535", "x", ""])
def test_instrbench_port_base_is_a_port_with_one_after_it(value, capsys):
    with pytest.raises(SystemExit) as e:
        instrbench.main(["--port-base", value])
    assert e.value.code == 2
    assert f"argument --port-base: {value!r}: a port from 1024 to 65534" in capsys.readouterr().err
    assert instrbench.port_base("65534") == 65534


def test_instrbench_captures_its_call_on_the_port_base_given():
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed")
    base = _free_run(2)
    cap = instrbench.capture("", base)
    assert cap["next_hop"] == f"127.0.0.1:{base}"
    senders = {port for _, _, port in cap["messages"]}
    assert senders == {base, base + 1}, json.dumps(cap)[:500]        # the UAS's answers, the UAC's requests
