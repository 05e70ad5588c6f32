"""An ad the SMSC refused after telfilter let it through was not sent: its count toward the advertiser's caps
(AD_FREQUENCY_CAP: 3 a day per advertiser per recipient) is given back (Pipeline.refund). These tests go end to end
through the proxy and its SMSC simulator: refused submit_sm and submit_multi (every destination, or only the
unsuccessful ones of one taken), late refusals, concatenated ads, and replace_sm / cancel_sm corrections, which give
the old count back. A PDU the SMSC took, or whose answer never came (it may have been delivered), keeps its count;
counters of what a sender tries (floods, volumes) keep theirs. The shared fixtures and helpers of the
test_smpp_refund_* files are here; the counter stores' side is in test_smpp_refund_counters.py, a shared Redis
server's in test_smpp_refund_shared_store.py."""
from datetime import datetime

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppConfigError, SmppSettings, load_smpp_settings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.simulator import SmscSimulator
from tests.test_smpp_proxy import raw_session, read_raw, wait


SENDERS = (b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\n"
           b"SHOPCARE,Shop ABC,CSKH,2020-01-01,2099-12-31,\n")


NOON = datetime.fromisoformat("2026-03-02T10:00:00+07:00")     # inside 07:00-22:00


TEXT = b"[QC] Uu dai. TC gui 5656"


def _ad(seq, dst, text=TEXT, **kw):
    return encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                             destination_addr=dst, data_coding=1, short_message=text, **kw))


def _multi(seq, dests):
    return encode(P.SubmitMulti(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC",
                                dest_addresses=tuple((1, 1, 1, d) for d in dests), data_coding=1,
                                short_message=TEXT))


class _RefusingSim(SmscSimulator):
    """Answers submits with `reject` (0: as the simulator does); `silent`: not at all (a timeout)."""
    reject = 0
    silent = False
    nack = False

    def on_pdu(self, s, ev):
        if ev.command_id in (C.SUBMIT_SM, C.SUBMIT_MULTI, C.REPLACE_SM):
            if self.silent:
                return
            if self.nack:
                s.send(P.GenericNack(sequence_number=ev.sequence_number, command_status=C.ESME_RINVCMDID))
                return
            if self.reject:
                s.send(P.response_class(ev.command_id)(sequence_number=ev.sequence_number,
                                                       command_status=self.reject))
                return
        return super().on_pdu(s, ev)


