"""`telfilter demo`: the main job on embedded defaults, end to end over real SMPP.

Starts the proxy (as `serve` does) with the shipped config and sample lists in a temporary
data dir, an in-process SMSC simulator on loopback, and drives it with smpplib's client (an
SMPP implementation we did not write): ordinary messages, spam, an ad at 23:00, an ad to a
DNC number, a `DK DNC` MO to 5656 followed by an ad to that subscriber, an ad scheduled for
tomorrow whose recipient then registers `DK DNC` (cancelled at the SMSC), and a long UCS2
Vietnamese message. Prints what happened to each and the latency the proxy added (round
trip through the proxy minus the round trip straight to the simulator), then exits.
"""
from __future__ import annotations

import io
import shutil
import socket
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .app import build, seed_default_data
from .config import load_settings

HANOI = timezone(timedelta(hours=7))
CANCEL = object()       # a row that waits for the proxy's own cancel_sm of the ad scheduled before it (dnc_cancel.py)

SCRIPT = [
    # (label, source, destination, text, local hour)
    ("ordinary SMS", "84903111222", "84912345681", "Toi nay an com o nha nhe, me nau canh chua.", 18),
    ("bank OTP (CSKH brandname)", "VNBANK", "84912345678", "Ma OTP cua quy khach la 482913. Khong chia se ma nay.", 9),
    ("spam (classifier)", "84903111223", "84912345681",
     "WINNER!! You have won a £1000 cash prize. Call 09061701461 to claim. Txt STOP to end", 17),
    ("phishing link (blacklist)", "84909123456", "84912345679",
     "Tai khoan VNBANK cua ban bi khoa. Xac minh ngay tai vnbank-xacminh.example/login", 11),
    ("ad at 10:00", "SHOPABC", "84912345678", "[QC] Giam 30% toan bo don hang cuoi tuan. Tu choi QC soan TC gui 5656", 10),
    ("ad at 23:00", "SHOPABC", "84912345678", "[QC] Flash sale dem khuya! Tu choi: TC gui 5656", 23),
    ("ad to a DNC number", "SHOPABC", "84912000001", "[QC] Uu dai thanh vien. Tu choi: TC gui 5656", 11),
    ("MO 'DK DNC' to 5656", None, "84912345690", "DK DNC", 12),
    ("ad after DK DNC", "SHOPABC", "84912345690", "[QC] Qua tang cho ban. Tu choi: TC gui 5656", 12),
    ("ad for tomorrow 10:00", "SHOPABC", "84912345691", "[QC] Khai truong chi nhanh moi. Tu choi: TC gui 5656", 16,
     "tomorrow 10:00"),
    ("MO 'DK DNC' to 5656", None, "84912345691", "DK DNC", 16),
    ("... that ad, scheduled", CANCEL, "84912345691", "", 16),
    ("long UCS2 Vietnamese", "84903111224", "84912345681",
     "Chào chị Hoa, em gửi lại lịch họp tuần sau: thứ Hai 9 giờ họp giao ban, thứ Ba 14 giờ gặp khách hàng "
     "ở quận 1, thứ Tư cả ngày đào tạo nội bộ, thứ Năm nghỉ bù, thứ Sáu 10 giờ tổng kết dự án. "
     "Chị xem giúp em có trùng lịch gì không nhé, em cảm ơn chị nhiều!", 15),
]


EXAMPLE_ROW = "ad to a DNC number"      # the row whose verdict line the demo shows whole


