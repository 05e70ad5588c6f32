"""Ads scheduled ahead cancelled at a DK DNC (engine/smpp_proxy/dnc_cancel.py): what bounds our own cancel_sm
traffic (a back-off per ad, a cap on those in flight), and the policy that decides (the rules in force)."""
import shutil
import time

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.dnc_cancel import IN_FLIGHT
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.scheduled import PendingAd
from engine.verdict import Message
from tests.test_smpp_dnc_cancel import with_senders, counting, NOW, SENDERS, _cancels, _submit, _wait
from tests.test_smpp_dnc_cancel_answers import _Sim
from tests.test_smpp_proxy import raw_session


pipe = pytest.fixture(with_senders, name="pipe")

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


class _Throttling(_Sim):
    def on_pdu(self, s, ev):
        if ev.command_id == C.CANCEL_SM:
            self.received.append((time.monotonic(), ev))
            return s.send(P.CancelSmResp(sequence_number=ev.sequence_number, command_status=C.ESME_RTHROTTLED))
        return super().on_pdu(s, ev)


class _Silent(_Sim):
    def on_pdu(self, s, ev):
        if ev.command_id == C.CANCEL_SM:            # never answered
            self.received.append((time.monotonic(), ev))
            return None
        return super().on_pdu(s, ev)


def test_a_cancel_the_smsc_keeps_refusing_for_now_backs_off(pipe):
    # was: one cancel_sm a second for as long as the SMSC throttles, up to the ad's delivery (30 days)
    with ProxyHarness(pipe, clock=lambda: NOW, simulator=_Throttling) as h:
        s, _ = raw_session(h)
        _submit(s, 2, "84912777601")
        h.run(lambda: pipe.lists.add_dnc(84912777601, "S"))
        assert _wait(lambda: len(_cancels(h)) >= 4, 12)
        at = [t for t, p in list(h.sim.received) if p.command_id == C.CANCEL_SM][:4]
    gaps = [b - a for a, b in zip(at, at[1:])]
    # 1, 2, 4 s after each refusal (the housekeeping's tick rounds each up by at most a second)
    assert 0.9 < gaps[0] < 2.4 and 1.9 < gaps[1] < 3.4 and 3.9 < gaps[2] < 5.4, gaps


def _many_barred(h, pipe, first: int, n: int) -> None:
    """`n` ads scheduled to first, first + 1, ..., then all put on the DNC list: the first IN_FLIGHT cancels sent."""
    s, _ = raw_session(h)
    for i in range(n):
        _submit(s, 2 + i, str(first + i))
    h.run(lambda: [pipe.lists.add_dnc(first + i, "S") for i in range(n)])
    assert _wait(lambda: len(_cancels(h)) >= IN_FLIGHT)


def test_at_most_in_flight_cancels_wait_for_an_answer_at_once(pipe):
    # a DNC import that bars many ads at once: a few window slots, not every one (the submits' windows)
    n = IN_FLIGHT + 8
    with ProxyHarness(pipe, clock=lambda: NOW, simulator=_Silent) as h:
        _many_barred(h, pipe, 84912777700, n)
        time.sleep(0.6)
        assert len(_cancels(h)) == IN_FLIGHT and len(h.proxy._cancelling) == IN_FLIGHT


def _pack_with(tmp_path, edit, extra=""):
    """The shipped pack with AD_TO_DNC's table edited (`edit(its text)`) and `extra` rules after it, in force."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "config" / "rules", rules)
    f = rules / "20-advertising-sms.toml"
    head, sep, rest = f.read_text().partition('symbol = "AD_TO_DNC"')
    table, nxt, tail = rest.partition("[[rule]]")
    f.write_text(head + sep + edit(table) + extra + nxt + tail)
    pipe = build(data_dir=d, with_model=False)
    assert pipe.reload_rules(rules) == []
    pipe.lists.add_dnc(84912777611, "S")
    return pipe


def _barred(pipe, text=b"[QC] Giam gia 30%. TC gui 5656"):
    """(what judging the ad at its submission does, what dnc_barred says of it scheduled)."""
    msg = Message("SHOPABC", "84912777611", text.decode(), NOW, "esme1", "mt", sender_ton=5)
    v = pipe.judge(msg, commit=False)
    return v.action.name, pipe.dnc_barred(Message("SHOPABC", "84912777611", "", NOW, "esme1", "mt", sender_ton=5))


def test_no_cancel_when_the_rules_in_force_let_ads_to_dnc_numbers_go(tmp_path):
    # policy as data: a carrier whose AD_TO_DNC tags instead of dropping (or has none) has nothing cancelled (its
    # score below the drop threshold: 15, the shipped score, drops it by the score table, see the next test)
    pipe = _pack_with(tmp_path, lambda t: t.replace('action = "drop"', 'action = "tag"', 1).replace(
        "score = 15.0", "score = 5.0", 1))
    assert _barred(pipe) == ("TAG", None)
    shipped = build(data_dir=tmp_path / "data", with_model=False)  # the pack as shipped: dropped, so cancelled
    shipped.lists.add_dnc(84912777611, "S")
    msg = Message("SHOPABC", "84912777611", "", NOW, "esme1", "mt", sender_ton=5)
    assert shipped.dnc_barred(msg).startswith("AD_TO_DNC: +84912777611 on list:dnc S")


def test_an_ad_of_an_id_space_no_link_has_is_dropped_with_a_warning(pipe, caplog):
    with ProxyHarness(pipe, clock=lambda: NOW) as h:
        ad = PendingAd("smsc-gone\x1fX1", "smsc-gone", "X1", "esme1", int(NOW.timestamp()) + 86400, 84912777621,
                       "", 5, 0, "SHOPABC", 1, 1, "84912777621")
        h.run(h.proxy.scheduled.add, ad)
        h.run(lambda: pipe.lists.add_dnc(84912777621, "S"))
        assert _wait(lambda: not h.proxy.scheduled.entries)
        assert _cancels(h) == [] and h.proxy.stats["scheduled_ads_cancel_failed"] == 1
    assert "no SMSC link of id space 'smsc-gone'" in caplog.text


def test_an_ad_whose_smsc_link_is_down_for_now_waits_for_it(pipe, caplog):
    # was: dropped from the index with "no SMSC link of id space" while its link was being bound again (a lost link,
    # the first ticks after a start): self.links holds the bound links only, not the configured ones
    with ProxyHarness(pipe, clock=lambda: NOW) as h:
        s, _ = raw_session(h)
        mid = _submit(s, 2, "84912777631")
        down = h.run(lambda: [h.proxy.links.pop() for _ in list(h.proxy.links)])     # as while it binds again
        h.run(lambda: pipe.lists.add_dnc(84912777631, "S"))
        time.sleep(2.5)
        assert len(h.proxy.scheduled) == 1 and h.proxy.stats["scheduled_ads_cancel_failed"] == 0
        h.run(h.proxy.links.extend, down)                                           # bound again
        assert _wait(lambda: [c for c in _cancels(h) if c.message_id == mid])
    assert "no SMSC link of id space" not in caplog.text


def test_a_rule_that_drops_by_its_score_alone_cancels(tmp_path):
    # was: only a forced `action = "drop"` counted; a rule whose score reaches [actions] drop by itself drops the ad
    # at its submission as surely (verdict.decide), and the scheduled one went to the DNC number
    pipe = _pack_with(tmp_path, lambda t: t.replace('action = "drop"\n', "", 1))
    action, why = _barred(pipe)
    assert action == "DROP" and why is not None and why.startswith("AD_TO_DNC: +84912777611 on list:dnc S"), why


HELPERS = """
[[rule]]
symbol = "__TO_DNC_S"
description = "recipient on the DNC list for SMS"
applies_to = ["sms-mt"]
[rule.when]
recipient_dnc = "S"

