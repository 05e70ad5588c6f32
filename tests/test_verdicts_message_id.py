"""From a verdict to the SMSC's message_id and back (a care-desk walkthrough: a complaint names the SMSC's message_id
from its CDRs or a delivery receipt, and the verdict line had none). The proxy writes an `sms_id` line at the
submit_sm_resp; `telfilter verdicts` shows the id on its message's line and finds the line by `--message-id`."""
import json

import smpplib.client
import smpplib.consts
import smpplib.gsm

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.conftest import run_cli

HAM = "Hi Lan, the meeting moved to 3pm tomorrow. See you there"
LONG = "Chao ban, day la mot tin nhan dai " * 8          # two parts


def _send(c, text, src, dst):
    parts, enc, esm = smpplib.gsm.make_parts(text)
    for p in parts:
        c.send_message(source_addr_ton=1, source_addr_npi=1, source_addr=src, dest_addr_ton=1, dest_addr_npi=1,
                       destination_addr=dst, short_message=p, data_coding=enc, esm_class=esm)
    resps = [c.read_pdu() for _ in parts]
    return [(r.status, r.message_id.decode() if r.status == 0 else None) for r in resps]


def _verdicts(*args):
    p = run_cli("verdicts", "--no-progress", *args)
    return p.returncode, [json.loads(x) for x in p.stdout.splitlines()], p.stderr


def test_a_message_id_from_the_smsc_finds_its_verdict_line_and_back(tmp_path):
    data = tmp_path / "data"
    ListStore(data).import_csv("blacklist", b"kind,value\nnumber,84987000666\n")
    pipe = build(data_dir=data)
    log_path = tmp_path / "verdicts.log"
    vlog = VerdictLog(str(log_path))
    settings = SmppSettings(smsc_log_message_ids=True)          # ([upstream] log_message_ids = true)
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=settings, verdict_log=vlog) as h:
        c = smpplib.client.Client("127.0.0.1", h.port, timeout=5)
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        [(st1, mid1)] = _send(c, HAM, "84901234560", "84912345678")
        [(st2, mid2)] = _send(c, HAM + " again", "84901234560", "84912345678")    # same parties, next message
        long_ids = [m for s, m in _send(c, LONG, "84901234561", "84912345678")]
        dropped = _send(c, "Hello friend, call me back", "84987000666", "84912345678")
        other = _send(c, HAM, "84901234560", "84912000111")
        c.unbind()
        c.disconnect()
    vlog.close()
    assert st1 == st2 == 0 and len({mid1, mid2, *long_ids}) == 4 and dropped[0][0] != 0 and other[0][0] == 0

    rc, got, err = _verdicts("--log", log_path, "--message-id", mid2)
    assert rc == 0, err
    [line] = got
    assert line["kind"] == "sms" and line["action"] == "allow" and line["sender"] == "84901234560"
    assert line["message_ids"] == [mid2] and "1 of " in err

    # a part's id: the concatenated message's one line, with every part's id in part order
    rc, got, err = _verdicts("--log", log_path, "--message-id", long_ids[1])
    assert rc == 0, err
    assert [r["message_ids"] for r in got] == [long_ids] and got[0]["sender"] == "84901234561"

    # the subscriber's lines in file order: each forwarded one with its id, the dropped one with none
    rc, got, err = _verdicts("--log", log_path, "--number", "0912 345 678")
    assert rc == 0, err
    assert [(r["kind"], r["action"], r.get("message_ids")) for r in got] == [
        ("sms", "allow", [mid1]), ("sms", "allow", [mid2]), ("sms", "allow", long_ids), ("sms", "drop", None)]
    assert all(r["ts"] < r2["ts"] for r, r2 in zip(got, got[1:]))

    rc, got, err = _verdicts("--log", log_path, "--message-id", "NOSUCHID")
    assert rc == 1 and got == []
    # the report reads the sms_id lines and counts the messages by their own lines only
    rep = run_cli("report", "--log", log_path, "--out", tmp_path / "rep", "--no-progress")
    assert rep.returncode == 0, rep.stderr
    s = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert s["inputs"]["malformed"] == 0 and s["totals"]["sms"] == {"allow": 4, "tag": 0, "drop": 1, "refuse": 0}


