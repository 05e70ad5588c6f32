"""The call flows of a carrier's IMS / softswitch core through the SIP screen, with sipp (an independent SIP
implementation) as caller and callee on 127.0.0.1, over UDP and TCP, with and without Record-Route:

  ims      reliable 183 (RFC 3262: Require: 100rel + RSeq, retransmitted until its PRACK; PRACK with RAck, 200),
           UPDATE in the early dialog (RFC 3311, preconditions), 200 with Session-Expires, ACK, INFO (DTMF), session
           refreshes (RFC 4028) by re-INVITE and by UPDATE from the caller, then from the callee, the callee's BYE;
           over UDP the INVITE is retransmitted once before the 183 and the 183 once before its PRACK
  fork     early media from two forks (two 183s, different To tags), the 200 from the second; the caller's BYE
  cancel   CANCEL after 183: 200 to the CANCEL, 487, ACK on the INVITE's branch
  retries  422 (RFC 4028 §6) and the call again with a larger Session-Expires, then 302 (RFC 3261 §8.1.3.4) and the
           call again to the Contact, then 200, ACK, BYE

The scenarios (tests/sipp/) fail the call unless every request reaches the other side with the screen's Via on top
of the sender's (exactly two Vias) and Max-Forwards 70 -> 69, and every response comes back with only the
receiver's own Via (RFC 3261 §16.6, §16.7); sipp's exit status says every message of every transaction arrived.
Here: the caller is an advertiser (one call a day to a callee: AD_CALL_FREQUENCY_CAP), so each flow is judged once
(one verdict line; a retry after 422/302 replayed, the refreshes and the callee's re-INVITE not judged: judged
again, the cap would refuse them and the flow fail), counted once (the next call to that callee gets 608), its
end recorded when it was answered, and over UDP without Record-Route everything but the INVITEs is relayed by the
fast path (the C pump when built: only INVITEs reach the Python path)."""
import collections
import io
import os
import re
import shutil
import socket
import subprocess
import time
from datetime import datetime, timezone

import pytest

from benchmarks import ports
from engine.app import build
from engine.lists import ListStore
from engine.sip_screen import transport as sip_transport
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.verdictlog import VerdictLog

from .conftest import ROOT
from .test_kamailio_interop import sipp_errors, uas_done

SIPP = shutil.which("sipp")
SC = ROOT / "tests" / "sipp"
BLOCKED_SC = ROOT / "benchmarks" / "sipp" / "uac_blocked.xml"
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (the README test command installs it)")

AD_CALLER, CALLEE = "02439998888", "0912345678"     # a registered advertiser (QC): one call per callee a day
CLOCK = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)     # 10:00 +07: inside advertising hours


_SPAN = os.environ.get("TELFILTER_TEST_PORTS")    # "LO-HI": draw sipp's ports there (a host shared with other runs)
_next = iter(range(*map(int, _SPAN.split("-")))) if _SPAN else None


def free_port():
    if _next is None:
        return ports.free_port(socket.SOCK_DGRAM, socket.SOCK_STREAM)
    return next(p for p in _next if ports.bindable(p, socket.SOCK_DGRAM) and ports.bindable(p, socket.SOCK_STREAM))


@pytest.fixture
def screen(tmp_path, request):
    transport, record_route = request.param
    ListStore(tmp_path).import_csv("senders", f"sender,owner,category,valid_from,valid_to,accounts\n"
                                              f"{AD_CALLER},Shop ABC,QC,,,\n".encode())
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)
    uas_port, buf = free_port(), io.StringIO()
    hop = f"127.0.0.1:{uas_port}" + (";transport=tcp" if transport == "tcp" else "")
    h = SipHarness(pipe, SipSettings(listen="127.0.0.1:0", next_hop=hop, allow_networks=["127.0.0.0/8"],
                                     record_route=record_route),
                   verdict_log=VerdictLog(buf), clock=lambda: CLOCK).start()
    slow = []
    on_datagram = h.screen.on_datagram          # what the C pump hands to Python (all of it without the pump)

    def spy(data, addr):
        slow.append(data.split(b" ", 1)[0])
        return on_datagram(data, addr)
    h.screen.on_datagram = spy
    yield h, uas_port, tmp_path, transport, buf, slow
    h.stop()


def sipp(transport):
    return [SIPP, "-i", "127.0.0.1", "-ci", "127.0.0.1",
            "-t", "t1" if transport == "tcp" else "u1", "-m", "1", "-s", CALLEE,
            "-timeout", "10s", "-timeout_error", "-nostdin", "-trace_err"]


