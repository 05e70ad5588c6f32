"""CPU per SIP MESSAGE judged by the screen, beside an INVITE's in the same run.

In process (engine/sip_screen/messaging.py judging): no sockets, no event loop -- the screen's socket is a stub that
counts sends (benchcall.stub_socket), the verdict log a file, the shipped rules without the classifier.

    python -m benchmarks.sip_message_cost [--n 3000] [--rounds 3]

Prints one JSON object: CPU µs (time.process_time) per request of each kind, the median of `rounds` rounds of `n`
requests each (a fresh Call-ID and branch each): `invite` (an initial INVITE judged and forwarded), `message_text`
(text/plain, judged and forwarded), `message_3gpp` (an RP-DATA / SMS-SUBMIT body, decoded, judged, forwarded),
`message_unjudged` (judge_messages = false: relayed as any request) and `message_retransmission` (a copy answered
from the transaction memory). Wall-clock CPU figures vary with the host's load; compare kinds within one run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

SENDER, RECIPIENT = "0901234567", "0912345678"


def _request(method: str, n: int, body: bytes = b"", ctype: str = "", branch: str | None = None) -> bytes:
    lines = [f"{method} sip:{RECIPIENT}@127.0.0.1 SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch={branch or f'z9hG4bK-b{n:08d}'};rport", "Max-Forwards: 70",
             f"From: <sip:{SENDER}@127.0.0.1>;tag=f{n:08d}", f"To: <sip:{RECIPIENT}@127.0.0.1>",
             f"Call-ID: c{n:08d}@127.0.0.1", f"CSeq: 1 {method}", f"Contact: <sip:{SENDER}@127.0.0.1:5080>"]
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _sms_submit(text: str) -> bytes:
    """RP-DATA MS -> network carrying an SMS-SUBMIT to 0912345678, GSM 7-bit (3GPP TS 24.011 §7.3.1.2, 23.040)."""
    from engine.smpp_proxy.codec.text import gsm_encode, gsm_pack
    sept = gsm_encode(text)
    tpdu = bytes.fromhex("0100" "0aa19021436587" "0000") + bytes([len(sept)]) + gsm_pack(sept)
    return bytes.fromhex("002a00" "07914889000000f1") + bytes([len(tpdu)]) + tpdu


def _screen(pipe, tmp: Path, judge_messages: bool = True):
    from engine.sip_screen.benchcall import stub_socket
    from engine.sip_screen.server import BRANCH_PREFIX, TRANSPORTS, SipScreen, SipSettings
    from engine.verdictlog import VerdictLog
    s = SipSettings(listen="127.0.0.1:5060", next_hop="127.0.0.1:5070", allow_networks=["127.0.0.0/8"],
                    judge_messages=judge_messages)
    vlog = VerdictLog(str(tmp / f"verdicts-{judge_messages}.jsonl"))
    vlog._flush_pending = True                  # flushed by the event loop in serve, not once a line (instrbench)
    scr = SipScreen(pipe, s, vlog)
    scr.host, scr.port = "127.0.0.1", 5060
    scr.me = {("127.0.0.1", 5060)}
    scr.via_prefixes = tuple(f"SIP/2.0/{t} 127.0.0.1:5060;branch={BRANCH_PREFIX}".encode() for t in TRANSPORTS)
    scr.udp = stub_socket()()
    return scr


def _per_request(scr, datagrams) -> float:
    on, src = scr.on_datagram, ("127.0.0.1", 5080)
    t0 = time.process_time()
    for d in datagrams:
        on(d, src)
    return (time.process_time() - t0) / len(datagrams) * 1e6


def measure(n: int = 3000, rounds: int = 3) -> dict:
    from engine.app import build
    text = "Khuyen mai lon hom nay: giam gia 50% tai cua hang, chi tiet goi 0901234567"
    with tempfile.TemporaryDirectory(prefix="tf-sipmsg-") as td:
        tmp = Path(td)
        pipe = build(None, tmp / "data", seed=False, with_model=False, persist=False)
        on, off = _screen(pipe, tmp), _screen(pipe, tmp, False)
        kinds = {"invite": (on, lambda i: _request("INVITE", i)),
                 "message_text": (on, lambda i: _request("MESSAGE", i, text.encode(), "text/plain;charset=UTF-8")),
                 "message_3gpp": (on, lambda i: _request("MESSAGE", i, _sms_submit(text), "application/vnd.3gpp.sms")),
                 "message_unjudged": (off, lambda i: _request("MESSAGE", i, text.encode(), "text/plain"))}
        out: dict = {k: [] for k in (*kinds, "message_retransmission")}
        base = 0
        for _ in range(rounds):
            for k, (scr, make) in kinds.items():
                reqs = [make(base + i) for i in range(n)]
                base += n
                _per_request(scr, reqs[:200])    # warm: these Call-IDs are judged once more below, as copies
                out[k].append(_per_request(scr, reqs[200:] + [make(base + i) for i in range(200)]))
                base += 200
                if k == "message_text":          # the same requests again: answered from `transactions`
                    out["message_retransmission"].append(_per_request(scr, reqs[200:]))
        for scr in (on, off):
            scr.vlog.close()                    # (its writer thread and crash spool, before the directory goes)
        stats = on.stats
        return {"n": n, "rounds": rounds, "cpu_us": {k: round(statistics.median(v), 1) for k, v in out.items()},
                "judged": stats["messages_judged"], "replayed": stats["messages_replayed"],
                "invites_screened": stats["screened"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sip_message_cost", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000, help="requests of each kind a round (default 3000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, kinds interleaved (default 3)")
    a = ap.parse_args(argv)
    if a.n < 300 or a.rounds < 1:
        ap.error("--n at least 300, --rounds at least 1")
    print(json.dumps(measure(a.n, a.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
