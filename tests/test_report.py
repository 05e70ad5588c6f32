"""`telfilter report`: reading verdict logs (plain, gzip, bz2, malformed lines), counting, periods, owners, DNC
channels and ad violations, and its CLI's errors (a known traffic set through the SMPP proxy, end to end:
test_report_through_proxy.py)."""
import bz2
import csv
import gzip
import json
from datetime import date, datetime, timedelta, timezone

from engine.lists import ListStore
from engine.report import make_report
from engine.report.aggregate import TopCounter
from engine.verdictlog import VerdictLog
from tests.conftest import run_cli

HANOI = timezone(timedelta(hours=7))


def rec(ts, action="allow", kind="sms", sender="84901234567", hits=()):
    r = {"ts": ts, "kind": kind, "action": action, "score": 0,
         "hits": [{"symbol": s, "score": 1, "detail": d, "source": src} for s, d, src in hits]}
    r["sender" if kind == "sms" else "caller"] = sender
    return json.dumps(r) + "\n"


# ---------------------------------------------------------------- reading and counting

def test_plain_gzip_and_bz2_logs_count_alike_and_malformed_lines_are_reported_not_fatal(tmp_path):
    lines = [rec("2026-03-01T09:00:00+07:00"),
             rec("2026-03-01T09:01:00+07:00", "drop", hits=[("SENDER_BLACKLISTED", "x", "list:blacklist")]),
             "{not json\n",
             json.dumps({"ts": "2026-03-01T09:02:00", "kind": "sms", "action": "allow"}) + "\n",   # no offset
             json.dumps([1, 2]) + "\n",
             rec("2026-03-01T09:03:00+07:00", "drop", "call", hits=[("ML_SPAM", "p", "model:m1")]),
             json.dumps({"id": "m1", "action": "allow", "score": 0.0, "hits": []}) + "\n"]      # a `check` line
    text = "".join(lines)
    (tmp_path / "v.log").write_text(text)
    (tmp_path / "v.log.1.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "v.log.2.bz2").write_bytes(bz2.compress(text.encode()))
    (tmp_path / "cut.gz").write_bytes(gzip.compress(text.encode())[:-12])     # rotation caught mid-write
    logs = [tmp_path / n for n in ("v.log", "v.log.1.gz", "v.log.2.bz2")]
    (tmp_path / "v.log").write_bytes(
        text.encode()
        + rec("2026-03-01T09:04:00+07:00", "drop", sender="84\udcff").encode()     # the log's \\udcff escape
        + rec("2026-03-01T09:05:00+07:00", "drop", sender="84@@").encode().replace(b"@@", b"\xff"))  # a raw bad byte
    s = make_report(logs, tmp_path / "out", HANOI, progress=False, with_plots=True)
    assert s["totals"]["sms"] == {"allow": 3, "tag": 0, "drop": 5, "refuse": 0}
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    for sender in ("84\udcff", "84\ufffd"):
        assert {"channel": "sms", "sender": sender, "drops": 1} in on_disk["top_senders_by_drops"]
    assert "84\\udcff" in (tmp_path / "out" / "top_senders_by_drops.csv").read_text()
    assert s["totals"]["call"]["drop"] == 3
    assert s["symbols"] == {"SENDER_BLACKLISTED": 3, "ML_SPAM": 3}
    assert s["models"]["m1"]["hits"] == 3
    shown = s["inputs"]["malformed_lines"]
    assert s["inputs"]["malformed"] == 12                 # 4 bad lines in each file
    assert f"{tmp_path / 'v.log'}:3: not JSON" in shown[0]
    assert shown[1].startswith(f"{tmp_path / 'v.log'}:4: field ts: must be an ISO-8601 time with an offset")
    assert shown[2].startswith(f"{tmp_path / 'v.log'}:5: not a JSON object")
    # `check`'s output given to `report`: said so, not "ts must be an ISO-8601 time" each line (first-use review)
    assert shown[3].startswith(f"{tmp_path / 'v.log'}:7: a verdict without a time, not a verdict log line"), shown
    assert shown[4].startswith(f"{tmp_path / 'v.log.1.gz'}:3: not JSON")
    # a truncated file: the lines before the cut count, the rest is one reported error, the report goes on
    s = make_report([tmp_path / "cut.gz", tmp_path / "v.log"], tmp_path / "out2", HANOI, progress=False,
                    with_plots=False)
    assert s["totals"]["sms"]["allow"] == 2 and s["totals"]["call"]["drop"] >= 1
    assert any(x.startswith(f"{tmp_path / 'cut.gz'}:") and ": unreadable from here on" in x
               for x in s["inputs"]["malformed_lines"])


def test_from_to_are_local_days_and_periods_bucket_by_week_and_month(tmp_path):
    # 2026-03-31T23:30+07:00 is still March in Hanoi although it is 16:30 UTC
    log = "".join([rec("2026-02-28T10:00:00+07:00"), rec("2026-03-02T10:00:00+07:00"),
                   rec("2026-03-31T16:30:00+00:00"), rec("2026-04-01T00:30:00+07:00")])
    (tmp_path / "v.log").write_text(log)
    s = make_report([tmp_path / "v.log"], tmp_path / "m", HANOI, start=date(2026, 3, 1), end=date(2026, 3, 31),
                    period="week", progress=False, with_plots=False)
    assert s["totals"]["sms"]["allow"] == 2 and s["outside_period"] == 2
    assert (s["from"], s["to"]) == ("2026-03-01", "2026-03-31")
    rows = list(csv.reader(open(tmp_path / "m" / "volume_by_period.csv")))
    # Mondays, every week of the period (1 March is a Sunday), those without traffic too
    assert [r[0] for r in rows[1:]] == ["2026-02-23", "2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23",
                                        "2026-03-30"]
    assert [r[1] for r in rows[1:]] == ["0", "1", "0", "0", "0", "1"]
    s = make_report([tmp_path / "v.log"], tmp_path / "m2", HANOI, period="month", progress=False, with_plots=False)
    rows = list(csv.reader(open(tmp_path / "m2" / "volume_by_period.csv")))
    assert [(r[0], r[1]) for r in rows[1:]] == [("2026-02-01", "1"), ("2026-03-01", "2"), ("2026-04-01", "1")]
    assert (s["from"], s["to"]) == ("2026-02-28", "2026-04-01")


def test_top_counter_stays_bounded_and_keeps_the_heavy_hitter():
    t = TopCounter(keep=10)
    for i in range(5000):
        t.add(f"random{i}")
        if i % 10 == 0:
            t.add("spammer")
        assert len(t.c) <= 20
    assert t.top(1)[0][0] == "spammer" and t.top(1)[0][1] >= 500 - t.floor
    assert t.floor > 0


def test_owners_dnc_channels_reports_store_and_ad_violations(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\n"
                                       b"SHOPX,Shop X JSC,QC,,,\nVNBANK,VN Bank,CSKH,,,\n")
    lists = ListStore(d).load()
    log = "".join([
        rec("2026-05-01T10:00:00+07:00", sender="SHOPX"),
        rec("2026-05-01T23:00:00+07:00", "drop", sender="SHOPX", hits=[("AD_OUTSIDE_HOURS", "23:00", "r")]),
        rec("2026-05-01T10:05:00+07:00", "drop", sender="SHOPX", hits=[("AD_TO_DNC", "x", "r"), ("AD_NO_OPTOUT", "", "r")]),
        rec("2026-05-01T10:06:00+07:00", sender="VNBANK"),
        rec("2026-05-01T10:07:00+07:00", "drop", sender="84987000666", hits=[("SENDER_BLACKLISTED", "", "l")]),
        rec("2026-05-01T10:08:00+07:00", sender="84911000001", hits=[("DNC_REGISTERED", "+84911000001 added to DNC S", "sc")]),
        rec("2026-05-01T10:09:00+07:00", sender="84911000002", hits=[("DNC_REGISTERED", "+84911000002 added to DNC SV", "sc")]),
        rec("2026-05-01T10:10:00+07:00", sender="84911000002", hits=[("DNC_CANCELLED", "+84911000002 removed from DNC V", "sc")]),
        rec("2026-05-01T10:11:00+07:00", sender="84911000003", hits=[("SPAM_REPORTED", "S report against +84987000666", "sc")]),
    ])
    (tmp_path / "v.log").write_text(log)
    store = tmp_path / "reports.jsonl"
    store.write_text("".join(json.dumps({"reporter": "+8491", "reported": "+8498", "content": "x", "kind": k,
                                         "time": "2026-05-01T10:00:00+07:00", "label": None}) + "\n"
                             for k in ("S", "V", "V", "FW")) + "garbage\n")
    s = make_report([tmp_path / "v.log"], tmp_path / "o", HANOI, reports=str(store), lists=lists,
                    progress=False, with_plots=False)
    assert s["dnc"] == {"registered": 2, "cancelled": 1}
    assert s["dnc_by_channel"] == {"S": {"registered": 1, "cancelled": 0}, "V": {"registered": 0, "cancelled": 1},
                                   "SV": {"registered": 1, "cancelled": 0}}
    assert s["reports"] == {"S": 1, "V": 2, "FW": 1}       # from the store, not the log's report hit
    assert [x.split(": ")[0] for x in s["inputs"]["malformed_lines"]] == [f"{store}:5"]
    ad = s["advertising_by_owner"]["Shop X JSC"]
    assert (ad["volume"], ad["dropped"], ad["hours"], ad["dnc"], ad["opt_out"], ad["label"]) == (3, 2, 1, 1, 1, 0)
    assert "VN Bank" not in s["advertising_by_owner"]           # CSKH, no AD_* hit: not advertising
    assert s["top_owners_by_drops"] == [{"owner": "Shop X JSC", "drops": 2}]
    assert s["top_senders_by_drops"][0] == {"channel": "sms", "sender": "SHOPX", "drops": 2}
    s2 = make_report([tmp_path / "v.log"], tmp_path / "o2", HANOI, progress=False, with_plots=False)
    assert s2["reports"] == {"S": 1, "V": 0, "FW": 0}            # no store given: the log's report hits


def test_a_sender_id_a_spreadsheet_would_run_is_written_as_text(tmp_path):
    """A peer chooses its alphanumeric sender ID: "=1+2" or "@SUM(A1)" in top_senders_by_drops.csv must not be a
    formula when the regulator's analyst opens the file."""
    (tmp_path / "v.log").write_text("".join(
        rec("2026-05-01T10:00:00+07:00", "drop", sender=s, hits=[("SENDER_BLACKLISTED", "", "l")])
        for s in ("=1+2", "@SUM(A1)", "-2+3", "84987000666")))
    make_report([tmp_path / "v.log"], tmp_path / "o", HANOI, progress=False, with_plots=False)
    with open(tmp_path / "o" / "top_senders_by_drops.csv", newline="") as f:
        senders = sorted(r["sender"] for r in csv.DictReader(f))
    assert senders == ["'-2+3", "'=1+2", "'@SUM(A1)", "84987000666"]


def test_cli_bad_dates_and_missing_log_are_clear_errors(tmp_path):
    p = run_cli("report", "--log", tmp_path / "nope.log", "--out", tmp_path / "o")
    assert p.returncode == 2 and "nope.log" in p.stderr
    (tmp_path / "v.log").write_text(rec("2026-05-01T10:00:00+07:00"))
    p = run_cli("report", "--log", tmp_path / "v.log", "--from", "2026-13-01")
    assert p.returncode != 0 and "argument --from: must be a date YYYY-MM-DD, got '2026-13-01'" in p.stderr
    p = run_cli("report", "--log", tmp_path / "v.log", "--from", "2026-05-02", "--to", "2026-05-01")
    assert p.returncode == 2 and "is after" in p.stderr
    bad_action = json.dumps({"ts": "2026-05-01T11:00:00+07:00", "kind": "sms", "action": "zap", "hits": []})
    p = run_cli("report", "--log", "-", "--out", tmp_path / "o", input=rec("2026-05-01T10:00:00+07:00") + bad_action + "\n")
    assert p.returncode == 0 and "-:2: not a verdict record" in p.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["totals"]["sms"]["allow"] == 1 and s["inputs"]["malformed"] == 1 and "zap" not in s["totals"]["sms"]


def test_top_below_one_is_refused_not_a_table_short_of_its_last_row(tmp_path):
    # --top -1 was taken as a slice bound: the top-senders table of 5 senders had 4 rows, exit 0
    log = tmp_path / "v.log"
    log.write_text("".join(rec(f"2026-05-01T10:{i:02d}:00+07:00", "drop", sender=f"SHOP{i % 5}",
                               hits=[("AD_TO_DNC", "x", "r")]) for i in range(30)))
    for bad in ("-1", "0"):
        p = run_cli("report", "--log", log, "--top", bad, "--out", tmp_path / "o")
        assert p.returncode == 2 and "argument --top: must be 1 or more" in p.stderr, p.stderr
        assert not (tmp_path / "o").exists()
    p = run_cli("report", "--log", log, "--top", "5", "--out", tmp_path / "o")
    assert p.returncode == 0, p.stderr
    assert len(json.loads((tmp_path / "o" / "summary.json").read_text())["top_senders_by_drops"]) == 5

def test_out_of_range_times_odd_symbols_and_huge_lines_are_malformed_lines_not_crashes(tmp_path):
    from engine.report.reader import MAX_LINE
    lines = [rec("2026-03-01T09:00:00+07:00"),
             rec("0001-01-01T00:00:00+14:00"),                                         # no UTC time
             rec("2026-03-01T09:01:00+07:00", "drop", hits=[("X\udc00", "x", "list:blacklist")]),
             "x" * (MAX_LINE + 10) + "\n",                                              # a runaway line
             rec("2026-03-01T09:02:00+07:00", "drop", hits=[("SENDER_BLACKLISTED", "x", "list:blacklist")])]
    (tmp_path / "v.log").write_text("".join(lines), errors="surrogateescape")
    s = make_report([tmp_path / "v.log"], tmp_path / "out", HANOI, progress=False, with_plots=True)
    assert s["totals"]["sms"]["allow"] == 1 and s["totals"]["sms"]["drop"] == 1
    assert s["inputs"]["malformed"] == 3
    assert (tmp_path / "out" / "summary.json").exists() and (tmp_path / "out" / "report.html").exists()


def test_help_says_log_dash_is_stdin():
    # the README's table and the reader take `--log -` (stdin); --help listed only file kinds (first-use probe)
    p = run_cli("report", "--help", check=True)
    assert "'-' = stdin" in " ".join(p.stdout.split())


def test_an_fw_ad_copy_in_the_log_counts_as_an_fw_report_not_as_advertising(tmp_path):
    # found by the report probe: AD_COPY_RECEIVED (an `FW` MO to 5656, as serve logs it) begins with AD_ and was taken
    # for an ad rule hit, so reports.FW stayed 0 and the subscriber's MO was counted as an unregistered advertiser's ad
    log = "".join([
        rec("2026-05-01T10:11:00+07:00", sender="84912345604",
            hits=[("SPAM_REPORTED", "S report against +8490", "sc")]),
        rec("2026-05-01T10:12:00+07:00", sender="84912345606",
            hits=[("AD_COPY_RECEIVED", "advertisement copy stored", "shortcode:5656")]),
    ])
    (tmp_path / "v.log").write_text(log)
    s = make_report([tmp_path / "v.log"], tmp_path / "o", HANOI, progress=False, with_plots=False)
    assert s["reports"] == {"S": 1, "V": 0, "FW": 1}
    assert s["advertising_by_owner"] == {}
    assert s["symbols"] == {"SPAM_REPORTED": 1, "AD_COPY_RECEIVED": 1}
    rows = list(csv.reader(open(tmp_path / "o" / "reports_by_period.csv")))
    assert rows[1:] == [["2026-05-01", "1", "0", "1"]]
    # with the report store given, the store's counts are used and the log's FW hit is still not an ad
    store = tmp_path / "reports.jsonl"
    store.write_text("")
    s = make_report([tmp_path / "v.log"], tmp_path / "o2", HANOI, reports=str(store), progress=False, with_plots=False)
    assert s["reports"] == {"S": 0, "V": 0, "FW": 0} and s["advertising_by_owner"] == {}


def test_the_report_names_the_time_zone_its_days_are_in(tmp_path):
    # found by the report probe: days are the configured zone's (17:00 UTC is midnight in Hanoi) but neither
    # summary.json nor report.html said which zone, so a reader could not tell a day's counts from UTC ones
    from zoneinfo import ZoneInfo
    (tmp_path / "v.log").write_text(rec("2026-12-02T16:59:59Z") + rec("2026-12-02T17:00:00Z"))
    s = make_report([tmp_path / "v.log"], tmp_path / "o", ZoneInfo("Asia/Ho_Chi_Minh"), progress=False,
                    with_plots=False)
    assert s["timezone"] == "Asia/Ho_Chi_Minh"
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["timezone"] == "Asia/Ho_Chi_Minh"
    rows = list(csv.reader(open(tmp_path / "o" / "volume_by_period.csv")))
    assert [(r[0], r[1]) for r in rows[1:]] == [("2026-12-02", "1"), ("2026-12-03", "1")]
    assert "Asia/Ho_Chi_Minh" in (tmp_path / "o" / "report.html").read_text()


def test_symbol_counts_cut_by_the_bound_are_flagged_as_not_exact(tmp_path):
    # found by the report probe: with more than 2*TOP_KEEP distinct symbols the symbols table is pruned and a
    # symbol seen again restarts from 1, yet top_counts_exact covered only the senders and owners
    from engine.report import aggregate
    lines = [rec("2026-05-01T10:00:00+07:00", hits=[(f"X_{i}", "", "r")]) for i in range(25)]
    lines += [rec("2026-05-01T11:00:00+07:00", hits=[("X_0", "", "r")])] * 3
    (tmp_path / "v.log").write_text("".join(lines))
    keep = aggregate.TOP_KEEP
    aggregate.TOP_KEEP = 5
    try:
        s = make_report([tmp_path / "v.log"], tmp_path / "o", HANOI, progress=False, with_plots=False)
    finally:
        aggregate.TOP_KEEP = keep
    assert s["top_counts_exact"] is False
    s = make_report([tmp_path / "v.log"], tmp_path / "o2", HANOI, progress=False, with_plots=False)
    assert s["top_counts_exact"] is True and s["symbols"]["X_0"] == 4


def test_from_and_to_cover_report_store_days_when_the_log_has_none(tmp_path):
    # found by the report probe: an empty log with a report store of 3 reports gave "from": null, "to": null
    # ("Spam filtering report, None to None") although the reports had dates
    (tmp_path / "v.log").write_text("")
    store = tmp_path / "reports.jsonl"
    store.write_text("".join(json.dumps({"reporter": "+8491", "reported": "+8498", "content": "x", "kind": "S",
                                         "time": t, "label": None}) + "\n"
                             for t in ("2026-05-01T17:30:00Z", "2026-05-03T10:00:00+07:00")))
    s = make_report([tmp_path / "v.log"], tmp_path / "o", HANOI, reports=str(store), progress=False, with_plots=False)
    assert (s["from"], s["to"], s["reports"]["S"], s["records"]) == ("2026-05-02", "2026-05-03", 2, 0)
    assert "None" not in (tmp_path / "o" / "report.html").read_text().split("</h1>")[0]


def test_a_sender_read_by_its_type_of_number_is_the_owner_the_report_names(tmp_path):
    """Found by a review: the verdict log names a sender its SMPP type of number read otherwise than its digits
    alone would ("sender": "2439998888", TON 1: "sender_read": "+2439998888", DR Congo, the number it was judged
    as), but the report looked the owner up from "sender" alone (842439998888, a Hanoi landline): a registered
    brand was charged in advertising_by_owner and top_owners_by_drops with drops of a message from another number."""
    from engine.verdict import Action, Hit, Message, Verdict
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\n"
                                       b"02439998888,Hanoi Shop,QC,,,\n")
    lists = ListStore(d).load()
    log_path = tmp_path / "v.log"
    vlog = VerdictLog(str(log_path))
    t = datetime(2026, 5, 1, 3, 0, tzinfo=timezone.utc)
    v = Verdict(Action.DROP, 10.0, (Hit("AD_SENDER_UNREGISTERED", 10.0, "x", "r", Action.DROP),))
    vlog.write_sms(Message("2439998888", "84901234567", "ad", t, "esme1", "mt", 1, 0), "submit_sm", v, 1.0)
    vlog.write_sms(Message("2439998888", "84901234567", "ad", t, "esme1", "mt", 0, 0), "submit_sm", v, 1.0)
    vlog.close()
    assert '"sender_read": "+2439998888"' in log_path.read_text()
    s = make_report([log_path], tmp_path / "o", HANOI, lists=lists, progress=False, with_plots=False)
    assert s["top_owners_by_drops"] == [{"owner": "Hanoi Shop", "drops": 1}]     # the TON 0 one only
    assert s["advertising_by_owner"]["Hanoi Shop"]["dropped"] == 1
    assert s["advertising_by_owner"]["(not in the sender registry)"]["dropped"] == 1


