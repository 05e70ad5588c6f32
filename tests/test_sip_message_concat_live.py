"""Concatenated SMS over IMS through a running screen on 127.0.0.1 (SipHarness: real UDP sockets, the event loop, the
once-a-second sweep): a held part's UDP retransmissions (RFC 3261 Timer E) are absorbed and it is forwarded once,
judged by the sweep at message_concat_timeout when its other part never comes, its 200 relayed back end to end; a
spam text split in two is answered 608 twice and nothing reaches the next hop. A Python UAC and UAS (the bodies are
binary: sipp's scenarios are text)."""
import io
import json
import shutil
import socket
import time

import pytest

from engine.app import build
from engine.sip_screen.codec import make_response, parse_datagram
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.verdictlog import VerdictLog

from .conftest import CONFIG
from .test_sip_message import TEXT_RULES
from .test_sip_message_concat import mpart
from .test_sipp_ims_flows import free_port


@pytest.fixture
def live(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    (cfg / "rules" / "90-test.toml").write_text(TEXT_RULES)
    pipe = build(cfg, tmp_path / "data", with_model=False, persist=False)
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", free_port()))
    uas.settimeout(0.2)
    uac = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uac.bind(("127.0.0.1", free_port()))
    uac.settimeout(0.2)
    buf = io.StringIO()
    h = SipHarness(pipe, SipSettings(listen=f"127.0.0.1:{free_port()}", next_hop=f"127.0.0.1:{uas.getsockname()[1]}",
                                     allow_networks=["127.0.0.0/8"], message_concat_timeout=1.0),
                   verdict_log=VerdictLog(buf)).start()
    h.lines = lambda: [json.loads(x) for x in buf.getvalue().splitlines()]
    try:
        yield h, uac, uas
    finally:
        h.stop()
        uac.close()
        uas.close()


def _send(h, uac, datagram):
    port = uac.getsockname()[1]
    uac.sendto(datagram.replace(b"127.0.0.1:5080", b"127.0.0.1:%d" % port), ("127.0.0.1", h.port))


def _drain(sock, seconds):
    """What `sock` received in `seconds`, parsed."""
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data, addr = sock.recvfrom(65535)
        except socket.timeout:
            continue
        out.append((parse_datagram(data), addr))
    return out


def test_a_held_part_retransmitted_is_forwarded_once_at_the_timeout_and_its_200_comes_back(live):
    h, uac, uas = live
    part1 = mpart("see you ", 1, 2, ref=41)
    t0 = time.monotonic()
    for _ in range(3):                                  # the first copy, then Timer E's retransmissions
        _send(h, uac, part1)
        time.sleep(0.3)
    got = _drain(uas, 2.5)                              # judged by the sweep after message_concat_timeout (1 s)
    assert [r.method for r, _ in got] == ["MESSAGE"], got
    assert got[0][0].body == mpart("see you ", 1, 2, ref=41).split(b"\r\n\r\n", 1)[1]
    uas.sendto(make_response(got[0][0], 200, "OK", "uas1").to_bytes(), got[0][1])     # the UAS's 200, relayed back
    answers = [r.status for r, _ in _drain(uac, 1.0)]
    assert answers == [200]
    assert time.monotonic() - t0 >= 1.0
    (ln,) = h.lines()
    assert (ln["pdu"], ln["action"]) == ("SIP MESSAGE SMS-SUBMIT x1/2", "allow") and ln["concat"]
    assert h.screen.stats["messages_replayed"] == 2 and h.screen.stats["message_concat_incomplete"] == 1


def test_a_spam_text_in_two_parts_is_answered_608_twice_and_nothing_is_forwarded(live):
    h, uac, uas = live
    _send(h, uac, mpart("WIN ", 1, 2, ref=42))
    _send(h, uac, mpart("BIG now", 2, 2, ref=42))
    answers = sorted((r.status, r.get("call-id")) for r, _ in _drain(uac, 1.0))
    assert answers == [(608, "p42-1-0901234567@x"), (608, "p42-2-0901234567@x")]
    assert _drain(uas, 0.5) == []
    assert [(ln["pdu"], ln["action"]) for ln in h.lines()] == [("SIP MESSAGE SMS-SUBMIT x2/2", "drop")]