@pytest.fixture
def pipe(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    return build(data_dir=d, with_model=False)


@pytest.fixture
def refusing(monkeypatch):
    import engine.smpp_proxy.harness as hmod
    monkeypatch.setattr(hmod, "SmscSimulator", _RefusingSim)


def _send(s, pdu):
    s.sendall(pdu)
    return read_raw(s).command_status


def test_ads_the_smsc_refused_do_not_use_up_the_cap(pipe, refusing):
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        h.sim.reject = C.ESME_RTHROTTLED
        for i in range(3):                       # the SMSC is busy: the ESME retries the same ad
            assert _send(s, _ad(10 + i, "84912777002")) == C.ESME_RTHROTTLED
        h.sim.nack = True                        # a generic_nack is a refusal too
        assert _send(s, _ad(15, "84912777002")) != 0
        h.sim.reject, h.sim.nack = 0, False
        for i in range(3):                       # taken: the three ads of the day
            assert _send(s, _ad(20 + i, "84912777002")) == 0
        assert _send(s, _ad(30, "84912777002")) != 0          # the 4th sent one: AD_FREQUENCY_CAP still holds
        assert len(h.sim.submits()) == 3


def test_a_submit_multi_the_smsc_refused_gives_back_every_destination(pipe, refusing):
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        h.sim.reject = C.ESME_RSYSERR
        for i in range(3):
            assert _send(s, _multi(10 + i, ["84912777003", "84912777004"])) == C.ESME_RSYSERR
        h.sim.reject = 0
        for i in range(3):
            assert _send(s, _multi(20 + i, ["84912777003", "84912777004"])) == 0
        assert _send(s, _ad(30, "84912777004")) != 0


def test_a_submit_multi_over_a_cap_by_itself_gives_back_the_destinations_before_the_drop(pipe):
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        # 84912777011 once, then 84912777012 four times: dropped whole at the fourth
        assert _send(s, _multi(10, ["84912777011"] + ["84912777012"] * 4)) != 0
        for i in range(3):                      # nothing was sent: three ads to each are the day's
            assert _send(s, _multi(20 + i, ["84912777011", "84912777012"])) == 0
        assert h.sim.submits() and len(h.sim.submits()) == 3


def test_an_ad_whose_answer_never_came_keeps_its_count_and_a_late_refusal_gives_it_back(pipe, refusing):
    from engine.smpp_proxy.server import SmppSettings
    st = SmppSettings(smsc_response_timeout=0.3)
    with ProxyHarness(pipe, clock=lambda: NOON, settings=st) as h:
        s, _ = raw_session(h)
        old = h.proxy.links[0]
        h.sim.silent = True                      # may have been delivered: it counts
        for i in range(3):                       # all in flight together (after a timeout the link is stalled)
            s.sendall(_ad(10 + i, "84912777005"))
        assert [read_raw(s).command_status for _ in range(3)] == [C.ESME_RSYSERR] * 3
        h.sim.silent = False
        # three timeouts in a row: the link is bound again (smsc.py), then the ad is judged
        assert wait(lambda: h.proxy.links and h.proxy.links[0] is not old and h.proxy.links[0].bound)
        assert _send(s, _ad(20, "84912777005")) != 0          # three unanswered ads used the day's cap
        assert h.sim.submits() == []


def test_a_late_refusal_gives_the_count_back(pipe):
    """The SMSC's answer came after the response timeout (the ESME had ESME_RSYSERR), and it is a refusal:
    the ad was not sent after all."""
    from engine.smpp_proxy.refund import Refund
    from engine.verdict import Message
    v = pipe.judge(Message("SHOPABC", "84912777006", TEXT.decode(), NOON, "esme1", "mt"))
    assert v.charged
    for _ in range(2):
        pipe.judge(Message("SHOPABC", "84912777006", TEXT.decode(), NOON, "esme1", "mt"))
    over = pipe.judge(Message("SHOPABC", "84912777006", TEXT.decode(), NOON, "esme1", "mt"), commit=False)
    assert "AD_FREQUENCY_CAP" in over.symbols

    from engine.smpp_proxy.smsc_link import LATE
    from engine.smpp_proxy.submit import SubmitPath

    class _Link:
        addr, where = ("127.0.0.1", 1), "127.0.0.1:1"
        id_space = ""

        def forward(self, raw, on_resp):
            self.on_resp = on_resp              # the window holds it; the test answers late below

    class _Sess:
        account = type("A", (), {"system_id": "esme1", "text_reading": "auto"})()
        in_flight = 0

    class _Proxy(SubmitPath):
        def __init__(self):
            self.pipeline, self.stats = pipe, {"late_responses": 0, "smsc_wrong_response": 0}
            self.clock = lambda: NOON
            self.settings = SmppSettings()
            self.upstream_held = {}
    link = _Link()
    from engine.smpp_proxy.codec import decode
    pdu = decode(encode(P.SubmitSm(sequence_number=1, source_addr="SHOPABC", destination_addr="84912777006")))
    _Proxy()._forward(_Sess(), pdu, None, link=link, refund=Refund.of(v))
    link.on_resp(P.SubmitSmResp(sequence_number=1, command_status=C.ESME_RTHROTTLED), LATE)
    again = pipe.judge(Message("SHOPABC", "84912777006", TEXT.decode(), NOON, "esme1", "mt"), commit=False)
    assert "AD_FREQUENCY_CAP" not in again.symbols


def test_a_concatenated_ad_is_given_back_only_when_every_part_was_refused(pipe, refusing):
    def parts(seq, dst, ref):
        udh = [bytes([5, 0, 3, ref, 2, i + 1]) for i in range(2)]
        return [_ad(seq + i, dst, udh[i] + (b"[QC] Uu dai phan %d. TC gui 5656" % i), esm_class=0x40)
                for i in range(2)]

    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        h.sim.reject = C.ESME_RTHROTTLED
        for k in range(3):                      # both parts refused: not sent
            for p in parts(10 + 2 * k, "84912777007", k):
                s.sendall(p)
            assert {read_raw(s).command_status for _ in range(2)} == {C.ESME_RTHROTTLED}
        h.sim.reject = 0
        for k in range(3):
            for p in parts(20 + 2 * k, "84912777007", 10 + k):
                s.sendall(p)
            assert {read_raw(s).command_status for _ in range(2)} == {0}
        assert _send(s, _ad(40, "84912777007")) != 0
        assert len(h.sim.submits()) == 6


def test_a_replace_sm_the_smsc_refused_gives_its_count_back(pipe, refusing):
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        s.sendall(_ad(10, "84912777010"))
        r = read_raw(s)
        assert r.command_status == 0 and r.message_id
        h.sim.reject = C.ESME_RREPLACEFAIL
        for i in range(3):                      # each judged and counted as one more ad; refused: given back
            s.sendall(encode(P.ReplaceSm(sequence_number=20 + i, message_id=r.message_id, source_addr_ton=5,
                                         source_addr="SHOPABC", short_message=b"[QC] Uu dai moi. TC gui 5656")))
            assert read_raw(s).command_status == C.ESME_RREPLACEFAIL
        h.sim.reject = 0
        for i in range(2):
            assert _send(s, _ad(30 + i, "84912777010")) == 0
        assert _send(s, _ad(40, "84912777010")) != 0


def test_flood_counters_keep_what_a_sender_tried(pipe):
    """Only advertisers' caps (counters keyed by owner) are given back: FLOOD_SAME_CONTENT counts attempts."""
    from engine.verdict import Message
    v = pipe.judge(Message("0912345678", "0912000111", "Chuc mung ban!", NOON, "esme1", "mt"))
    assert v.action.name != "DROP" and v.charged == ()


# ------------------------------------------------------------------ never a count of a message that was sent

def _rules_with_cap(tmp_path, n):
    import shutil
    from pathlib import Path
    d = tmp_path / f"rules{n}"
    if d.exists():
        return d
    shutil.copytree(Path(__file__).resolve().parents[1] / "config" / "rules", d)
    f = d / "20-advertising-sms.toml"
    old = 'counter = { key = ["owner", "recipient"], window = "24h", limit = 3, at = "delivery" }'
    assert old in f.read_text()
    f.write_text(f.read_text().replace(old, old.replace("limit = 3", f"limit = {n}")))
    return d


def test_a_submit_multi_taken_with_unsuccessful_destinations_gives_those_back(pipe, monkeypatch):
    import engine.smpp_proxy.harness as hmod

    class _PartialSim(SmscSimulator):
        def on_pdu(self, s, ev):
            if ev.command_id == C.SUBMIT_MULTI:
                s.send(P.SubmitMultiResp(sequence_number=ev.sequence_number, message_id="m1",
                                         unsuccess_smes=((1, 1, "84912777024", C.ESME_RINVDSTADR),)))
                return
            return super().on_pdu(s, ev)
    monkeypatch.setattr(hmod, "SmscSimulator", _PartialSim)
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        for i in range(3):
            assert _send(s, _multi(10 + i, ["84912777023", "84912777024"])) == 0
        assert _send(s, _ad(20, "84912777023")) != 0          # 3 delivered to 023: its cap is full
        for i in range(3):                                    # none reached 024
            assert _send(s, _ad(30 + i, "84912777024")) == 0


# ---------------------------------------------------------------- replace_sm / cancel_sm give the old count back
def _replace(seq, mid, text=TEXT, sched=""):
    return encode(P.ReplaceSm(sequence_number=seq, message_id=mid, source_addr_ton=5, source_addr="SHOPABC",
                              schedule_delivery_time=sched, short_message=text))


def _cancel(seq, mid, src="SHOPABC"):
    return encode(P.CancelSm(sequence_number=seq, message_id=mid, source_addr_ton=5, source_addr=src,
                             dest_addr_ton=1, destination_addr=""))


def _resp(s, pdu):
    s.sendall(pdu)
    return read_raw(s)


def test_a_correction_replaces_the_count_of_the_ad_it_replaces(pipe, refusing):
    """Two ads; a replace_sm of the second (a correction) the SMSC takes gives the second's count back and
    keeps its own: one more ad goes, a fourth does not (before, the correction was counted as a third).
    Judged without the count of the ad it replaces, one of the third goes (before: refused as a fourth)."""
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        mids = [_resp(s, _ad(1 + i, "84912777040")).message_id for i in range(2)]
        assert all(mids)
        assert _send(s, _replace(10, mids[1], TEXT + b" (sua)")) == 0
        assert _send(s, _replace(11, mids[1], TEXT + b" (sua lan 2)")) == 0     # and again
        third = _resp(s, _ad(12, "84912777040")).message_id
        assert third
        assert _send(s, _ad(13, "84912777040")) != 0                            # the fourth
        assert _send(s, _replace(14, third, TEXT + b" (sua)")) == 0             # no fourth
        assert _send(s, _ad(15, "84912777040")) != 0
        assert h.proxy.stats["counts_given_back"] == 3


def test_a_replacement_the_smsc_refuses_keeps_the_old_count_and_gives_back_its_own(pipe, refusing):
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        mids = [_resp(s, _ad(1 + i, "84912777041")).message_id for i in range(2)]
        h.sim.reject = C.ESME_RREPLACEFAIL                  # (already delivered, say)
        assert _send(s, _replace(10, mids[1], TEXT + b" (sua)")) == C.ESME_RREPLACEFAIL
        h.sim.reject = 0
        assert _send(s, _ad(11, "84912777041")) == 0          # the third
        assert _send(s, _ad(12, "84912777041")) != 0          # the fourth: the refused replacement took nothing
        assert h.proxy.stats["counts_given_back"] == 0


def test_a_replacement_that_moves_an_ad_to_another_day_moves_its_count(pipe, refusing):
    """Three ads scheduled for Tuesday 09:00; one moved to Wednesday 09:00 by replace_sm: Tuesday has room for
    one more, Wednesday for two."""
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        mids = [_resp(s, _ad(1 + i, "84912777042", schedule_delivery_time="260303090000028+")).message_id
                for i in range(3)]
        assert all(mids)
        assert _send(s, _replace(10, mids[0], sched="260304090000028+")) == 0
        tue = [_send(s, _ad(20 + i, "84912777042", schedule_delivery_time="260303100000028+")) for i in range(2)]
        wed = [_send(s, _ad(30 + i, "84912777042", schedule_delivery_time="260304120000028+")) for i in range(3)]
        assert tue[0] == 0 and tue[1] != 0, tue
        assert wed[:2] == [0, 0] and wed[2] != 0, wed


def test_a_cancelled_ad_gives_its_count_back_once(pipe, refusing):
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        mids = [_resp(s, _ad(1 + i, "84912777043")).message_id for i in range(3)]
        assert _send(s, _cancel(10, mids[0], src="OTHER")) == 0      # another source: the SMSC's to judge
        assert _send(s, _cancel(11, mids[1])) == 0
        assert _send(s, _cancel(12, mids[1])) == 0                   # cancelled again: nothing more given back
        assert _send(s, _ad(13, "84912777043")) == 0
        assert _send(s, _ad(14, "84912777043")) != 0
        assert h.proxy.stats["counts_given_back"] == 1


def test_a_care_message_replaced_or_cancelled_gives_nothing_back(pipe, refusing):
    """Only a message counted toward the cap has a count to give back (the note says so)."""
    care = b"Tai khoan cua quy khach da duoc cap nhat"
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        for i in range(3):
            assert _send(s, _ad(1 + i, "84912777044")) == 0
        mid = _resp(s, encode(P.SubmitSm(sequence_number=5, source_addr_ton=5, source_addr="SHOPCARE", dest_addr_ton=1,
                                         destination_addr="84912777045", data_coding=1, short_message=care))).message_id
        assert mid                                                   # (taken: a care message of a CSKH brand)
        assert _send(s, _cancel(6, mid, src="SHOPCARE")) == 0
        assert _send(s, _ad(7, "84912777044")) != 0
        assert h.proxy.stats["counts_given_back"] == 0


def test_a_cancel_the_smsc_answered_late_still_gives_the_count_back(pipe, refusing):
    """The ESME had ESME_RSYSERR (the response timeout), then the SMSC's success came: the ad was cancelled, its
    count goes (before, a late answer left the note as it was)."""
    from engine.smpp_proxy.server import SmppSettings
    with ProxyHarness(pipe, clock=lambda: NOON, settings=SmppSettings(smsc_response_timeout=0.3)) as h:
        s, _ = raw_session(h)
        mids = [_resp(s, _ad(1 + i, "84912777046")).message_id for i in range(3)]
        h.sim.answer_delay = 0.6
        assert _send(s, _cancel(10, mids[0])) == C.ESME_RSYSERR
        assert wait(lambda: h.proxy.stats["counts_given_back"] == 1)     # the SMSC's late success (not a 0.6 s sleep)
        h.sim.answer_delay = 0
        assert _send(s, _ad(11, "84912777046")) == 0
        assert _send(s, _ad(12, "84912777046")) != 0
        assert h.proxy.stats["counts_given_back"] == 1


def test_a_cancel_by_source_and_destination_is_refused_unless_configured(pipe, tmp_path):
    """Found by a probe: a cancel_sm with no message_id (every message from a source to a destination, SMPP 3.4
    §4.9) was relayed for any account; the SMSC sees one system_id, so one account cancelled another's scheduled
    messages from a brand it may not even send from. Refused ESME_RCANCELFAIL, never sent upstream; so is one naming
    an id this process never forwarded (ESME_RINVMSGID; found by a review); `[cancel_sm] unverified = "relay"`
    (one account behind the proxy) sends them."""
    def by_address(seq):
        return encode(P.CancelSm(sequence_number=seq, message_id="", source_addr_ton=5, source_addr="SHOPABC",
                                 dest_addr_ton=1, destination_addr="84912777046"))
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        assert _send(s, by_address(1)) == C.ESME_RCANCELFAIL
        assert _send(s, _cancel(2, "1A2B3C")) == C.ESME_RINVMSGID
        mid = _resp(s, _ad(3, "84912777047")).message_id
        assert _send(s, _cancel(4, mid)) == 0                    # its own message: relayed
        assert h.proxy.stats["cancel_unverified_refused"] == 2
        assert [p.message_id for _, p in h.sim.received if p.command_id == C.CANCEL_SM] == [mid]
    with ProxyHarness(pipe, clock=lambda: NOON, settings=SmppSettings(cancel_unverified="relay")) as h:
        s, _ = raw_session(h)
        assert _send(s, by_address(1)) == 0 and _send(s, _cancel(2, "1A2B3C")) == 0
    (tmp_path / "smpp.toml").write_text('[cancel_sm]\nunverified = "yes"\n')
    with pytest.raises(SmppConfigError, match=r"smpp.toml:2:1: \[cancel_sm\] unverified must be"):
        load_smpp_settings(tmp_path)


def test_a_query_for_an_id_this_process_never_forwarded_is_refused_unless_configured(pipe):
    """Found by a black-box SMPP probe at stop 35: a query_sm naming an id this process never forwarded (another
    account's it cannot see, a guess) went to the SMSC, which sees one system_id, ours, and answered the message's
    state. Refused ESME_RQUERYFAIL as a cancel_sm of such an id is (`[cancel_sm] unverified = "relay"` sends it)."""
    def query(seq, mid):
        return encode(P.QuerySm(sequence_number=seq, message_id=mid, source_addr="SHOPABC", source_addr_ton=5))
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        assert _send(s, query(1, "DEADBEEF")) == C.ESME_RQUERYFAIL
        mid = _resp(s, _ad(2, "84912777047")).message_id
        assert _send(s, query(3, mid)) == 0                      # its own message: relayed
        assert h.proxy.stats["query_unverified_refused"] == 1
        assert [p.message_id for _, p in h.sim.received if p.command_id == C.QUERY_SM] == [mid]
    with ProxyHarness(pipe, clock=lambda: NOON, settings=SmppSettings(cancel_unverified="relay")) as h:
        s, _ = raw_session(h)
        assert _send(s, query(1, "DEADBEEF")) == 0