def run_flow(h, uas_port, tmp, transport, flow):
    base = sipp(transport)
    uas = subprocess.Popen([*base, "-sf", str(SC / f"uas_{flow}.xml"), "-p", str(uas_port), "-error_file",
                            str(tmp / "uas_err.log"), "-trace_msg", "-message_file", str(tmp / "uas.msg")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    try:
        time.sleep(0.2)                         # the UAS listening (over TCP the caller's INVITE needs it)
        uac = subprocess.run([*base, f"127.0.0.1:{uas_port}", "-sf", str(SC / f"uac_{flow}.xml"), "-p",
                              str(free_port()), "-rsa", f"127.0.0.1:{h.port}", "-key", "caller", AD_CALLER,
                              "-error_file", str(tmp / "uac_err.log"), "-trace_msg", "-message_file",
                              str(tmp / "uac.msg")],
                             capture_output=True, text=True, cwd=tmp, timeout=30)
    finally:
        uas_done(uas, 15)
    return uac.returncode, uas.returncode, sipp_errors(tmp, uac)


def received(path):
    """(method or status code, CSeq, To tag) -> how many times sipp received it (its -trace_msg log)."""
    got = collections.Counter()
    for m in re.findall(r"message received \[\d+\] bytes :\n\n(.*?)(?=\n-{10,}|\Z)", path.read_text(), re.S):
        line = m.split("\n", 1)[0].split()
        to_tag = re.search(r"\nTo:[^\n]*;tag=([^;\s>]*)", m)
        got[(line[1] if line[0] == "SIP/2.0" else line[0], re.search(r"CSeq: *([^\r\n]*)", m).group(1).strip(),
             to_tag and to_tag.group(1))] += 1
    return got


# flow: (INVITEs of the flow replayed at least -- retries --, whether the call is answered and ended, the methods the
# C pump hands to Python over UDP, with or without Record-Route (an in-dialog request whose only Route is ours stays
# in C): INVITEs, CANCELs, and the ACK of a non-2xx final, which goes where its INVITE went, README "SIP call
# screening")
FLOWS = {"ims": (0, True, {b"INVITE"}), "fork": (0, True, {b"INVITE"}),
         "cancel": (0, False, {b"INVITE", b"CANCEL", b"ACK"}), "retries": (2, True, {b"INVITE", b"ACK"})}
CASES = [pytest.param(flow, (t, rr), id=f"{flow}-{t}{'-rr' if rr else ''}")
         for flow in FLOWS for t in ("udp", "tcp") for rr in (False, True)
         if not rr or flow in ("ims", "retries")]


@pytest.mark.parametrize("flow,screen", CASES, indirect=["screen"])
def test_carrier_call_flow_is_relayed_judged_once_and_counted_once(flow, screen):
    h, uas_port, tmp, transport, buf, slow = screen
    uac, uas, err = run_flow(h, uas_port, tmp, transport, flow)
    assert uac == 0 and uas == 0, err
    # nothing lost, nothing answered twice: each message once at the other side, but over UDP the ims flow's INVITE
    # and reliable 183, retransmitted while the other side pauses, relayed as often as sent (a stateless proxy)
    for side in ("uac", "uas"):
        for (what, cseq, _), n in received(tmp / f"{side}.msg").items():
            again = transport == "udp" and flow == "ims" and cseq == "1 INVITE" and what in ("INVITE", "183")
            assert n == 1 or (again and n <= 3), (side, what, cseq, n)
    st = h.screen.stats
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and '"action": "allow"' in lines[0], lines             # one verdict line
    assert st["screened"] == 1 and st["replayed"] >= FLOWS[flow][0], dict(st)
    for bad in ("reinvite_unknown_dialog", "final_wrong_origin", "internal_errors", "errors", "forward_failed",
                "call_id_reused"):
        assert st.get(bad, 0) == 0, (bad, dict(st))
    # the call's end recorded once, for the dialog its 200 made (fork: the second fork's)
    assert len(h.pipeline.state.calls.recent(int("84" + AD_CALLER[1:]))) == (1 if FLOWS[flow][1] else 0)
    if transport == "udp" and sip_transport.Pump is not None:
        # PRACK, UPDATE, INFO, the ACK of a 2xx, BYE (with our Route too: RFC 3261 §16.4) and every response: in C
        assert set(slow) == FLOWS[flow][2], slow
    # counted once, not zero times: the advertiser's next call to the callee is over its cap
    uac = subprocess.run([*sipp(transport), f"127.0.0.1:{uas_port}", "-sf", str(BLOCKED_SC),
                          "-p", str(free_port()), "-rsa", f"127.0.0.1:{h.port}", "-key", "caller", AD_CALLER,
                          "-key", "symbol", "AD_CALL_FREQUENCY_CAP", "-error_file", str(tmp / "blocked_err.log")],
                         capture_output=True, text=True, cwd=tmp, timeout=30)
    assert uac.returncode == 0, uac.stderr[-2000:]
    assert st["rejected"] == 1 and len(buf.getvalue().splitlines()) == 2