[[rule]]
symbol = "__CONSENTED"
description = "recipient opted in to the advertiser"
applies_to = ["sms-mt"]
[rule.when]
consent = true

"""


def test_a_drop_rule_on_dnc_through_helpers_cancels_and_honours_consent_so_written(tmp_path):
    # was: only `recipient_dnc = "S"` in the drop rule's own [rule.when]; "no ads to DNC numbers" written with
    # helpers (`__IS_AD and __TO_DNC_S and not __CONSENTED`) dropped the ad at submission, and nothing cancelled it
    when = 'expr = "__IS_AD"\nrecipient_dnc = "S"\nconsent = false\n'
    pipe = _pack_with(tmp_path, lambda t: t.replace(when, 'expr = "__IS_AD and __TO_DNC_S and not __CONSENTED"\n'),
                      HELPERS)
    action, why = _barred(pipe)
    assert action == "DROP" and why is not None and why.startswith("AD_TO_DNC: +84912777611 on list:dnc S"), why
    pipe.lists.add_consent("Shop ABC", 84912777611)                 # `not __CONSENTED`: consent lets it go
    assert _barred(pipe) == ("ALLOW", None)
    # an `or` branch is not required: a DKQC registration to a DNC number (DKQC_VIOLATION) bars no ad
    assert [r[0] for r in pipe._dnc_rules()] == ["AD_TO_DNC"]


def test_the_back_off_of_an_ad_no_longer_barred_is_forgotten(pipe):
    # was: an ad whose cancel was to be tried again, let go at its retry (consent given meanwhile) or gone (its
    # receipt, its delivery), kept its count of tries in _cancel_tries for as long as the process ran
    with ProxyHarness(pipe, clock=lambda: NOW, simulator=_Throttling) as h:
        s, _ = raw_session(h)
        _submit(s, 2, "84912777641")
        _submit(s, 3, "84912777642")
        h.run(lambda: [pipe.lists.add_dnc(n, "S") for n in (84912777641, 84912777642)])
        assert _wait(lambda: len(_cancels(h)) >= 2 and len(h.proxy._cancel_tries) == 2)
        h.run(pipe.lists.add_consent, "Shop ABC", 84912777641)         # let go at its retry
        h.run(lambda: h.proxy.scheduled.discard(next(k for k, a in h.proxy.scheduled.entries.items()
                                                     if a.recipient == 84912777642)))  # gone: its receipt
        assert _wait(lambda: not h.proxy._scheduled_retry, 4)
        assert h.proxy._cancel_tries == {} and len(h.proxy.scheduled) == 1


def test_ads_waiting_for_a_cancel_slot_are_not_judged_again_each_tick(pipe):
    # was: every ad past the IN_FLIGHT cap asked the registry again each second until a slot was free (a DNC import
    # that bars the index's 200,000 ads: ~1.5 s of the event loop every second, for as long as they wait)
    n = IN_FLIGHT + 8
    with ProxyHarness(pipe, clock=lambda: NOW, simulator=_Silent) as h:
        _many_barred(h, pipe, 84912777800, n)
        asked = []
        pipe.dnc_judge = counting(pipe.dnc_judge, asked)
        time.sleep(2.3)                                 # two ticks at least, the 32 still unanswered
        assert asked == [] and len(h.proxy._look) == 8         # (they wait in the look, unjudged)
