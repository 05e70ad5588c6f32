"""Interop with sipp (an independent SIP implementation): UAC -> telfilter screen -> UAS, all on 127.0.0.1.
Allowed calls complete; blocked calls get 603/608 naming the rule; tagged calls reach the UAS
carrying the header (the UAS scenario fails the call if it is missing)."""
import shutil
import socket
import subprocess

import pytest

from benchmarks import ports
from engine.app import build
from engine.lists import ListStore
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings

from .conftest import CONFIG, ROOT

SIPP = shutil.which("sipp")
SC = ROOT / "benchmarks" / "sipp"
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (the README test command installs it)")

TAG_RULE = '''# Test-only rule: tag calls from one caller.
[[rule]]
symbol = "TEST_SUSPICIOUS_CALLER"
description = "test fixture"
applies_to = ["call"]
action = "tag"
score = 3.0
[rule.when]
sender = ["0900000777"]
[[rule.examples.hit]]
kind = "call"
caller = "0900000777"
[[rule.examples.miss]]
kind = "call"
caller = "0900000778"
'''


def free_port():
    return ports.free_port(socket.SOCK_DGRAM)


@pytest.fixture
def screen(tmp_path, request):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    (cfg / "rules" / "90-test.toml").write_text(TAG_RULE)
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    pipe = build(cfg, d)
    uas_port = free_port()
    h = SipHarness(pipe, SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas_port}",
                                      allow_networks=["127.0.0.0/8"],
                                      record_route=getattr(request, "param", False))).start()
    yield h, uas_port, tmp_path
    h.stop()


def run_calls(h, uas_port, tmp, caller, uac_sf, n=3, uas_keys=(), uac_keys=(), uas_sf="uas.xml"):
    uas = subprocess.Popen([SIPP, "-sf", str(SC / uas_sf), "-i", "127.0.0.1", "-ci", "127.0.0.1",
                            "-p", str(uas_port), "-m", str(n),
                            "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_err",
                            "-error_file", str(tmp / "uas_err.log"), *uas_keys],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp) if uas_keys is not None else None
    try:
        uac = subprocess.run([SIPP, f"127.0.0.1:{uas_port}", "-sf", str(SC / uac_sf), "-i", "127.0.0.1",
                              "-ci", "127.0.0.1", "-p", str(free_port()), "-rsa", f"127.0.0.1:{h.port}",
                              "-m", str(n), "-r", "5",
                              "-s", "0912345678", "-key", "caller", caller, "-timeout", "20s", "-timeout_error",
                              "-nostdin", "-trace_err", "-error_file", str(tmp / "uac_err.log"), *uac_keys],
                             capture_output=True, text=True, cwd=tmp, timeout=60)
    finally:
        if uas is not None:
            try:
                uas.wait(timeout=25)
            except subprocess.TimeoutExpired:
                uas.kill()
    err = (tmp / "uac_err.log").read_text() if (tmp / "uac_err.log").exists() else ""
    return uac.returncode, (uas.returncode if uas else None), err + uac.stderr[-2000:]


NO_TAG = []
MUST_TAG = ["-key", "tag_regexp", "symbols=TEST_SUSPICIOUS_CALLER"]


def test_allowed_calls_complete(screen):
    h, port, tmp = screen
    uac, uas, err = run_calls(h, port, tmp, "0901234567", "uac_call.xml", uas_keys=NO_TAG)
    assert uac == 0 and uas == 0, err
    assert h.screen.stats["screened"] == 3 and h.screen.stats["rejected"] == 0
    # the BYEs passed through the screen: each call's duration feeds the short-call criterion
    assert len(h.screen.pipeline.state.calls.recent(84901234567)) == 3


def test_blocked_calls_get_608_naming_the_rule(screen):
    h, port, tmp = screen
    uac, _, err = run_calls(h, port, tmp, "0987000666", "uac_blocked.xml", uas_keys=None,
                            uac_keys=["-key", "symbol", "SENDER_BLACKLISTED"])
    assert uac == 0, err
    assert h.screen.stats["rejected"] == 3


def test_tagged_calls_reach_uas_with_header(screen):
    h, port, tmp = screen
    uac, uas, err = run_calls(h, port, tmp, "0900000777", "uac_call.xml", uas_keys=MUST_TAG, uas_sf="uas_tagged.xml")
    assert uac == 0 and uas == 0, err
    assert h.screen.stats["tagged"] == 3


@pytest.mark.parametrize("screen", [True], indirect=True)
def test_callee_hangs_up_through_a_record_routing_screen(screen):
    """Issue #15: with record_route on, the callee's BYE follows Route / Request-URI back to the
    caller (not the configured next hop); the caller's ACK follows the route set to the callee."""
    h, port, tmp = screen
    uac, uas, err = run_calls(h, port, tmp, "0901234567", "uac_rr_callee_bye.xml", n=20, uas_keys=NO_TAG,
                              uas_sf="uas_rr_bye.xml", uac_keys=["-r", "10"])
    assert uac == 0 and uas == 0, err
    assert h.screen.stats["screened"] == 20


def test_sipps_builtin_uac_aimed_at_the_screen_completes_its_calls(screen):
    """sipp's built-in `uac` sends its ACK and BYE to the address it was given, with the INVITE's Request-URI (the
    screen itself) and no Route. Those go to the next hop, as the INVITE did: before, the screen sent the BYE to
    the Request-URI, itself, and answered it 482 (loop), so every call of `sipp -sn uac SCREEN` failed."""
    h, uas_port, tmp = screen
    uas = subprocess.Popen([SIPP, "-sn", "uas", "-i", "127.0.0.1", "-ci", "127.0.0.1",
                            "-p", str(uas_port), "-m", "3", "-timeout", "20s",
                            "-timeout_error", "-nostdin"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    try:
        uac = subprocess.run([SIPP, "-sn", "uac", f"127.0.0.1:{h.port}", "-i", "127.0.0.1", "-ci", "127.0.0.1",
                              "-p", str(free_port()),
                              "-m", "3", "-r", "5", "-s", "0912345678", "-timeout", "20s", "-timeout_error", "-nostdin",
                              "-trace_err", "-error_file", str(tmp / "uac_err.log")],
                             capture_output=True, text=True, cwd=tmp, timeout=60)
    finally:
        try:
            uas.wait(timeout=25)
        except subprocess.TimeoutExpired:
            uas.kill()
    err = (tmp / "uac_err.log").read_text() if (tmp / "uac_err.log").exists() else ""
    assert uac.returncode == 0 and uas.returncode == 0, err[-2000:]
    assert h.screen.stats["screened"] == 3
