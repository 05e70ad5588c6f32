"""Interop with Kamailio (an independent SIP proxy) on either side of the telfilter screen, all on 127.0.0.1.

In front:  sipp UAC -> Kamailio -> screen -> sipp UAS
Behind:    sipp UAC -> screen -> Kamailio -> sipp UAS

Kamailio runs from a config written to tmp. The stateless config is core-only (`forward()` for every request;
replies go back by their Via, which is what a stateless proxy does), so it needs no module path. The
record-routing config loads tm + rr + sl + pv and follows `loose_route()` for in-dialog requests, which is the
configuration that exposed the BYE-to-next-hop fault of issue #15 when Kamailio sat behind the screen.
Allowed calls must complete end to end (INVITE / 200 / ACK / BYE / 200, counted by sipp's exit status), and a
blacklisted caller must get the screen's 608 naming the rule through Kamailio."""
import shutil
import socket
import subprocess
import time

import pytest

from benchmarks import ports
from engine.app import build
from engine.lists import ListStore
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings

from .conftest import CONFIG, ROOT

SIPP = shutil.which("sipp")
KAMAILIO = shutil.which("kamailio") or shutil.which("/usr/sbin/kamailio")
SC = ROOT / "benchmarks" / "sipp"
pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (the README test command installs it)"),
    pytest.mark.skipif(KAMAILIO is None, reason="kamailio not installed (apt-get install -y kamailio)"),
]

ALLOWED, BLOCKED = "0901234567", "0987000666"

STATELESS_CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=1
disable_tcp=yes
log_stderror=yes
debug=1
request_route {{
    forward("127.0.0.1", {to});
    exit;
}}
"""

# Record-routing, transaction-stateful proxy: the initial INVITE is record-routed and relayed by tm to the
# fixed next hop; in-dialog requests (ACK, BYE in either direction) follow the route set via loose_route(),
# i.e. the Request-URI / Route the endpoints carry, never the fixed next hop.
RR_CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=1
disable_tcp=yes
log_stderror=yes
debug=1
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "siputils.so"
loadmodule "textops.so"
modparam("rr", "enable_full_lr", 1)
request_route {{
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            t_check_trans();
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("INVITE")) record_route();
    $du = "sip:127.0.0.1:{to}";
    t_relay();
    exit;
}}
"""


def free_port():
    return ports.free_port(socket.SOCK_DGRAM)


def udp_bound(port) -> bool:
    return not ports.bindable(port, socket.SOCK_DGRAM)


class Kamailio:
    """Kamailio in the foreground (-DD -E) on 127.0.0.1:port forwarding to 127.0.0.1:to."""

    def __init__(self, tmp, to, template=STATELESS_CFG):
        self.port, self.dir = self._free_port(), tmp / "kamailio"
        self.dir.mkdir(exist_ok=True)
        cfg = self.dir / "kamailio.cfg"
        cfg.write_text(self._config(template.format(port=self.port, to=to)))
        self.log = self.dir / "kamailio.log"
        self.proc = subprocess.Popen([KAMAILIO, "-f", str(cfg), "-DD", "-E", "-m", "32", "-M", "4",
                                      "-w", str(self.dir), "-Y", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), cwd=self.dir)
        end = time.time() + 15
        while not self._bound():
            if self.proc.poll() is not None or time.time() > end:
                self.stop()
                raise AssertionError(f"kamailio did not start (status {self.proc.returncode}):\n{self.tail()}")
            time.sleep(0.05)

    # (Kamailio6, tests/test_sip_ipv6.py, on [::1])
    def _free_port(self) -> int:
        return free_port()

    def _config(self, text: str) -> str:
        return text

    def _bound(self) -> bool:
        return udp_bound(self.port)

    def tail(self):
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_screen(tmp, next_hop, record_route=False):
    cfg = tmp / "config"
    shutil.copytree(CONFIG, cfg)
    d = tmp / "data"
    ListStore(d).import_csv("blacklist", f"kind,value\nnumber,{BLOCKED}\n".encode())
    return SipHarness(build(cfg, d), SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{next_hop}",
                                                 allow_networks=["127.0.0.0/8"], record_route=record_route)).start()


