"""Counts at delivery and their give-back, found by the stop-32 final review: max_schedule_days is range-checked,
a message refused for its parts' schedules is refused whole (late parts too), an ad is offered for a give-back
only when every cap counted at delivery counted it, and a cancel_sm after the ad's delivery receipt gives nothing
back."""
import io
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings, SmppConfigError, load_smpp_settings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from engine.verdict import Message
from tests.test_smpp_proxy import raw_session, read_raw

ICT = timezone(timedelta(hours=7))
SENDERS = (b"sender,owner,category,valid_from,valid_to,accounts\n"
           b"SHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\nSHOPXYZ,Shop XYZ,QC,2020-01-01,2099-12-31,\n")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pipe(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    return build(data_dir=d, with_model=False)


# ------------------------------------------------------------------ 1. max_schedule_days is not range-checked
@pytest.mark.parametrize("bad", ["0", "-1"])
def test_a_max_schedule_days_that_refuses_every_schedule_is_a_config_error(tmp_path, bad):
    """receipt_wait, concat_timeout, ... are range-checked (config_checks.SERVER_RANGES); max_schedule_days is
    not: 0 or -1 loads, and then every scheduled submit_sm / replace_sm is refused ESME_RINVSCHED."""
    (tmp_path / "smpp.toml").write_text(f"[server]\nmax_schedule_days = {bad}\n")
    with pytest.raises(SmppConfigError, match="max_schedule_days"):
        load_smpp_settings(tmp_path)


# ------------------------------------------------------------------ 2. a spread refusal is not "whole"
def _part(seq, ref, total, n, text, sched, dst="84912777301"):
    return encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                             destination_addr=dst, esm_class=0x40, data_coding=1, schedule_delivery_time=sched,
                             short_message=bytes([5, 0, 3, ref, total, n]) + text))


def test_a_late_part_of_a_message_refused_for_its_spread_is_refused_too(pipe):
    """README: 'more is refused ESME_RINVSCHED whole'. Parts 1-2 of 3 (scheduled 09:00 and 15:00) are refused
    at concat_timeout; part 3, late, is taken as a new message and forwarded after another concat_timeout
    (a refusal for max_message_chars marks the reference refused: concat.refuse; this one does not)."""
    now = datetime(2026, 3, 2, 8, 0, tzinfo=ICT)
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.3), clock=lambda: now,
                      verdict_log=VerdictLog(io.StringIO())) as h:
        s, _ = raw_session(h)
        s.sendall(_part(1, 0x51, 3, 1, b"[QC] Uu dai lon ", "260302090000028+"))
        s.sendall(_part(2, 0x51, 3, 2, b"hom nay. ", "260302150000028+"))
        first = [read_raw(s).command_status for _ in range(2)]
        s.sendall(_part(3, 0x51, 3, 3, b"[QC] Giam 50%. TC gui 5656", "260302150000028+"))
        third = read_raw(s).command_status
        fwd = h.sim.submits()
    assert first == [C.ESME_RINVSCHED] * 2
    assert third == C.ESME_RINVSCHED and not fwd, (third, len(fwd))


# ------------------------------------------------------------------ 3. a give-back takes every at-delivery cap's stamp
LOAN_RULE = '''
[[rule]]
symbol = "LOAN_AD_CAP"
description = "more than 1 loan ad from one advertiser to one recipient within 24 h"
applies_to = ["sms-mt"]
action = "drop"
score = 15.0
[rule.when]
expr = "__IS_AD"
keywords = ["vay"]
counter = { key = ["owner", "recipient"], window = "24h", limit = 1, at = "delivery" }
'''


def test_an_ad_counted_by_some_of_the_caps_at_delivery_is_not_offered_for_a_give_back(tmp_path):
    """A second at = "delivery" advertiser cap (policy as data: at most 1 loan ad a day per advertiser and
    recipient). Ad A (no loan) and loan ad B, both for 09:00:00 to one recipient: A counts toward
    AD_FREQUENCY_CAP only, B toward both. Pipeline.uncharge removes a stamp of that second from every cap counted
    at delivery, so giving A back would take B's LOAN_AD_CAP stamp: A is not offered (an over-count), B is."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "config" / "rules", rules)
    (rules / "25-loan.toml").write_text(LOAN_RULE)
    pipe = build(data_dir=d, with_model=False)
    assert pipe.reload_rules(rules) == []
    sub = datetime(2026, 3, 2, 8, 0, tzinfo=ICT)
    at9 = datetime(2026, 3, 3, 9, 0, tzinfo=ICT)

    def msg(text):
        m = Message("SHOPABC", "84912777302", text, at9, "esme1", "mt")
        m.submitted = sub
        return m
    a = pipe.judge(msg("[QC] Giam gia 30%. TC gui 5656"))
    b = pipe.judge(msg("[QC] Vay tieu dung lai suat 0%. TC gui 5656"))
    assert a.action.name != "DROP" and b.action.name != "DROP" and a.charged
    assert pipe.delivery_charge(a) is None
    assert pipe.delivery_charge(b) == int(at9.timestamp())


# ------------------------------------------------------------------ 5. a cancel after the delivery receipt gives the count back
def test_a_cancel_sm_after_the_ads_delivery_receipt_gives_nothing_back(pipe):
    """Three ads sent at once, each delivered (the proxy relays their DELIVRD receipts); the ESME then sends a
    cancel_sm for each, which an SMSC that acknowledges cancel requests without checking state (the simulator;
    several real ones queue cancels and answer 0) answers 0: every count is given back and three more ads go --
    six delivered to one recipient within minutes. The proxy saw each id's final receipt; the count should
    stay (clear the note's charged bit on a final receipt, or give back only a charge still ahead of the clock)."""
    from tests.test_smpp_refund_smsc_answers import _ad as _rad, _cancel, _send
    noon = datetime(2026, 3, 2, 10, 0, tzinfo=ICT)
    with ProxyHarness(pipe, clock=lambda: noon, receipt_delay=0.05) as h:
        s, _ = raw_session(h)
        mids = []
        for i in range(3):
            s.sendall(_rad(10 + i, "84912777304", registered_delivery=1))
            mids.append(read_raw(s).message_id)
        receipts = 0
        while receipts < 3:                                    # the DELIVRD receipts, acknowledged
            pdu = read_raw(s)
            if pdu.command_id == C.DELIVER_SM:
                receipts += 1
                s.sendall(encode(P.DeliverSmResp(sequence_number=pdu.sequence_number)))
        assert [_send(s, _cancel(20 + i, m)) for i, m in enumerate(mids)] == [0, 0, 0]
        more = [_send(s, _rad(30 + i, "84912777304")) for i in range(3)]
    assert more[0] != 0, more          # 8f0c6c9: [0, 0, 0]
