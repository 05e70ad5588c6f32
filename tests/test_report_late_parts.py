"""The regulator's report over the verdict lines of late parts (README "Known limits", the report in the CLI
table): a late part's line names its message (`"concat"`, as the message's own line does), so a message is
counted once in `totals.sms` and a late part that made it an ad puts it in "advertising by owner" once; a 5656
command that a late part got recorded (its message's line a refusal: the journal could not take it) is one
message, its DNC change counted once. Driven through the ProxyHarness (and the two processes on one Redis of
test_redis_mo_concat), reported with `make_report`."""
import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.report import make_report
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.redis_helpers import redis_server  # noqa: F401 (a fixture)
from tests.test_redis_mo_concat import REPORT, Pair, _split
from tests.test_smpp_mo_concat import answers, deliver, gsm_parts, mo
from tests.test_smpp_proxy import raw_session, read_raw, wait

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TEN = datetime.fromisoformat("2026-03-02T10:00:00+07:00")          # within Decree 91's 07:00-22:00
TIMEOUT = 0.3
CSKH = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,CSKH,2020-01-01,2099-12-31,\n"


@pytest.fixture
def url(redis_server):  # noqa: F811
    redis_server.flush()
    return redis_server.url


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _report(tmp_path, log, pipe):
    return make_report([str(log)], tmp_path / "report", TZ, lists=pipe.lists, progress=False, with_plots=False)


def test_a_dk_dnc_got_recorded_by_its_late_part_is_one_message_and_one_registration(tmp_path):
    """Found by review (Known limits): the 5656 command completed by a late part was logged as a command without
    `"late"`: `totals.sms` counted the `DK DNC` twice (its refusal, not recorded, and the late part's line)."""
    d = tmp_path / "data"
    ListStore(d)
    pipe = build(data_dir=d, with_model=False)
    real = pipe.store.journal

    def full(changes):
        raise OSError(28, "No space left on device")
    pipe.store.journal = full
    log = tmp_path / "verdicts.jsonl"
    vlog = VerdictLog(open(log, "w"))
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=TIMEOUT), verdict_log=vlog) as h:
        p1, p2 = gsm_parts(["DK ", "DNC"], ref=0x81)
        s1 = deliver(h, mo(p1, dc=0))
        assert wait(lambda: answers(h).get(s1) == [0])    # acknowledged as it comes (once on disk)
        s2 = deliver(h, mo(p2, dc=0))               # completes it: "DK DNC", which the disk refuses
        assert wait(lambda: answers(h).get(s2) == [C.ESME_RX_T_APPN])
        pipe.store.journal = real
        time.sleep(TIMEOUT + 0.2)
        s3 = deliver(h, mo(p2, dc=0))               # the SMSC's copy, after concat_timeout: a late part
        assert wait(lambda: answers(h).get(s3) == [0])
        assert wait(lambda: pipe.lists.in_dnc(84_911_000_001, "S"))
    vlog.close()
    recs = _lines(log)
    assert [(r["pdu"], r["action"], r.get("late", False)) for r in recs] == [
        ("DeliverSm MO x2/2", "refuse", False), ("DeliverSm MO part 2/2 late", "allow", True)]
    assert recs[0]["concat"] == recs[1]["concat"]
    s = _report(tmp_path, log, pipe)
    # one message, counted under the verdict it got (its first line said only "asked again"); one registration
    assert s["totals"]["sms"] == {"allow": 1, "tag": 0, "drop": 0, "refuse": 0}
    assert s["dnc"] == {"registered": 1, "cancelled": 0}
    assert s["records"] == 1 and s["late_parts"] == 1 and s["late_parts_untied"] == 0


def _part(seq, ref, n, body, total=2):
    return encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                             destination_addr="84912777070", data_coding=1, esm_class=0x40,
                             short_message=bytes([5, 0, 3, ref, total, n]) + body))


