"""Fixtures and helpers of the test_sip_transport_faults_* files (transport faults of the SIP screen, second
probe): the screen's pipeline, UDP sockets and a next hop's TCP listener on loopback, the ways a datagram reaches
the screen (the Python paths or the C pump), what the screen sent, and a UAC's CANCEL and ACK of an INVITE."""
import re
import socket

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.transport import Pump, make_pump


WAYS = ["python", "pump"]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    d = tmp_path_factory.mktemp("sipfaults")
    ListStore(d).import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    return build(data_dir=d, with_model=False, persist=False)


def udp_sock(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(2)
    return s


def tcp_hop(rcvbuf=None):
    """A next hop's listening TCP socket on loopback (a small receive buffer: a slow or stalled reader)."""
    hop = socket.socket()
    if rcvbuf:
        hop.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    hop.bind(("127.0.0.1", 0))
    hop.listen(1)
    hop.settimeout(3)
    return hop


def feeder(scr, way):
    """How a datagram reaches the screen: the Python paths, or the C pump as `serve` runs it."""
    if way == "pump":
        if Pump is None:
            pytest.skip("C extension not built")
        def sendto(data, addr):                                 # what the pump relays itself: UDP
            scr.sent_transports.append("UDP")
            scr.udp.sendto(data, addr)
        return make_pump(scr, -1, sendto).handle
    return scr.on_datagram


def sent(scr):
    """What the screen sent since the last look: (message, address, transport)."""
    out = [(parse_datagram(d), a, t) for (d, a), t in zip(scr.udp.out, scr.sent_transports)]
    scr.udp.out.clear()
    scr.sent_transports.clear()
    return out


def branch_of(via: str) -> str:
    return re.search(r";branch=([^;]+)", via).group(1)


def cancel_of(inv: bytes) -> bytes:
    """The UAC's CANCEL of `inv` (RFC 3261 §9.1: its Request-URI, Call-ID, From, To, CSeq number, top Via)."""
    head = inv.split(b"\r\n\r\n", 1)[0]
    keep = [ln for ln in head.split(b"\r\n")[1:] if ln.split(b":", 1)[0].lower() in
            (b"via", b"from", b"to", b"call-id", b"max-forwards")]
    vias = [ln for ln in keep if ln.lower().startswith(b"via")]
    rest = [ln for ln in keep if not ln.lower().startswith(b"via")]
    return b"\r\n".join([head.split(b"\r\n", 1)[0].replace(b"INVITE ", b"CANCEL ", 1), vias[0], *rest,
                         b"CSeq: 1 CANCEL", b"Content-Length: 0"]) + b"\r\n\r\n"


def ack_of(inv: bytes, to_tag: str) -> bytes:
    """The UAC's ACK of a non-2xx final to `inv` (§17.1.1.3: the INVITE's top Via, the response's To)."""
    return cancel_of(inv).replace(b"CANCEL ", b"ACK ", 1).replace(b"1 CANCEL", b"1 ACK").replace(
        b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=" + to_tag.encode())


class FakeTransport:
    def __init__(self):
        self.reading, self.out = True, []

    def is_closing(self):
        return False

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True

    def get_write_buffer_size(self):
        return 0

    def write(self, data):
        self.out.append(data)
