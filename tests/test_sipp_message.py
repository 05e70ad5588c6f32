"""SIP MESSAGE through the screen with sipp as the real peer (tests/sipp/uac_message*.xml, uas_message.xml), all on
127.0.0.1: a spam text is answered 608 naming the rule and not relayed, one verdict line, and its retransmission (the
same branch) gets the same answer without a second line; a clean one reaches the sipp UAS and its 200 comes back end
to end; a 3GPP SMS-SUBMIT body (sent from a socket here: sipp's scenarios are text, an RP-DATA is binary) is judged
on its decoded text, relayed to the sipp UAS when clean, and its 200 comes back; a tagged one reaches the UAS
with the tag header (the UAS scenario fails without it). Each test starts and stops its own
screen and sipp."""
import io
import json
import shutil
import socket
import subprocess
import time

import pytest

from benchmarks import ports
from engine.app import build
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.smpp_proxy.codec.text import gsm_encode, gsm_pack
from engine.verdictlog import VerdictLog

from .conftest import CONFIG, ROOT
from .test_sip_message import TEXT_RULES, message
from .test_sip_sms3gpp import rp_mo
from .test_sipp_ims_flows import free_port

SIPP = shutil.which("sipp")
SC = ROOT / "tests" / "sipp"
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (the README test command installs it)")


@pytest.fixture
def screen(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    (cfg / "rules" / "90-test.toml").write_text(TEXT_RULES)
    pipe = build(cfg, tmp_path / "data", with_model=False, persist=False)
    uas_port, buf = free_port(), io.StringIO()
    h = SipHarness(pipe, SipSettings(listen=f"127.0.0.1:{free_port()}", next_hop=f"127.0.0.1:{uas_port}",
                                     allow_networks=["127.0.0.0/8"]), verdict_log=VerdictLog(buf)).start()
    h.lines = lambda: [json.loads(x) for x in buf.getvalue().splitlines()]
    yield h, uas_port, tmp_path
    h.stop()


def uas(port, tmp, n=1, scenario="uas_message.xml", *keys):
    return subprocess.Popen([SIPP, "-sf", str(SC / scenario), "-i", "127.0.0.1", "-p", str(port),
                             "-m", str(n), "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_err",
                             "-error_file", str(tmp / "uas_err.log"), *keys],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp)


def uac(h, uas_port, tmp, scenario, text, *keys, n=1):
    r = subprocess.run([SIPP, f"127.0.0.1:{uas_port}", "-sf", str(SC / scenario), "-i", "127.0.0.1",
                        "-p", str(free_port()), "-rsa", f"127.0.0.1:{h.port}", "-m", str(n), "-r", "5",
                        "-s", "0912345678", "-key", "caller", "0901234567", "-key", "text", text, *keys,
                        "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_err",
                        "-error_file", str(tmp / "uac_err.log")], capture_output=True, text=True, cwd=tmp, timeout=60)
    err = (tmp / "uac_err.log").read_text() if (tmp / "uac_err.log").exists() else ""
    return r.returncode, err + r.stderr[-2000:]


def finish(p):
    try:
        return p.wait(timeout=25)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


def test_spam_message_is_answered_608_once_judged_and_its_retransmission_too(screen):
    h, uas_port, tmp = screen
    rc, err = uac(h, uas_port, tmp, "uac_message_blocked.xml", "WIN BIG today, reply YES", "-key", "symbol",
                  "TEST_SPAM_TEXT")
    assert rc == 0, err
    lines = h.lines()
    assert [(ln["kind"], ln["action"], ln["pdu"]) for ln in lines] == [("sms", "drop", "SIP MESSAGE text")]
    assert h.screen.stats["messages_replayed"] == 1 and h.screen.stats["messages_judged"] == 1


def test_clean_message_reaches_the_uas_and_is_answered_200_end_to_end(screen):
    h, uas_port, tmp = screen
    p = uas(uas_port, tmp, 3)
    try:
        rc, err = uac(h, uas_port, tmp, "uac_message.xml", "see you at noon", n=3)
    finally:
        code = finish(p)
    assert rc == 0 and code == 0, err
    assert [(ln["action"], ln["sender"], ln["recipient"]) for ln in h.lines()] == \
        [("allow", "0901234567", "0912345678")] * 3


def test_tagged_message_reaches_the_uas_with_the_tag_header(screen):
    h, uas_port, tmp = screen
    p = uas(uas_port, tmp, 2, "uas_message_tagged.xml", "-key", "tag_regexp", "symbols=TEST_PROMO_TEXT")
    try:
        rc, err = uac(h, uas_port, tmp, "uac_message.xml", "promo today only", n=2)
    finally:
        code = finish(p)
    assert rc == 0 and code == 0, err
    assert [ln["action"] for ln in h.lines()] == ["tag", "tag"] and h.screen.stats["messages_tagged"] == 2


def test_3gpp_body_judged_on_its_decoded_text(screen):
    h, uas_port, tmp = screen
    p = uas(uas_port, tmp, 1)
    deadline = time.monotonic() + 10
    while ports.bindable(uas_port, socket.SOCK_DGRAM) and time.monotonic() < deadline:
        time.sleep(0.05)                                                # until sipp listens
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.1", free_port()))
    cli.settimeout(5)
    try:
        def submit(text, n):
            tpdu = bytes.fromhex("0100" "0aa19021436587" "0000") + bytes([len(text)]) + gsm_pack(gsm_encode(text))
            port = cli.getsockname()[1]
            m = message(rp_mo(tpdu), "application/vnd.3gpp.sms", call_id=f"g{n}@127.0.0.1", branch=f"z9hG4bK-g{n}")
            cli.sendto(m.replace(b"127.0.0.1:5080", b"127.0.0.1:%d" % port), ("127.0.0.1", h.port))
            while True:
                r = parse_datagram(cli.recv(65535))
                if r.status >= 200:
                    return r
        assert submit("WIN BIG now", 1).status == 608                   # judged on the TPDU's text: not relayed
        assert submit("see you at noon", 2).status == 200               # relayed to the sipp UAS, its 200 back
    finally:
        cli.close()
        code = finish(p)
    assert code == 0
    assert [(ln["action"], ln["pdu"], ln["recipient"]) for ln in h.lines()] == \
        [("drop", "SIP MESSAGE SMS-SUBMIT", "0912345678"), ("allow", "SIP MESSAGE SMS-SUBMIT", "0912345678")]