def test_a_message_its_late_part_made_an_ad_is_one_ad_of_its_owner(tmp_path):
    """Found by review (Known limits): judged on its second part (no label: no ad), the message's late first part
    made it an ad (`[QC]` from a sender registered CSKH only: AD_SENDER_NOT_QC on the late line only); the report
    skipped late lines, so the ad was not in "advertising by owner"."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", CSKH, "senders.csv")
    pipe = build(data_dir=d, with_model=False)
    log = tmp_path / "verdicts.jsonl"
    vlog = VerdictLog(open(log, "w"))
    with ProxyHarness(pipe, clock=lambda: TEN, settings=SmppSettings(concat_timeout=TIMEOUT), verdict_log=vlog) as h:
        s, _ = raw_session(h)
        s.sendall(_part(10, 0x91, 2, b"re hon 30% tat ca san pham. Tu choi: TC gui 5656"))
        assert read_raw(s).command_status == 0              # judged alone at the timeout: no ad, forwarded
        time.sleep(TIMEOUT + 0.2)
        s.sendall(_part(11, 0x91, 1, b"[QC] Shop ABC: cuoi tuan nay "))
        late = read_raw(s).command_status
    vlog.close()
    recs = _lines(log)
    assert [r.get("late", False) for r in recs] == [False, True]
    assert recs[0]["concat"] == recs[1]["concat"]
    first, second = ({h["symbol"] for h in r["hits"]} for r in recs)
    assert not any(x.startswith("AD_") for x in first) and any(x.startswith("AD_") for x in second), (first, second)
    s = _report(tmp_path, log, pipe)
    assert s["totals"]["sms"] == {"allow": 1, "tag": 0, "drop": 0, "refuse": 0}
    ads = s["advertising_by_owner"]
    assert list(ads) == ["Shop ABC"] and ads["Shop ABC"]["volume"] == 1, (ads, late)
    # counted under its own line's action (its second part went out), the violation its late line showed counted
    assert (ads["Shop ABC"]["dropped"], ads["Shop ABC"]["sender_not_qc"]) == (0, 1)
    assert s["symbols"] == {"AD_SENDER_NOT_QC": 1}


def test_a_report_not_recorded_in_redis_then_recorded_is_one_message(tmp_path, url):
    """The same in the shared reassembly (engine/state/mo_parts.py, `--state redis://`): the report the journal
    refused was judged again whole when its part came again, a second message's line (refuse, then allow)."""
    chunks = _split(REPORT)
    with Pair(tmp_path, url, concat_timeout=0.3) as pair:
        real = pair.journal_full()
        pair.send_parts([(0, 1, 3, chunks[0]), (1, 2, 3, chunks[1]), (0, 3, 3, chunks[2])], ref=0x36)
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)
        pair.journal_back(real)
        pair.send_parts([(1, 3, 3, chunks[2])], ref=0x36)        # the SMSC's copy of the completing part
        assert wait(lambda: len(pair.reports()) == 1, 5)
        assert wait(lambda: [v["action"] for v in pair.verdicts()] == ["refuse", "allow"], 5)
        recs = pair.verdicts()
    assert [r.get("late", False) for r in recs] == [False, True] and recs[0]["concat"] == recs[1]["concat"]
    log = tmp_path / "verdicts.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = _report(tmp_path, log, pair.pipes[0])
    assert s["totals"]["sms"] == {"allow": 1, "tag": 0, "drop": 0, "refuse": 0}
    assert s["reports"]["S"] == 1 and s["late_parts"] == 1


def _line(ts, pdu, action="allow", hits=(), **kw):
    return {"ts": ts, "kind": "sms", "pdu": pdu, "account": "esme1", "sender": "SHOPABC", "recipient": "84912777070",
            "action": action, "score": 0.0, "hits": [{"symbol": s, "score": 0.0, "detail": d, "source": "t"}
                                                     for s, d in hits], "judge_us": 1.0, **kw}


