"""The regulator's report over the verdict lines of late parts (README "Known limits", the report in the CLI
table): a late part's line names its message (`"concat"`, as the message's own line does), so a message is
counted once in `totals.sms` and a late part that made it an ad puts it in "advertising by owner" once."""
import json
from zoneinfo import ZoneInfo

from engine.report import make_report

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def _line(ts, pdu, action="allow", hits=(), **kw):
    return {"ts": ts, "kind": "sms", "pdu": pdu, "account": "esme1", "sender": "SHOPABC", "recipient": "84912777070",
            "action": action, "score": 0.0, "hits": [{"symbol": s, "score": 0.0, "detail": d, "source": "t"}
                                                     for s, d in hits], "judge_us": 1.0, **kw}


def test_the_late_part_map_is_bounded_and_a_forgotten_message_counts_its_dnc_change_only(tmp_path, monkeypatch):
    """`_messages` keeps MAX_LATE_MESSAGES messages (the newest): a late line whose message was forgotten counts
    toward `late_parts_untied`; an ad hit on it is not counted (its message may have been counted an ad), a DNC
    change its judging made is (its message's line made none). A message whose line was a refusal with no verdict
    is counted under the verdict of the late line that got it judged."""
    import engine.report.aggregate as agg
    monkeypatch.setattr(agg, "MAX_LATE_MESSAGES", 2, raising=False)
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
