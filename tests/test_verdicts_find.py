"""`telfilter verdicts`: a complaint's verdict-log lines by number (every way of writing it), sender, symbol, action
and local day (a care-desk walkthrough found `grep 0987333444` missing the line with `+84987333444`)."""
import gzip
import json
import subprocess
import sys

from .conftest import ROOT

LINES = [
    # 09:00 in Hanoi on 2026-12-07: a bank's OTP to the subscriber, written with the country code
    {"ts": "2026-12-07T02:00:00+00:00", "kind": "sms", "pdu": "SubmitSm", "account": "bank1", "sender": "VNBANK",
     "recipient": "84912345678", "action": "allow", "score": 0.0, "hits": [], "judge_us": 20.0},
    # a personal SMS to them dropped as spam, written with '+'
    {"ts": "2026-12-07T03:00:00+00:00", "kind": "sms", "pdu": "SubmitSm", "account": "p2p", "sender": "0987654321",
     "recipient": "+84912345678", "action": "drop", "score": 0.0,
     "hits": [{"symbol": "ML_SPAM", "score": 0.0, "detail": "p=0.94", "source": "model:x"}], "judge_us": 30.0},
    # a call they made, in national form
    {"ts": "2026-12-07T04:00:00+00:00", "kind": "call", "call_id": "c1", "caller": "0912345678",
     "callee": "0987000111", "ingress": "127.0.0.1", "action": "allow", "score": 0.0, "hits": [], "judge_us": 50.0},
    # someone else's message; and one whose digits alone read otherwise than its type of number did
    {"ts": "2026-12-07T05:00:00+00:00", "kind": "sms", "pdu": "SubmitSm", "account": "p2p", "sender": "0987654321",
     "recipient": "0912000111", "action": "allow", "score": 0.0, "hits": [], "judge_us": 20.0},
    {"ts": "2026-12-07T06:00:00+00:00", "kind": "sms", "pdu": "SubmitSm", "account": "p2p", "sender": "0987654321",
     "recipient": "912345678", "recipient_read": "+84912345678", "recipient_ton": 2, "action": "allow",
     "score": 0.0, "hits": [], "judge_us": 20.0},
    # 23:30 in Hanoi on 2026-12-06: the day before, locally
    {"ts": "2026-12-06T16:30:00+00:00", "kind": "sms", "pdu": "SubmitSm", "account": "shop", "sender": "ShopABC",
     "recipient": "0912345678", "action": "drop", "score": 15.0,
     "hits": [{"symbol": "AD_OUTSIDE_HOURS", "score": 15.0, "detail": "", "source": "x.toml:1"}], "judge_us": 40.0},
]


def _log(tmp_path, name="verdicts.jsonl"):
    text = "".join(json.dumps(r) + "\n" for r in LINES) + "not json\n"
    p = tmp_path / name
    if name.endswith(".gz"):
        p.write_bytes(gzip.compress(text.encode()))
    else:
        p.write_text(text)
    return p


def _run(*args):
    r = subprocess.run([sys.executable, "-m", "engine.cli", "verdicts", "--no-progress", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    return r.returncode, [json.loads(x) for x in r.stdout.splitlines()], r.stderr


def test_a_number_matches_every_way_it_is_written(tmp_path):
    log = _log(tmp_path)
    rc, got, err = _run("--log", str(log), "--number", "0912 345 678")
    assert rc == 0, err
    assert [r["ts"] for r in got] == [LINES[i]["ts"] for i in (0, 1, 2, 4, 5)]
    assert got[0]["ts_local"] == "2026-12-07T09:00:00+07:00" and got[0]["recipient"] == "84912345678"
    assert "5 of 6 lines matched" in err and "malformed line skipped" in err and ":7:" in err
    rc, same, _ = _run("--log", str(log), "--number", "+84912345678")
    assert same == got


def test_filters_combine_and_days_are_local(tmp_path):
    log = _log(tmp_path, "verdicts.jsonl.gz")
    rc, got, err = _run("--log", str(log), "--number", "0912345678", "--symbol", "ML_SPAM")
    assert rc == 0 and [r["sender"] for r in got] == ["0987654321"] and got[0]["action"] == "drop"
    rc, got, _ = _run("--log", str(log), "--number", "0912345678", "--from", "2026-12-07", "--action", "allow")
    assert [r["ts"] for r in got] == [LINES[i]["ts"] for i in (0, 2, 4)]
    rc, got, _ = _run("--log", str(log), "--to", "2026-12-06")            # 23:30 in Hanoi, 16:30 UTC
    assert [r["sender"] for r in got] == ["ShopABC"]
    rc, got, _ = _run("--log", str(log), "--sender", "shopabc")
    assert [r["ts"] for r in got] == [LINES[5]["ts"]]
    rc, got, _ = _run("--log", str(log), "--sender", "0987 654 321", "--number", "0912000111")
    assert [r["ts"] for r in got] == [LINES[3]["ts"]]


def test_a_line_with_an_undecodable_byte_is_printed_as_utf8(tmp_path):
    # serve logs a peer's undecodable byte as a "\\udcff" escape; read back it is a lone surrogate, which UTF-8 cannot
    # hold: written raw (0xff, no UTF-8) or a traceback under a strict encoder, and the output stopped there
    rec = dict(LINES[1], sender="\udcff12")
    p = tmp_path / "v.jsonl"
    p.write_text(json.dumps(rec) + "\n" + json.dumps(LINES[0]) + "\n")
    r = subprocess.run([sys.executable, "-m", "engine.cli", "verdicts", "--no-progress", "--log", str(p), "--number",
                        "0912345678"], cwd=ROOT, capture_output=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8", "LC_ALL": "C.UTF-8"})
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode("utf-8")                  # strict: valid UTF-8
    a, b = map(json.loads, out.splitlines())
    assert a["sender"] == "\udcff12" and "\\udcff12" in out.splitlines()[0] and b["sender"] == "VNBANK"


def test_nothing_matched_and_bad_arguments(tmp_path):
    log = _log(tmp_path)
    rc, got, err = _run("--log", str(log), "--number", "0900000000")
    assert rc == 1 and got == [] and "0 of 6 lines matched" in err
    rc, got, err = _run("--log", str(log), "--number", "SHOPABC")
    assert rc == 2 and "--number 'SHOPABC' is not a phone number" in err
    rc, got, err = _run("--log", str(log), "--from", "2026-12-31", "--to", "2026-12-01")
    assert rc == 2 and "is after --to" in err
    rc, got, err = _run("--log", str(log), "--from", "7/12/2026")
    assert rc == 2 and "a date YYYY-MM-DD, got '7/12/2026'" in err