def test_the_late_part_map_is_bounded_and_a_forgotten_message_counts_its_dnc_change_only(tmp_path, monkeypatch):
    """late.py keeps MAX_LATE_MESSAGES messages (the newest): a late line whose message was forgotten counts
    toward `late_parts_untied`; an ad hit on it is not counted (its message may have been counted an ad), a DNC
    change its judging made is (its message's line made none). A message whose line was a refusal with no verdict
    is counted under the verdict of the late line that got it judged."""
    import engine.report.aggregate as agg
    import engine.report.late as late
    monkeypatch.setattr(late, "MAX_LATE_MESSAGES", 2)
    monkeypatch.setattr(late, "MAX_EARLY", 1)
    t = "2026-03-02T10:00:0%d+07:00"
    ad = [("AD_SENDER_NOT_QC", "x")]
    recs = [_line(t % 0, "SubmitSm x1/2", concat="a"), _line(t % 1, "SubmitSm x1/2", concat="b"),
            _line(t % 2, "SubmitSm part 1/2 late", "drop", ad, late=True, concat="a"),     # tied: "a" is an ad
            _line(t % 3, "SubmitSm part 1/2 late", "drop", ad, late=True, concat="a"),     # once
            _line(t % 4, "SubmitSm x1/2", concat="c"),                                      # "a" forgotten
            _line(t % 5, "SubmitSm part 1/2 late", "drop", ad, late=True, concat="a"),
            _line(t % 6, "DeliverSm MO part 2/2 late", hits=[("DNC_REGISTERED", "84911000001 DNC S")],
                  late=True, concat="z"),
            # a 5656 command the journal could not record (a refusal with no verdict), then recorded by a late part
            {"ts": t % 7, "kind": "sms", "pdu": "DeliverSm MO x2/2", "account": "", "sender": "84911000002",
             "recipient": "5656", "action": "refuse", "status": 100, "reason": "not recorded", "concat": "r"},
            _line(t % 8, "DeliverSm MO part 2/2 late", hits=[("DNC_REGISTERED", "84911000002 DNC S")],
                  late=True, concat="r")]
    log = tmp_path / "verdicts.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = make_report([str(log)], tmp_path / "report", TZ, progress=False, with_plots=False)
    # the refused 5656 message counted under the verdict its late part got it
    assert s["totals"]["sms"] == {"allow": 4, "tag": 0, "drop": 0, "refuse": 0} and s["records"] == 4
    assert s["advertising_by_owner"][agg.UNREGISTERED]["volume"] == 1
    assert s["symbols"] == {"AD_SENDER_NOT_QC": 1, "DNC_REGISTERED": 1}
    assert s["dnc"] == {"registered": 2, "cancelled": 0}
    assert (s["late_parts"], s["late_parts_untied"]) == (5, 2)


def _multi_part(seq, ref, n, body, dests):
    return encode(P.SubmitMulti(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC",
                                dest_addresses=tuple((1, 1, 1, x) for x in dests), data_coding=1, esm_class=0x40,
                                short_message=bytes([5, 0, 3, ref, 2, n]) + body))