def _line(ts, sender="VNBANK", recipient="84912345678", account="bank1", action="allow"):
    return {"ts": ts, "kind": "sms", "pdu": "SubmitSm", "account": account, "sender": sender, "recipient": recipient,
            "action": action, "score": 0.0, "hits": [], "judge_us": 20.0}


def _id(ts, mid, sender="VNBANK", recipient="84912345678", account="bank1", **kw):
    return {"ts": ts, "kind": "sms_id", "account": account, "sender": sender, "recipient": recipient,
            "message_id": mid, **kw}


def test_two_messages_in_flight_take_the_ids_that_name_them_and_an_id_without_its_line_is_shown_alone(tmp_path):
    a, b, c = "2026-12-07T02:00:00.000100+00:00", "2026-12-07T02:00:00.000900+00:00", "2026-12-07T02:00:00.001000+00:00"
    recs = [_line(a), _line(b), _line(c, account="bank2"),
            # the SMSC answered the second first: each id names its line by its time, not by arrival
            _id("2026-12-07T02:00:00.020000+00:00", "A2", judged=b), _id("2026-12-07T02:00:00.021000+00:00", "A1",
                                                                          judged=a),
            _id("2026-12-07T02:00:00.022000+00:00", "B1", account="bank2", judged=c),
            # its line in a log not read (an older one): shown as itself
            _id("2026-12-07T03:00:00+00:00", "LATE", judged="2026-12-06T23:59:59+00:00")]
    p = tmp_path / "v.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    rc, got, err = _verdicts("--log", p, "--number", "0912345678")
    assert rc == 0, err
    assert [(r["kind"], r["account"], r.get("message_ids"), r.get("message_id")) for r in got] == [
        ("sms", "bank1", ["A1"], None), ("sms", "bank1", ["A2"], None), ("sms", "bank2", ["B1"], None),
        ("sms_id", "bank1", None, "LATE")]
    rc, got, err = _verdicts("--log", p, "--message-id", "A2", "--message-id", "B1")
    assert [r.get("message_ids") for r in got] == [["A2"], ["B1"]]
    rc, got, err = _verdicts("--log", p, "--message-id", "LATE")
    assert rc == 0 and [r["kind"] for r in got] == ["sms_id"]
    # --message-id reads the logs twice: not stdin
    rc, got, err = _verdicts("--log", "-", "--message-id", "A1")
    assert rc == 2 and "not '-'" in err


def test_lines_held_for_their_ids_go_when_the_next_log_is_older():
    # `--log verdicts.log*` reads the newest log first: its lines were held until HOLD of log time had passed
    from datetime import datetime, timedelta, timezone

    from engine.report.msgid_join import IdJoin
    j = IdJoin()
    t = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)
    j.add(t, _line(t.isoformat()), True)
    assert list(j.ready(t + timedelta(seconds=1))) == []          # its id may still come
    older = t - timedelta(days=1)
    assert [ts for ts, _ in j.ready(older)] == [t] and not j.keys


def test_a_late_answers_message_id_is_logged_too(tmp_path):
    # the ESME had ESME_RSYSERR (the SMSC answered after response_timeout) but the message may be delivered: its id is
    # what the SMSC's CDRs name, and finds its line
    from tests.test_smpp_proxy import wait
    log_path = tmp_path / "verdicts.log"
    vlog = VerdictLog(str(log_path))
    st = SmppSettings(smsc_response_timeout=0.3, smsc_log_message_ids=True)
    with ProxyHarness(build(data_dir=tmp_path / "data"), accounts=("esme1:secret",), settings=st,
                      verdict_log=vlog) as h:
        h.sim.answer_delay = 0.8
        c = smpplib.client.Client("127.0.0.1", h.port, timeout=5)
        c.connect()
        c.bind_transceiver(system_id="esme1", password="secret")
        assert _send(c, HAM, "84901234560", "84912345678")[0][0] == smpplib.consts.SMPP_ESME_RSYSERR
        assert wait(lambda: h.proxy.stats["late_responses"] == 1)
        mid = "00000001"                                    # the simulator's first id
        assert h.proxy.msgid_account.get(mid) == "esme1"
        c.unbind()
        c.disconnect()
    vlog.close()
    rc, got, err = _verdicts("--log", log_path, "--message-id", mid)
    assert rc == 0, err
    assert [(r["kind"], r["action"], r["message_ids"]) for r in got] == [("sms", "allow", [mid])]