def cmd_demo(args) -> int:
    import smpplib.client
    import smpplib.gsm
    from .smpp_proxy.codec import constants as C
    from .smpp_proxy.codec import pdu_text
    from .smpp_proxy.harness import ProxyHarness
    from .verdictlog import VerdictLog
    settings = load_settings(getattr(args, "config", None))
    if getattr(args, "data_dir", None):     # a directory the user names is never seeded (README): not used here
        print(f"telfilter demo: note: --data-dir {args.data_dir} is not used: the demo seeds a temporary data dir "
              "of its own with the sample lists (--keep-data keeps it)", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="telfilter-demo-"))
    day = datetime.now(HANOI).date()
    now = {"t": datetime.now(timezone.utc)}
    log_buf = io.StringIO()
    rows, seen = [], {}         # seen: the verdict lines of each row, by its label
    try:
        seed_default_data(tmp, settings)
        pipe = build(getattr(args, "config", None), tmp)
        print("telfilter demo: SMPP proxy + SMSC simulator on 127.0.0.1, ESME = smpplib, sample lists in", tmp)
        with ProxyHarness(pipe, accounts=("demo:demo",), verdict_log=VerdictLog(log_buf), clock=lambda: now["t"]) as h:
            c = smpplib.client.Client("127.0.0.1", h.port, timeout=5)
            c.connect()
            c.bind_transceiver(system_id="demo", password="demo")
            direct = smpplib.client.Client("127.0.0.1", h.sim.port, timeout=5)
            direct.connect()
            direct.bind_transceiver(system_id="baseline", password="x")
            for cl in (c, direct):       # smpplib leaves Nagle on; parts would wait for delayed ACKs
                cl._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            base, scheduled = [], None
            for label, src, dst, text, hour, *sched in SCRIPT:
                now["t"] = datetime(day.year, day.month, day.day, hour, 0, tzinfo=HANOI).astimezone(timezone.utc)
                if src is CANCEL:          # the ad scheduled ahead: cancelled at the SMSC once its recipient said no
                    outcome = _cancelled(h, scheduled)
                    # its verdict line is written once the SMSC has answered the cancel_sm: wait for it too
                    if outcome == "cancelled at the SMSC":
                        _await_text(log_buf, '"kind": "cancel"')
                    rows.append((label, outcome, _symbols(log_buf, seen, label), "-",
                                 "a cancel_sm of ours, by message_id"))
                    continue
                if src is None:            # a subscriber's MO, arriving from the SMSC
                    before, answered = len(h.sim.submits()), len(h.sim.mo_responses)
                    h.run(h.sim.send_mo, dst, "5656", text)
                    t_end = time.time() + 3
                    while (len(h.sim.submits()) == before or len(h.sim.mo_responses) == answered) \
                            and time.time() < t_end:
                        time.sleep(0.01)
                    reply = pdu_text(h.sim.submits()[-1]) if len(h.sim.submits()) > before else "-"
                    # what the proxy answered the SMSC's deliver_sm, in the MT rows' words: a 5656 command is for
                    # the proxy itself (applied, not forwarded to an ESME); a refusal by its SMPP status name
                    status = h.sim.mo_responses[-1].command_status if len(h.sim.mo_responses) > answered else None
                    outcome = ("no answer" if status is None else "applied (5656 command)" if status == 0
                               else f"rejected {C.STATUS_NAMES.get(status, f'0x{status:02X}')}")
                    rows.append((label, outcome, _symbols(log_buf, seen, label), "-", f"confirmation: {_clip(reply, 60)}"))
                    continue
                parts, enc, esm = smpplib.gsm.make_parts(text)
                kws = [dict(source_addr_ton=5 if not src.isdigit() else 1, source_addr=src, dest_addr_ton=1,
                            destination_addr=dst, short_message=p, data_coding=enc, esm_class=esm) for p in parts]
                if sched:                  # tomorrow 10:00 in Hanoi, absolute (SMPP 3.4 §7.1.1: +28 quarter hours)
                    for kw in kws:
                        kw["schedule_delivery_time"] = (day + timedelta(days=1)).strftime("%y%m%d") + "100000028+"
                # all parts go out before the responses are read (a window): the proxy holds
                # the parts of a concatenated message until it can judge the whole text
                t0 = time.perf_counter()
                for kw in kws:
                    c.send_message(**kw)
                resps = [c.read_pdu() for _ in kws]
                statuses = [r.status for r in resps]
                if sched:
                    scheduled = _message_id(resps[0])
                rtts = [(time.perf_counter() - t0)]
                t0 = time.perf_counter()
                for kw in kws:
                    direct.send_message(**kw)
                for _ in kws:
                    direct.read_pdu()
                base.append(time.perf_counter() - t0)
                ok = all(s == 0 for s in statuses)
                # the status by its SMPP 3.4 name (§5.1.3), as the rules' smpp_status and the logs name it
                outcome = "forwarded" if ok else f"rejected {C.STATUS_NAMES.get(statuses[0], f'0x{statuses[0]:02X}')}"
                rows.append((label, outcome, _symbols(log_buf, seen, label), f"{rtts[0] * 1e6:.0f}",
                             f"{len(parts)} part(s), {'UCS2' if enc == 8 else 'GSM7'}"
                             + (f", delivery {sched[0]}" if sched else "")))
            base_us = statistics.median(base) * 1e6
            for cl in (c, direct):
                cl.unbind()
                cl.disconnect()
        hdr = ("message", "outcome", "symbols", "rtt µs", "notes")
        w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(5)]
        for r in [hdr, ["-" * n for n in w]] + rows:         # the last column unpadded: no trailing blanks
            print("  ".join(str(x).ljust(w[i]) for i, x in enumerate(r)).rstrip())
        added = [float(r[3]) - base_us for r in rows if r[3] != "-"]
        print(f"\nround trip straight to the simulator: {base_us:.0f} µs (median); "
              f"added by telfilter: median {statistics.median(added):.0f} µs, max {max(added):.0f} µs")
        print("verdict log (telfilter serve --log): one JSON line per verdict, and one per cancel of ours; the "
              f"line of '{EXAMPLE_ROW}':\n{seen[EXAMPLE_ROW][-1]}")
        return 0
    finally:
        if getattr(args, "keep_data", False):
            print(f"data dir kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _clip(text: str, n: int) -> str:
    """`text` cut to at most n characters at a word's end, with an ellipsis when cut."""
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + " …"


def _symbols(buf, seen: dict, label: str) -> str:
    """Symbols of the verdict lines written since the last call (the buffer is consumed; its lines kept in
    `seen` under the label of the row they belong to)."""
    import json
    lines = buf.getvalue().splitlines()
    buf.seek(0)
    buf.truncate()
    seen[label] = lines
    syms = []
    for l in lines:
        rec = json.loads(l)
        # (a cancel of ours names the rule that bars the ad first in its reason: "AD_TO_DNC: +84… on list:dnc S")
        for sym in [h["symbol"] for h in rec.get("hits", ())] or [rec.get("reason", "").partition(":")[0]]:
            if sym and sym not in syms:
                syms.append(sym)
    return ",".join(syms) or "-"


def _message_id(resp) -> str:
    mid = getattr(resp, "message_id", b"") or b""
    return mid.decode("ascii", "replace") if isinstance(mid, bytes) else str(mid)


def _await_text(buf, text: str, wait: float = 5.0) -> None:
    """Wait (at most `wait` seconds) until the verdict log buffer holds `text`."""
    end = time.time() + wait
    while text not in buf.getvalue() and time.time() < end:
        time.sleep(0.02)


def _cancelled(h, message_id, wait: float = 5.0) -> str:
    """Whether the SMSC simulator got the proxy's cancel_sm of `message_id` within `wait` seconds."""
    from .smpp_proxy.codec import constants as C
    end = time.time() + wait
    while time.time() < end:
        if any(p.command_id == C.CANCEL_SM and p.message_id == message_id for _, p in list(h.sim.received)):
            return "cancelled at the SMSC"
        time.sleep(0.02)
    return "not cancelled"