def test_a_submit_multi_its_late_part_made_an_ad_is_one_ad_to_each_destination(tmp_path):
    """A submit_multi is a message to each destination: each destination's late line names its own message
    (`"concat"` per destination), so the late part makes each one ad, once."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", CSKH, "senders.csv")
    pipe = build(data_dir=d, with_model=False)
    dests = ["84912777081", "84912777082"]
    log = tmp_path / "verdicts.jsonl"
    vlog = VerdictLog(open(log, "w"))
    with ProxyHarness(pipe, clock=lambda: TEN, settings=SmppSettings(concat_timeout=TIMEOUT), verdict_log=vlog) as h:
        s, _ = raw_session(h)
        s.sendall(_multi_part(10, 0x92, 2, b"re hon 30% tat ca san pham. Tu choi: TC gui 5656", dests))
        assert read_raw(s).command_status == 0
        time.sleep(TIMEOUT + 0.2)
        # the late part names the second destination as +84…: the same handset, the same message
        s.sendall(_multi_part(11, 0x92, 1, b"[QC] Shop ABC: cuoi tuan nay ", [dests[0], "+84912777082"]))
        read_raw(s)
    vlog.close()
    recs = _lines(log)
    assert [r.get("late", False) for r in recs] == [False, False, True, True]
    assert len({r["concat"] for r in recs[:2]}) == 2
    assert [r["concat"] for r in recs[:2]] == [r["concat"] for r in recs[2:]]
    s = _report(tmp_path, log, pipe)
    assert s["totals"]["sms"]["allow"] == 2 and s["records"] == 2 and s["late_parts_untied"] == 0
    assert s["advertising_by_owner"]["Shop ABC"]["volume"] == 2


def test_a_late_line_read_before_its_messages_line_is_tied_to_it(tmp_path):
    """`--log verdicts.log*` reads the newest file first: a late part's line in `verdicts.log` comes before its
    message's line in `verdicts.log.1`. It waits for it (what it adds counted then); a message of that key read
    later but written after the late line is another (its reference reused), and gets none of it."""
    ad = [("AD_SENDER_NOT_QC", "x")]
    new, old = tmp_path / "verdicts.log", tmp_path / "verdicts.log.1"
    new.write_text("".join(json.dumps(r) + "\n" for r in [
        _line("2026-03-02T00:00:05+07:00", "SubmitSm part 1/2 late", "drop", ad, late=True, concat="m"),
        _line("2026-03-02T00:00:06+07:00", "SubmitSm part 1/2 late", "drop", ad, late=True, concat="n")]))
    old.write_text("".join(json.dumps(r) + "\n" for r in [
        _line("2026-03-01T23:59:50+07:00", "SubmitSm x1/2", concat="m"),
        _line("2026-03-02T00:00:09+07:00", "SubmitSm x1/2", concat="n")]))      # (after its late line: another)
    s = make_report([str(new), str(old)], tmp_path / "report", TZ, progress=False, with_plots=False)
    assert s["totals"]["sms"]["allow"] == 2 and s["records"] == 2
    assert s["advertising_by_owner"] == {"(not in the sender registry)": {
        "volume": 1, "dropped": 0, "frequency_cap": 0, "hours": 0, "dnc": 0, "label": 0, "opt_out": 0,
        "sender_not_qc": 1}}
    assert s["symbols"] == {"AD_SENDER_NOT_QC": 1}
    assert (s["late_parts"], s["late_parts_untied"]) == (2, 1)


def test_a_concat_that_is_no_engine_id_is_kept_at_a_fixed_size():
    """review49: the bound is of messages (MAX_LATE_MESSAGES, MAX_EARLY), and a line's `"concat"` that is not the
    engine's 16 hex digits was kept as its text: a damaged or hand-made log with long ones (a line may hold 1 MiB)
    held up to 32,768 of them, 32 GiB. Such a value is kept as a 64-bit digest now (the same value ties alike)."""
    import sys

    from engine.report.late import LateParts, Message
    late = LateParts()
    m = Message(None, False, (), (), "allow", None)
    long_id = "x" * (1 << 20)
    late.remember(long_id, m, 10.0)
    late.defer("y" * (1 << 20), False, (), (), None, None, "", datetime.fromtimestamp(5.0, ZoneInfo("UTC")))
    assert all(sys.getsizeof(k) < 64 for k in [*late.messages, *late.early])
    assert late.get("x" * (1 << 20)) is m and late.get("x" * ((1 << 20) - 1)) is None
    assert late.get("00000000000000ff") is None


def test_a_model_a_late_part_was_judged_by_counts_alike_in_either_order_of_the_logs(tmp_path):
    """The classifier model behind an ML_SPAM hit that only a late part's line shows is in `models` whichever
    log is read first: with the late line read before its message's line (`--log verdicts.log*`) the hit was
    counted in `symbols` and left out of `models`."""
    new, old = tmp_path / "verdicts.log", tmp_path / "verdicts.log.1"
    late = _line("2026-03-02T10:00:05+07:00", "SubmitSm part 1/2 late", "drop", late=True, concat="00000000000000aa")
    late["hits"] = [{"symbol": "ML_SPAM", "score": 9.0, "detail": "p", "source": "model:m7"}]
    new.write_text(json.dumps(late) + "\n")
    old.write_text(json.dumps(_line("2026-03-02T10:00:00+07:00", "SubmitSm x1/2", concat="00000000000000aa")) + "\n")
    got = []
    for i, order in enumerate(([old, new], [new, old])):
        s = make_report([str(p) for p in order], tmp_path / f"r{i}", TZ, progress=False, with_plots=False)
        got.append((s["symbols"], s["models"], s["late_parts_untied"]))
    assert got[0] == got[1] == ({"ML_SPAM": 1}, {"m7": {"hits": 1, "first": "2026-03-02T10:00:05+07:00",
                                                          "last": "2026-03-02T10:00:05+07:00"}}, 0)
