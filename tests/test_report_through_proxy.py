"""`telfilter report` end to end: a known traffic set through the SMPP proxy (smpplib as the ESME, the SMSC simulator
as the SMSC, a file verdict log), then the report's counts must equal what was sent. Reading and counting logs:
test_report.py."""
import csv
import json
from datetime import datetime

import smpplib.client
import smpplib.gsm

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.conftest import run_cli
from tests.test_report import HANOI
from tests.test_smpp_proxy import wait


HAM = "Hi Lan, the meeting moved to 3pm tomorrow. See you there"


def _send(c, text, src, dst="84912345678"):
    parts, enc, esm = smpplib.gsm.make_parts(text)
    for p in parts:
        c.send_message(source_addr_ton=1, source_addr_npi=1, source_addr=src, dest_addr_ton=1, dest_addr_npi=1,
                       destination_addr=dst, short_message=p, data_coding=enc, esm_class=esm)
    return [c.read_pdu().status for _ in parts]


def test_end_to_end_known_traffic_through_the_proxy_gives_exact_report_counts(tmp_path):
    data = tmp_path / "data"
    st = ListStore(data)
    st.import_csv("blacklist", b"kind,value\nnumber,84987000666\ndomain,phish.example\n")
    pipe = build(data_dir=data)
    log_path = tmp_path / "verdicts.log"
    vlog = VerdictLog(str(log_path))
    first_day = datetime.now(HANOI).date().isoformat()      # (the traffic may cross midnight: both ends read)
    sent = {"allow": 0, "blacklisted_sender": 0, "blacklisted_url": 0, "dk": 0, "huy": 0, "S": 0, "V": 0}
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=SmppSettings(), verdict_log=vlog) as h:
        c = smpplib.client.Client("127.0.0.1", h.port, timeout=5)
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        for i in range(5):
            assert _send(c, HAM, f"8490123456{i}") == [0]
            sent["allow"] += 1
        for i in range(3):
            assert _send(c, f"Hello friend number {i}, call me back", "84987000666") != [0]
            sent["blacklisted_sender"] += 1
        for i in range(2):
            assert _send(c, f"Your parcel {i} is waiting, confirm at https://login.phish.example/p{i}",
                         f"8490555000{i}") != [0]
            sent["blacklisted_url"] += 1
        mos = [("84911000001", "DK DNC"), ("84911000002", "DK DNC S"), ("84911000003", "dk dnc v"),
               ("84911000002", "HUY DNC S"),
               ("84911000004", "S 84987000666 trung thuong"), ("84911000005", "S 0987000666 vay tien"),
               ("84911000006", "V 84987000777 goi lua dao")]
        for src, text in mos:
            before = len(h.sim.mo_responses)
            assert h.run(h.sim.send_mo, src, "5656", text)
            assert wait(lambda: len(h.sim.mo_responses) > before)
            key = text.split()[0].upper()
            sent[{"DK": "dk", "HUY": "huy"}.get(key, key)] += 1
        assert wait(lambda: pipe.lists.in_dnc(84911000003, "V"))
        c.unbind()
        c.disconnect()
    vlog.close()

    out = tmp_path / "report"
    p = run_cli("report", "--log", log_path, "--out", out, "--data-dir", data, "--no-progress")
    assert p.returncode == 0, p.stderr
    s = json.loads((out / "summary.json").read_text())
    n_mo = sent["dk"] + sent["huy"] + sent["S"] + sent["V"]
    drops = sent["blacklisted_sender"] + sent["blacklisted_url"]
    assert s["totals"]["sms"] == {"allow": sent["allow"] + n_mo, "tag": 0, "drop": drops, "refuse": 0}
    assert s["totals"]["call"] == {"allow": 0, "tag": 0, "drop": 0, "refuse": 0}
    assert s["symbols"]["SENDER_BLACKLISTED"] == sent["blacklisted_sender"]
    assert s["symbols"]["URL_BLACKLISTED"] == sent["blacklisted_url"]
    assert s["dnc"] == {"registered": sent["dk"], "cancelled": sent["huy"]}
    assert s["dnc_by_channel"]["S"] == {"registered": 1, "cancelled": 1}
    assert s["reports"] == {"S": sent["S"], "V": sent["V"], "FW": 0}
    assert first_day <= s["from"] <= s["to"] <= datetime.now(HANOI).date().isoformat(), (first_day, s["from"], s["to"])
    assert s["inputs"]["malformed"] == 0
    assert s["top_senders_by_drops"][0] == {"channel": "sms", "sender": "84987000666", "drops": 3}
    # the 5656 store the proxy wrote gives the same report counts
    p = run_cli("report", "--log", log_path, "--reports", data / "reports.jsonl", "--out", tmp_path / "r2",
                "--no-progress")
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "r2" / "summary.json").read_text())["reports"] == s["reports"]

    html = (out / "report.html").read_text()
    for png in ("volume_by_action.png", "top_symbols.png", "dnc_by_period.png", "reports_by_kind.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'alt="{png}" src="data:image/png;base64,' in html
    rows = {r[0]: int(r[1]) for r in csv.reader(open(out / "symbols.csv")) if r[0] != "symbol"}
    assert rows["URL_BLACKLISTED"] == sent["blacklisted_url"]
    totals = list(csv.reader(open(out / "totals.csv")))
    assert ["sms", "drop", str(drops)] in totals
    for name in ("dnc", "reports", "volume_by_period", "dnc_by_period", "reports_by_period",
                 "top_senders_by_drops", "top_owners_by_drops", "advertising_by_owner", "models"):
        assert (out / f"{name}.csv").exists()

    # the published list carries what was added
    p = run_cli("lists", "export", "blacklist", "--format", "rbldnsd", "--data-dir", data)
    assert p.returncode == 0, p.stderr
    assert "\n.phish.example\n" in p.stdout and "\n84987000666\n" in p.stdout
