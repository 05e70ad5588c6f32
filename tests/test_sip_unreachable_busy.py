"""An ICMP error about an INVITE forwarded while the screen is behind (every read returns a whole batch) is acted on
within a bounded time (engine/sip_screen/unreachable.py ERRQUEUE_BUSY_S), not at the first idle moment. Before, the
error queue was read only when a read found no datagram; the errno the error also reports was taken by the next
send (a 483 to the flood, made again: forwarding._udp_send, _sipaddr.h pump_send), so under a sustained flood the
error waited in the queue until the flood ended, and an INVITE more than WATCH_S seconds old by then was never
answered: its caller waited for its Timer B (32 s). Real UDP sockets on 127.0.0.1 and a flood from another
process; nothing here asserts a duration (WATCH_S is made 1 s: the answer must come while the flood goes on)."""
import socket
import subprocess
import sys
import time

import pytest

from engine.app import build
from engine.sip_screen import unreachable
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.sip_screen.transport import Pump

from .sip_helpers import invite
from .test_sip_unreachable_hop import _answer, _dead_port, _udp

# OPTIONS with Max-Forwards 0, each one parsed in full and answered 483: a send on the screen's socket to the
# flood's own, which reads the answers to keep WINDOW of them in the screen's queue -- never empty, never full (a
# full queue drops what comes: the INVITEs too)
FLOOD = """
import socket, sys, time
port, until, window = int(sys.argv[1]), time.monotonic() + float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("127.0.0.1", 0))
s.settimeout(0.2)
me = s.getsockname()[1]
msg = (f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\\r\\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-fl;rport\\r\\n"
       "Max-Forwards: 0\\r\\nFrom: <sip:f@127.0.0.1>;tag=f\\r\\nTo: <sip:ping@127.0.0.1>\\r\\nCall-ID: flood\\r\\n"
       "CSeq: 1 OPTIONS\\r\\nContent-Length: 0\\r\\n\\r\\n").encode()
while time.monotonic() < until:
    for _ in range(window):
        s.sendto(msg, ("127.0.0.1", port))
    try:
        while time.monotonic() < until:
            s.recv(4096)
            s.sendto(msg, ("127.0.0.1", port))
    except socket.timeout:
        pass
"""
WINDOW = 2048                   # OPTIONS in the screen's queue at most (~80 ms of work: a flood descheduled that long
                                # would let the screen find its queue empty); fewer where its receive buffer is smaller
INVITES = 5                     # each has a 1 in PUMP_BATCH chance to be the last of its round, and then the next
                                # read, failing with its errno, had the queue read before too: five make that rare


@pytest.fixture(params=["pump", "python"])
def screen(request, tmp_path, monkeypatch):
    """A screen whose next hop is a dead port (overload shedding off: every INVITE is judged and forwarded)."""
    if request.param == "pump" and Pump is None:
        pytest.skip("C extension not built")
    monkeypatch.setattr(unreachable, "WATCH_S", 1.0)
    h = SipHarness(build(data_dir=tmp_path, with_model=False, persist=False),
                   SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{_dead_port()}", overload_after=0,
                               allow_networks=["127.0.0.0/8"])).start()
    if request.param == "python":
        def python_reader():
            h.screen.fast_path = False
            h.screen.udp.refresh()
        h.run(python_reader)
    try:
        yield h
    finally:
        h.stop()


def test_an_icmp_error_while_the_screen_is_behind_answers_its_invite(screen):
    """Each INVITE is answered while the flood goes on (before, at the flood's end, after WATCH_S: never)."""
    room = screen.screen.udp.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2048     # (transport.py's sizing)
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(screen.port), "20", str(min(WINDOW, room))])
    uac = _udp(0.2)
    try:
        deadline, udp = time.monotonic() + 5, screen.screen.udp
        while not udp.behind_since() or time.monotonic() - udp.behind_since() < 0.3:     # every round a full batch
            if time.monotonic() > deadline:
                pytest.skip("the flood could not keep the screen behind on this host")
            time.sleep(0.02)
        for k in range(INVITES):
            uac.sendto(invite(call_id=f"busy-{k}", via_port=uac.getsockname()[1]), ("127.0.0.1", screen.port))
            time.sleep(0.05)
        answers, until = [], time.monotonic() + 1.5 * unreachable.WATCH_S
        while len(answers) < INVITES and time.monotonic() < until:
            a = _answer(uac)
            if a:
                answers.append(a)
        assert flood.poll() is None                         # (answered during the flood)
    finally:
        flood.kill()
        flood.wait()
        uac.close()
    assert sorted(a[:11] for a in answers) == [b"SIP/2.0 503"] * INVITES, [a[:80] for a in answers]
    assert all(b"unreachable" in a for a in answers)
    assert screen.screen.stats["next_hop_unreachable"] == INVITES
