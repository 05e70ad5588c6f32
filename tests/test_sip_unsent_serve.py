"""Through `telfilter serve` (uvloop, the C pump, the verdict log file) with sipp as the caller: every INVITE the
screen answers or lets through has one verdict-log line, and `telfilter report` counts each call once, as what
happened to it. An advertiser's call let through to a next hop that cannot be reached (ICMP port unreachable) is
answered 503 by the screen, its counts given back; the caller tries it again (same call, a new branch) and gets 503
again. Both tries were judged `allow` and logged; each now has a `call_unsent` line naming its verdict line, and the
report counts both under call/refuse, none in the advertiser's volume (before: two `allow` calls of Shop ABC, for a
call that never rang). Beside it, an INVITE with no usable destination (a Route over SCTP) is logged 503 (it wrote
no line), and two INVITEs reusing one branch and Call-ID with CSeq 1 and 2, refused 483, are logged once each (the
second wrote none), their retransmissions none."""
import json
import subprocess
import sys

from .conftest import ROOT
from .sip_helpers import invite
from .test_serve import free_port
from .test_sip_unreachable_hop import _dead_port, _udp
from .test_sipp_dialog_restart import AD_CALLER, CALLEE, SC, SIPP, configure, pytestmark, serve, stop  # noqa: F401
from .test_sipp_ims_flows import free_port as free_sip_port


def _log(tmp_path) -> list:
    return [json.loads(line) for line in (tmp_path / "verdicts.jsonl").read_text().splitlines()]


def _ask(uac, data: bytes, port: int) -> bytes:
    uac.sendto(data, ("127.0.0.1", port))
    return uac.recv(65535)


def test_serve_logs_every_invite_once_and_report_counts_an_unsent_call_as_refused(tmp_path):
    cfg, data = configure(tmp_path)
    sip_port = free_sip_port()
    p = serve(tmp_path, cfg, data, sip_port, _dead_port(), free_port(), 1)
    uac = _udp(5.0)
    try:
        caller = subprocess.run([SIPP, f"127.0.0.1:{sip_port}", "-sf", str(SC / "uac_unsent.xml"), "-i", "127.0.0.1",
                                 "-ci", "127.0.0.1", "-p", str(free_sip_port()), "-t", "u1", "-m", "1", "-s", CALLEE,
                                 "-key", "caller",
                                 AD_CALLER, "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err",
                                 "-error_file", str(tmp_path / "uac_err.log")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=60)
        assert caller.returncode == 0, caller.stderr[-2000:]
        me = uac.getsockname()[1]
        no_dest = invite(call_id="no-dest", via_port=me, extra=["Route: <sip:127.0.0.9;transport=sctp;lr>"])
        assert _ask(uac, no_dest, sip_port).startswith(b"SIP/2.0 503")
        one = invite(call_id="one-branch", via_port=me, max_forwards="0")
        two = one.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE")
        for inv in (one, one, two, two):                 # each, and its retransmission
            assert _ask(uac, inv, sip_port).startswith(b"SIP/2.0 483")
    finally:
        assert stop(p) == 0
        uac.close()
    lines = _log(tmp_path)
    calls = [r for r in lines if r["kind"] == "call" and r["action"] != "refuse"]
    unsent = [r for r in lines if r["kind"] == "call_unsent"]
    refused = sorted((r["call_id"], r["status"]) for r in lines if r["kind"] == "call" and r["action"] == "refuse")
    assert [(r["caller"], r["action"]) for r in calls] == [(AD_CALLER, "allow")] * 2
    assert [(u["call_id"], u["judged"], u["status"]) for u in unsent] == [(c["call_id"], c["ts"], 503) for c in calls]
    assert refused == [("no-dest", 503), ("one-branch", 483), ("one-branch", 483)]
    out = tmp_path / "report"
    rep = subprocess.run([sys.executable, "-m", "engine.cli", "report", "--config", str(cfg), "--data-dir", str(data),
                          "--log", str(tmp_path / "verdicts.jsonl"), "--out", str(out), "--no-progress"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["call"] == {"allow": 0, "tag": 0, "drop": 0, "refuse": 5}
    assert (summary["calls_unsent"], summary["calls_unsent_untied"], summary["inputs"]["malformed"]) == (2, 0, 0)
    assert summary["advertising_by_owner"].get("Shop ABC", {"volume": 0})["volume"] == 0
