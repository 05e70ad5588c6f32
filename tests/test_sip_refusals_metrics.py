"""/metrics counts every line the SIP screen writes in the verdict log, as it counts the SMPP proxy's: an INVITE the
screen answered itself, unjudged (503 no usable destination, 483 of the §16.3 checks, 400 of the parser), is a verdict
of action refuse (`telfilter_verdicts_total{channel="call",action="refuse"}`, and by the code answered in
`telfilter_refusals_total{channel="call",status}`), and a call judged and let through that never left (its next hop
unreachable: our 503) is `telfilter_calls_unsent_total{status}` beside its `allow`. Through `telfilter serve` (the C
pump, the verdict log file) with raw UDP, read back with prometheus_client's parser and with the soak benchmark's own
check of log lines against /metrics (benchmarks/soak.py). Before, none of these was counted: the soak's check held
only while no call was refused or unsent."""
import collections
import json
import subprocess
import sys

from benchmarks.soak import _metrics, log_against_metrics

from .conftest import ROOT
from .sip_helpers import invite
from .test_metrics import _get, _samples
from .test_serve import wait_for
from .test_sip_unreachable_hop import _dead_port, _udp
from .test_sipp_dialog_restart import stop


def _ask(uac, data: bytes, port: int) -> bytes:
    uac.sendto(data, ("127.0.0.1", port))
    return uac.recv(65535)


def _lines(path) -> list:
    # (whole lines: read while serve appends)
    return [json.loads(x) for x in path.read_text().split("\n")[:-1]] if path.exists() else []


def test_sip_refusal_and_call_unsent_lines_are_counted_in_metrics(tmp_path):
    data, vlog, ready = tmp_path / "data", tmp_path / "v.jsonl", tmp_path / "ready"
    # every port 0, read back from the ready file; the next hop a port nothing listens on (ICMP port unreachable)
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", data,
                          "--smpp-listen", "127.0.0.1:0", "--sip-listen", "127.0.0.1:0",
                          "--sip-next-hop", f"127.0.0.1:{_dead_port()}", "--sip-allow-networks", "127.0.0.0/8",
                          "--log", vlog, "--metrics-listen", "127.0.0.1:0", "--ready-file", ready],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.log", "w"))
    uac = _udp(5.0)
    me = uac.getsockname()[1]
    try:
        assert wait_for(ready.exists, 60), (tmp_path / "stderr.log").read_text()
        ports = dict(line.split() for line in ready.read_text().splitlines())
        sip, mport = int(ports["sip"]), int(ports["metrics"])
        # judged allow and forwarded; its next hop unreachable: answered 503 by the screen, a call_unsent line
        assert _ask(uac, invite(call_id="unsent-1", via_port=me), sip).startswith(b"SIP/2.0 503")
        no_dest = invite(call_id="no-dest", via_port=me, extra=["Route: <sip:127.0.0.9;transport=sctp;lr>"])
        assert _ask(uac, no_dest, sip).startswith(b"SIP/2.0 503")
        hops = invite(call_id="hops-1", via_port=me, max_forwards="0")
        for _ in range(2):                                  # and its retransmission: answered again, no line
            assert _ask(uac, hops, sip).startswith(b"SIP/2.0 483")
        bad = invite(call_id="bad-1", via_port=me, content_length="zz")
        assert _ask(uac, bad, sip).startswith(b"SIP/2.0 400")
        assert wait_for(lambda: len(_lines(vlog)) >= 5), _lines(vlog)
        code, text = _get(mport, "/metrics")
        assert code == 200
        scrape = _metrics(mport)
    finally:
        assert stop(p) == 0
        uac.close()
    lines = _lines(vlog)
    calls = collections.Counter(r["action"] for r in lines if r["kind"] == "call")
    refused = collections.Counter(str(r["status"]) for r in lines if r["kind"] == "call" and r["action"] == "refuse")
    unsent = collections.Counter(str(r["status"]) for r in lines if r["kind"] == "call_unsent")
    assert (calls, refused, unsent) == ({"allow": 1, "refuse": 3}, {"503": 1, "483": 1, "400": 1}, {"503": 1})
    assert {s.labels["action"]: s.value for s in _samples(text, "telfilter_verdicts_total")
            if s.labels["channel"] == "call"} == calls
    assert {s.labels["status"]: s.value for s in _samples(text, "telfilter_refusals_total")
            if s.labels["channel"] == "call"} == refused
    assert {s.labels["status"]: s.value for s in _samples(text, "telfilter_calls_unsent_total")} == unsent
    assert log_against_metrics([vlog], scrape) == {"verdict_lines": 5, "cancel_lines": 0, "verdicts_counted": 5,
                                                   "verdict_lines_all_counted": True}
