"""A late part (after `concat_timeout`) of a concatenated ad that was let through and counted holds its message's
place under the advertiser's cap: the late part of the day's third ad to a recipient is no fourth. It is still
judged on its text (with its earlier parts'), a late part of a message not counted under a cap is tested as a new
message there, and its verdict line says `"late": true`, so the regulator's report counts its ad once."""
import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from engine.app import build
from engine.lists import ListStore
from engine.report import make_report
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from engine.verdict import Action, Message
from tests.test_smpp_proxy import raw_session, read_raw

SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\n"
TEN = datetime.fromisoformat("2026-03-02T10:00:00+07:00")          # within Decree 91's 07:00-22:00
TIMEOUT = 0.3
RCPT = "84912777050"
HEAD, TAIL = b"[QC] Uu dai cuoi tuan, giam gia. ", b"Tu choi: TC gui 5656"


def _part(seq, ref, n, body, dst=RCPT):
    return encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                             destination_addr=dst, data_coding=1, esm_class=0x40,
                             short_message=bytes([5, 0, 3, ref, 2, n]) + body))


def _multi_part(seq, ref, n, body, dests):
    return encode(P.SubmitMulti(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC",
                                dest_addresses=tuple((1, 1, 1, x) for x in dests), data_coding=1, esm_class=0x40,
                                short_message=bytes([5, 0, 3, ref, 2, n]) + body))


def _pipe(tmp_path, blacklist=False):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    if blacklist:
        ListStore(d).import_csv("blacklist", b"kind,value\ndomain,phish.example\n")
    return build(data_dir=d, with_model=False)


def _three_ads(s, late_tail=TAIL, part=_part):
    """Two two-part ads whose parts come together, then a third whose second part comes after concat_timeout:
    the statuses of the third's parts."""
    for i, ref in enumerate((0x51, 0x52)):
        s.sendall(part(10 + 2 * i, ref, 1, HEAD))
        s.sendall(part(11 + 2 * i, ref, 2, TAIL))
        assert [read_raw(s).command_status for _ in range(2)] == [0, 0], f"ad {i + 1}"
    s.sendall(part(20, 0x53, 1, HEAD))
    first = read_raw(s).command_status                  # judged alone at the timeout: the day's third ad
    time.sleep(TIMEOUT + 0.2)
    s.sendall(part(21, 0x53, 2, late_tail))
    return first, read_raw(s).command_status


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _four_ads(tmp_path, vlog=None, state=None):
    """Three two-part ads to one recipient at 10:00, the third's second part late, then a fourth: the pipeline (and
    the state store `state(pipe)` installed once the proxy runs, closed at the end; None: in process)."""
    pipe = _pipe(tmp_path)
    with ProxyHarness(pipe, clock=lambda: TEN, settings=SmppSettings(concat_timeout=TIMEOUT), verdict_log=vlog) as h:
        store = h.call(state(pipe)) if state is not None else None
        try:
            s, _ = raw_session(h)
            assert _three_ads(s) == (0, 0), "the third ad's late part was refused as a fourth"
            s.sendall(_part(30, 0x54, 1, HEAD))
            s.sendall(_part(31, 0x54, 2, TAIL))
            assert [read_raw(s).command_status for _ in range(2)] != [0, 0]       # the fourth: AD_FREQUENCY_CAP
            assert len(h.sim.submits()) == 6
        finally:
            if store is not None:
                h.call(store.close())
    return pipe, store


def test_the_late_part_of_the_days_third_ad_goes_out(tmp_path):
    """Found by the Decree 91 probe: the late part was refused (AD_FREQUENCY_CAP, "4 messages ... (limit 3)") as a
    fourth ad after its first part had gone out."""
    _four_ads(tmp_path)