def test_ads_cancelled_at_a_dnc_registration_are_counted_apart_not_as_messages(tmp_path):
    """A `"kind": "cancel"` line (smpp_proxy/dnc_cancel.py: an ad scheduled ahead, its recipient registered DK DNC
    before its delivery) is no message: counted in `scheduled_ads_cancelled`, not in totals, records or malformed."""
    cancel = {"ts": "2026-03-01T10:00:00+07:00", "kind": "cancel", "pdu": "cancel_sm", "account": "esme1",
              "sender": "SHOPABC", "recipient": "84912777401", "message_id": "1a",
              "delivery": "2026-03-02T02:00:00+00:00", "status": 0, "reason": "AD_TO_DNC: +84912777401 on list:dnc S"}
    (tmp_path / "v.log").write_text(rec("2026-03-01T09:00:00+07:00") + json.dumps(cancel) + "\n"
                                    + json.dumps(dict(cancel, status=0x11)) + "\n"
                                    + json.dumps(dict(cancel, status="0")) + "\n")
    s = make_report([tmp_path / "v.log"], tmp_path / "out", HANOI, progress=False, with_plots=False)
    assert s["scheduled_ads_cancelled"] == {"cancelled": 1, "refused_by_smsc": 1}
    assert sum(s["totals"]["sms"].values()) == 1 and s["records"] == 1
    assert s["inputs"]["malformed"] == 1            # the cancel line whose status is not a number
    assert "cancelled at the SMSC" in (tmp_path / "out" / "report.html").read_text()
