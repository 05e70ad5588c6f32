"""`telfilter_sip_final_responses_total{code=...}` (issue #12): one count per INVITE transaction's
final response the screen relays or generates, read from a real `serve`'s /metrics with
prometheus_client's parser. A UAS retransmitting its 200 and a UAC retransmitting a refused
INVITE do not count twice; a response only the full parse accepts counts like a plain one."""
import re
import socket
import subprocess
import sys

from engine.lists import ListStore

from .conftest import ROOT
from .test_metrics import _get, _samples
from .test_serve import wait_for


def _invite(caller, call_id, uac_port, screen_port):
    return ("INVITE sip:0912345678@127.0.0.1:%d SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%s;rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:%s@127.0.0.1>;tag=a1\r\nTo: <sip:0912345678@127.0.0.1>\r\n"
            "Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:%s@127.0.0.1:%d>\r\nContent-Length: 0\r\n\r\n"
            % (screen_port, uac_port, call_id, caller, call_id, caller, uac_port)).encode()


def _answer(invite: bytes, code: str, extra=b"") -> bytes:
    """The UAS's response: the request's Vias (the screen's on top), From, To with a tag, Call-ID, CSeq."""
    head = invite.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    keep = [h for h in head if re.match(rb"(?i)(via|from|to|call-id|cseq):", h)]
    keep = [h + b";tag=uas1" if h.lower().startswith(b"to:") else h for h in keep]
    return b"\r\n".join([b"SIP/2.0 " + code.encode(), *keep]) + b"\r\n" + extra + b"Content-Length: 0\r\n\r\n"


def test_final_responses_by_code_counted_once_per_invite_transaction(tmp_path):
    data = tmp_path / "data"
    ListStore(data).import_csv("blacklist", b"kind,value\nnumber,0987000666\n")
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", 0))
    uac = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uac.bind(("127.0.0.1", 0))
    for s in (uas, uac):
        s.settimeout(5)
    ready = tmp_path / "ready"
    # every port 0, read back from the ready file: no window between choosing a free port and binding it
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", data,
                          "--smpp-listen", "127.0.0.1:0", "--sip-listen", "127.0.0.1:0",
                          "--sip-next-hop", f"127.0.0.1:{uas.getsockname()[1]}", "--sip-allow-networks", "127.0.0.0/8",
                          "--log", tmp_path / "v.jsonl", "--metrics-listen", "127.0.0.1:0", "--ready-file", ready],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.log", "w"))
    up = uac.getsockname()[1]
    try:
        assert wait_for(ready.exists), (tmp_path / "stderr.log").read_text()
        ports = dict(line.split() for line in ready.read_text().splitlines())
        sip_port, mport = int(ports["sip"]), int(ports["metrics"])
        screen = ("127.0.0.1", sip_port)
        # an answered call: the UAS sends its 200 twice (a retransmission), both relayed
        uac.sendto(_invite("0901234567", "ok-1", up, sip_port), screen)
        fwd, _ = uas.recvfrom(65535)
        ok = _answer(fwd, "200 OK")
        for _ in range(2):
            uas.sendto(ok, screen)
            assert uac.recvfrom(65535)[0].startswith(b"SIP/2.0 200 OK")
        # a busy callee, answered with a response only the full parse takes (Content-Length twice)
        uac.sendto(_invite("0901234567", "busy-1", up, sip_port), screen)
        fwd, _ = uas.recvfrom(65535)
        uas.sendto(_answer(fwd, "486 Busy Here", b"Content-Length: 0\r\n"), screen)
        assert uac.recvfrom(65535)[0].startswith(b"SIP/2.0 486")
        # a blacklisted caller, refused by the screen; the UAC retransmits, the screen answers again
        spam = _invite("0987000666", "spam-1", up, sip_port)
        for _ in range(2):
            uac.sendto(spam, screen)
            assert uac.recvfrom(65535)[0].startswith(b"SIP/2.0 608")
        code, text = _get(mport, "/metrics")
        assert code == 200
        finals = {s.labels["code"]: s.value for s in _samples(text, "telfilter_sip_final_responses_total")}
        assert finals == {"200": 1, "486": 1, "608": 1}
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        uas.close()
        uac.close()
    assert p.returncode == 0