def sipp_calls(tmp, entry, uas_port, caller, uac_sf, n, uas_sf="uas.xml", uac_keys=(), run_uas=True):
    """n calls from a sipp UAC sent to `entry` (outbound proxy), addressed to the sipp UAS at uas_port.
    Returns (uac status, uas status, error text); 0 means every call followed its scenario to the end."""
    uas = subprocess.Popen([SIPP, "-sf", str(SC / uas_sf), "-i", "127.0.0.1", "-ci", "127.0.0.1",
                            "-p", str(uas_port), "-m", str(n),
                            "-timeout", "30s", "-timeout_error", "-nostdin", "-trace_err",
                            "-error_file", str(tmp / "uas_err.log")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp) if run_uas else None
    try:
        uac = subprocess.run([SIPP, f"127.0.0.1:{uas_port}", "-sf", str(SC / uac_sf), "-i", "127.0.0.1",
                              "-ci", "127.0.0.1", "-p", str(free_port()), "-rsa", f"127.0.0.1:{entry}",
                              "-m", str(n), "-r", "5",
                              "-s", "0912345678", "-key", "caller", caller, "-timeout", "30s", "-timeout_error",
                              "-nostdin", "-trace_err", "-error_file", str(tmp / "uac_err.log"), *uac_keys],
                             capture_output=True, text=True, cwd=tmp, timeout=90)
    finally:
        uas_done(uas, 35)
    return uac.returncode, (uas.returncode if uas else None), sipp_errors(tmp, uac)


def uas_done(uas, timeout: float) -> None:
    """A sipp UAS process (or None) waited for, killed past `timeout` (it never outlives its test)."""
    if uas is None:
        return
    try:
        uas.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        uas.kill()
        uas.wait()


def sipp_errors(tmp, uac) -> str:
    """What a sipp run said went wrong: the ends of both error files in `tmp` and of the UAC's stderr."""
    err = "".join((tmp / f).read_text(errors="replace")[-3000:] for f in ("uac_err.log", "uas_err.log")
                  if (tmp / f).exists())
    return err + uac.stderr[-2000:]


@pytest.fixture
def front(tmp_path):
    """sipp UAC -> Kamailio (stateless) -> screen -> sipp UAS."""
    uas_port = free_port()
    h = make_screen(tmp_path, uas_port)
    try:
        k = Kamailio(tmp_path, h.port)
    except BaseException:
        h.stop()
        raise
    yield h, k, uas_port, tmp_path
    k.stop()
    h.stop()


@pytest.fixture
def behind(tmp_path, request):
    """sipp UAC -> screen -> Kamailio -> sipp UAS (stateless, or tm+rr with the screen record-routing)."""
    rr = getattr(request, "param", False)
    uas_port = free_port()
    k = Kamailio(tmp_path, uas_port, RR_CFG if rr else STATELESS_CFG)
    try:
        h = make_screen(tmp_path, k.port, record_route=rr)
    except BaseException:
        k.stop()
        raise
    yield h, k, uas_port, tmp_path
    h.stop()
    k.stop()


def test_kamailio_in_front_allowed_calls_complete(front):
    h, k, uas_port, tmp = front
    uac, uas, err = sipp_calls(tmp, k.port, uas_port, ALLOWED, "uac_call.xml", n=5)
    assert uac == 0 and uas == 0, err + k.tail()
    assert h.screen.stats["screened"] == 5 and h.screen.stats["rejected"] == 0


def test_kamailio_in_front_blacklisted_caller_gets_608(front):
    h, k, uas_port, tmp = front
    uac, _, err = sipp_calls(tmp, k.port, uas_port, BLOCKED, "uac_blocked.xml", n=3, run_uas=False,
                             uac_keys=["-key", "symbol", "SENDER_BLACKLISTED"])
    assert uac == 0, err + k.tail()
    assert h.screen.stats["rejected"] == 3


def test_kamailio_behind_allowed_calls_complete(behind):
    h, k, uas_port, tmp = behind
    uac, uas, err = sipp_calls(tmp, h.port, uas_port, ALLOWED, "uac_call.xml", n=5)
    assert uac == 0 and uas == 0, err + k.tail()
    assert h.screen.stats["screened"] == 5 and h.screen.stats["rejected"] == 0


def test_kamailio_behind_blacklisted_caller_gets_608(behind):
    h, k, uas_port, tmp = behind
    uac, _, err = sipp_calls(tmp, h.port, uas_port, BLOCKED, "uac_blocked.xml", n=3, run_uas=False,
                             uac_keys=["-key", "symbol", "SENDER_BLACKLISTED"])
    assert uac == 0, err + k.tail()
    assert h.screen.stats["rejected"] == 3


@pytest.mark.parametrize("behind", [True], indirect=True)
def test_callee_hangs_up_through_screen_and_record_routing_kamailio(behind):
    """Issue #15 with Kamailio tm+rr behind a record-routing screen: the callee's BYE follows the route set
    back through Kamailio and the screen to the caller (it got 404 from Kamailio before the fix)."""
    h, k, uas_port, tmp = behind
    uac, uas, err = sipp_calls(tmp, h.port, uas_port, ALLOWED, "uac_rr_callee_bye.xml", n=10,
                               uas_sf="uas_rr_bye.xml")
    assert uac == 0 and uas == 0, err + k.tail()
    assert h.screen.stats["screened"] == 10