def test_the_report_counts_an_ad_with_a_late_part_once(tmp_path):
    """The late part's verdict line was a second line for its ad, with nothing to tell it apart: the regulator's
    report counted the advertiser's three ads of the day as four (and a fourth, dropped, as a fifth)."""
    log = tmp_path / "verdicts.jsonl"
    vlog = VerdictLog(open(log, "w"))
    pipe, _ = _four_ads(tmp_path, vlog)
    vlog.close()
    recs = _lines(log)
    assert [r.get("late", False) for r in recs] == [False, False, False, True, False]
    # (the third ad judged on its first part alone lacks the opt-out: tagged; with its late part it has it)
    assert [r["action"] for r in recs] == ["allow", "allow", "tag", "allow", "drop"]
    summary = make_report([str(log)], tmp_path / "report", ZoneInfo("Asia/Ho_Chi_Minh"), lists=pipe.lists,
                          progress=False, with_plots=False)
    assert summary["totals"]["sms"] == {"allow": 2, "tag": 1, "drop": 1, "refuse": 0}
    ads = summary["advertising_by_owner"]["Shop ABC"]
    assert (ads["volume"] - ads["dropped"], ads["dropped"], ads["frequency_cap"]) == (3, 1, 1)
    assert summary["late_parts"] == 1 and summary["records"] == 4


def test_a_late_part_is_still_judged_on_its_text(tmp_path):
    """Holding its place under the cap lets no content through: a blacklisted link in the late part drops it."""
    pipe = _pipe(tmp_path, blacklist=True)
    with ProxyHarness(pipe, clock=lambda: TEN, settings=SmppSettings(concat_timeout=TIMEOUT)) as h:
        s, _ = raw_session(h)
        first, late = _three_ads(s, late_tail=b"Xem http://phish.example/x Tu choi: TC gui 5656")
        assert first == 0 and late != 0
        assert len(h.sim.submits()) == 5


def test_a_late_submit_multi_part_of_the_third_ad_goes_out(tmp_path):
    """The same for a submit_multi's parts, each destination's place held (`_judge_multi ... commit=False`)."""
    dests = ["84912777061", "84912777062"]
    pipe = _pipe(tmp_path)
    log = tmp_path / "verdicts.jsonl"
    vlog = VerdictLog(open(log, "w"))
    with ProxyHarness(pipe, clock=lambda: TEN, settings=SmppSettings(concat_timeout=TIMEOUT), verdict_log=vlog) as h:
        s, _ = raw_session(h)
        assert _three_ads(s, part=lambda seq, ref, n, body: _multi_part(seq, ref, n, body, dests)) == (0, 0)
        s.sendall(_part(30, 0x61, 1, HEAD, dests[1]))
        s.sendall(_part(31, 0x61, 2, TAIL, dests[1]))
        assert [read_raw(s).command_status for _ in range(2)] != [0, 0]       # the fourth to either
    vlog.close()
    # a line per destination; the late part's say so
    assert [r.get("late", False) for r in _lines(log)] == [False] * 6 + [True] * 2 + [False]


def test_a_late_part_holds_only_the_places_its_message_was_counted_in(tmp_path):
    """Pipeline.judge with Message.counted: a message judged before all its parts came keeps the places it was
    counted in (Verdict.counted); a late part is not counted against those, and is tested as a new message under
    any other key: a message that held no place (not counted, or counted for another recipient) does not slip
    under the cap."""
    pipe = _pipe(tmp_path)

    def ad(i, rcpt=RCPT, counted=None):
        m = Message("SHOPABC", rcpt, f"[QC] Uu dai {i}. Tu choi: TC gui 5656", TEN, "esme1")
        m.counted = counted
        return m
    other = pipe.judge(ad(0, "84912777099", frozenset()))
    assert other.action is Action.ALLOW and other.counted
    pipe.judge(ad(1))
    pipe.judge(ad(2))
    third = pipe.judge(ad(3, counted=frozenset()))
    assert third.action is Action.ALLOW and third.counted and third.counted.isdisjoint(other.counted)
    assert pipe.judge(ad(3, counted=third.counted), commit=False).action is Action.ALLOW
    for held in (None, frozenset(), other.counted):
        v = pipe.judge(ad(3, counted=held), commit=False)
        assert v.action is Action.DROP and "AD_FREQUENCY_CAP" in v.symbols, held
    assert pipe.judge(ad(4)).action is Action.DROP              # and nothing was counted by the late judging
