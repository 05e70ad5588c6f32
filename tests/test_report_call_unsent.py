"""`telfilter report` and the SIP screen's `call_unsent` lines (engine/report/unsent.py): a call judged and let
through that never left (the screen answered it 503 or 487 itself, its counts given back) is counted under
call/refuse and out of its owner's advertising volume, tied to its call's line by Call-ID and time -- whatever order
the logs are read in (newest first: its line read after the call_unsent line). A call_unsent line tied to no call
changes no count. The lines are the ones VerdictLog writes (write_call, write_call_unsent). Through serve and sipp:
tests/test_sip_unsent_serve.py."""
import json
from datetime import datetime, timedelta, timezone

from engine.lists import ListStore
from engine.report import make_report
from engine.verdict import Action, Hit, Verdict
from engine.verdictlog import VerdictLog

AD_CALLER = "02439998888"
T0 = datetime(2026, 3, 2, 3, 0, 0, 123456, tzinfo=timezone.utc)


def _lists(tmp_path):
    store = ListStore(tmp_path / "data")
    store.import_csv("senders", f"sender,owner,category,valid_from,valid_to,accounts\n{AD_CALLER},Shop ABC,QC,,,\n"
                     .encode())
    return store.load()


def _write(path, *entries):
    """Each entry: ("call", when, call_id, action[, hits]) or ("unsent", when, call_id, judged)."""
    vlog = VerdictLog(str(path))
    for e in entries:
        if e[0] == "call":
            hits = tuple(Hit(s, 1.0) for s in (e[4] if len(e) > 4 else ()))
            v = Verdict(Action[e[3].upper()], 0.5, hits)
            vlog.write_call(e[1], e[2], AD_CALLER, "0912345678", "127.0.0.1:5080", v, 9.0)
        else:
            vlog.write_call_unsent(e[1], e[2], AD_CALLER, "0912345678", "127.0.0.1:5080", e[3], 503, "next hop down")
    vlog.close()


def _report(tmp_path, logs):
    return make_report(logs, tmp_path / "out", timezone.utc, progress=False, with_plots=False, lists=_lists(tmp_path))


def test_an_unsent_call_is_counted_refused_and_not_in_its_owners_volume(tmp_path):
    later = T0 + timedelta(milliseconds=3)
    _write(tmp_path / "v.log", ("call", T0, "c1", "allow"), ("unsent", later, "c1", T0),
           ("call", later, "c1", "allow"))                                     # its retry, sent
    s = _report(tmp_path, [tmp_path / "v.log"])
    assert s["totals"]["call"] == {"allow": 1, "tag": 0, "drop": 0, "refuse": 1}
    assert s["advertising_by_owner"]["Shop ABC"]["volume"] == 1
    assert (s["calls_unsent"], s["calls_unsent_untied"], s["records"], s["inputs"]["malformed"]) == (1, 0, 2, 0)


def test_an_unsent_tagged_ad_call_gives_back_its_violations_too(tmp_path):
    _write(tmp_path / "v.log", ("call", T0, "c2", "tag", ["AD_CALL_TO_DNC"]), ("unsent", T0, "c2", T0))
    s = _report(tmp_path, [tmp_path / "v.log"])
    assert s["totals"]["call"]["refuse"] == 1 and s["totals"]["call"]["tag"] == 0
    assert (s["advertising_by_owner"]["Shop ABC"]["volume"], s["advertising_by_owner"]["Shop ABC"]["dnc"]) == (0, 0)
    assert s["symbols"] == {"AD_CALL_TO_DNC": 1}                            # (the judging fired it: a hit still)


def test_logs_read_newest_first_tie_the_unsent_line_to_its_call_read_later(tmp_path):
    _write(tmp_path / "v.log.1", ("call", T0, "c3", "allow"), ("call", T0, "c4", "allow"))
    _write(tmp_path / "v.log", ("unsent", T0 + timedelta(seconds=2), "c3", T0))
    s = _report(tmp_path, [tmp_path / "v.log", tmp_path / "v.log.1"])
    assert s["totals"]["call"] == {"allow": 1, "tag": 0, "drop": 0, "refuse": 1}
    assert (s["calls_unsent"], s["calls_unsent_untied"], s["advertising_by_owner"]["Shop ABC"]["volume"]) == (1, 0, 1)


def test_an_unsent_line_tied_to_no_call_changes_no_count(tmp_path):
    """Another call's time on the same Call-ID (a Call-ID reused for call after call), or no call line read."""
    _write(tmp_path / "v.log", ("call", T0, "c5", "allow"), ("unsent", T0, "c5", T0 + timedelta(microseconds=1)),
           ("unsent", T0, "c6", T0))
    s = _report(tmp_path, [tmp_path / "v.log"])
    assert s["totals"]["call"] == {"allow": 1, "tag": 0, "drop": 0, "refuse": 0}
    assert (s["calls_unsent"], s["calls_unsent_untied"]) == (0, 2)


def test_an_unsent_line_without_its_calls_time_is_a_malformed_line(tmp_path):
    bad = {"ts": T0.isoformat(), "kind": "call_unsent", "call_id": "c7", "caller": AD_CALLER, "callee": "0912345678",
           "ingress": "127.0.0.1:5080", "status": 503, "reason": "x"}
    (tmp_path / "v.log").write_text(json.dumps(bad) + "\n" + json.dumps({**bad, "judged": T0.isoformat(),
                                                                          "status": "503"}) + "\n")
    s = _report(tmp_path, [tmp_path / "v.log"])
    assert s["inputs"]["malformed"] == 2 and s["calls_unsent_untied"] == 0


def test_an_unsent_line_counts_on_its_calls_day_whatever_its_own(tmp_path):
    """A call judged just before midnight whose call_unsent line is written just after: with --to the call's day it
    is still counted refused; with --from the next day neither line counts (its call is outside the period)."""
    night = datetime(2026, 3, 2, 23, 59, 59, 999000, tzinfo=timezone.utc)
    _write(tmp_path / "v.log", ("call", night, "c8", "allow"), ("unsent", night + timedelta(seconds=2), "c8", night))
    kw = dict(progress=False, with_plots=False, lists=_lists(tmp_path))
    s = make_report([tmp_path / "v.log"], tmp_path / "a", timezone.utc, end=night.date(), **kw)
    assert s["totals"]["call"] == {"allow": 0, "tag": 0, "drop": 0, "refuse": 1} and s["calls_unsent"] == 1
    s = make_report([tmp_path / "v.log"], tmp_path / "b", timezone.utc, start=night.date() + timedelta(days=1), **kw)
    assert s["totals"]["call"]["refuse"] == 0 and (s["calls_unsent"], s["calls_unsent_untied"]) == (0, 0)


def test_an_unsent_line_ties_to_its_call_by_the_time_not_the_way_it_is_written(tmp_path):
    """A log written again by a shipper (`Z` for `+00:00`, another offset, the fraction's trailing zeros): `judged`
    names the same instant as its call's `ts` in other characters. It was tied to no call (counted allow and in the
    advertiser's volume); a time that differs by a microsecond is still another call."""
    _write(tmp_path / "v.log", ("call", T0, "c9", "allow"), ("call", T0, "c10", "allow"), ("call", T0, "c11", "allow"))
    unsent = {"ts": "2026-03-02T03:00:02Z", "kind": "call_unsent", "caller": AD_CALLER, "callee": "0912345678",
              "ingress": "127.0.0.1:5080", "status": 503, "reason": "next hop down"}
    with open(tmp_path / "v.log", "a") as f:
        for call_id, judged in (("c9", "2026-03-02T03:00:00.123456Z"), ("c10", "2026-03-02T10:00:00.1234560+07:00"),
                                ("c11", "2026-03-02T03:00:00.123457+00:00")):
            f.write(json.dumps({**unsent, "call_id": call_id, "judged": judged}) + "\n")
    s = _report(tmp_path, [tmp_path / "v.log"])
    assert s["totals"]["call"] == {"allow": 1, "tag": 0, "drop": 0, "refuse": 2}
    assert (s["calls_unsent"], s["calls_unsent_untied"], s["inputs"]["malformed"]) == (2, 1, 0)
    assert s["advertising_by_owner"]["Shop ABC"]["volume"] == 1
