"""Ads scheduled ahead cancelled at a DK DNC (engine/smpp_proxy/dnc_cancel.py, scheduled.py): what the SMSC says
on the way (an intermediate notification), how it answers our cancel_sm (throttled, late), and the index's heap."""
import asyncio
import io
import time

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.pdu import Tlv
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.scheduled import ScheduledAds
from engine.smpp_proxy.simulator import SmscSimulator
from engine.verdictlog import VerdictLog
from tests.test_smpp_dnc_cancel import with_senders, counting, NOW, SENDERS, _ad, _cancels, _lines, _submit, _wait
from tests.test_smpp_proxy import raw_session, read_raw



pipe = pytest.fixture(with_senders, name="pipe")


class _Sim(SmscSimulator):
    def cancels(self) -> int:
        return sum(p.command_id == C.CANCEL_SM for _, p in self.received)


def test_an_intermediate_notification_leaves_the_ad_indexed(pipe):
    # SMPP 3.4 §5.2.12 esm_class 0x20: no final state (an SMSC may send one when it schedules the message)
    with ProxyHarness(pipe, clock=lambda: NOW) as h:
        s, _ = raw_session(h)
        mid = _submit(s, 2, "84912777501")
        body = f"id:{mid} sub:001 dlvrd:000 submit date:2603020800 done date:2603020800 stat:ENROUTE err:000 text:"
        assert h.run(h.sim.send_deliver, P.DeliverSm(
            sequence_number=1, source_addr_ton=1, source_addr="84912777501", dest_addr_ton=5,
            destination_addr="SHOPABC", esm_class=0x20, short_message=body.encode(),
            tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid.encode() + b"\x00"), Tlv(C.TAG_MESSAGE_STATE, b"\x01"))))
        s.settimeout(5)
        r = read_raw(s)
        assert r.command_id == C.DELIVER_SM and r.esm_class == 0x20
        s.sendall(encode(P.DeliverSmResp(sequence_number=r.sequence_number)))
        assert len(h.proxy.scheduled) == 1
        assert h.run(h.sim.send_mo, "84912777501", "5656", "DK DNC")
        assert _wait(lambda: [c for c in _cancels(h) if c.message_id == mid]), "the ad was not cancelled"


def test_a_cancel_the_smsc_throttles_is_sent_again(pipe):
    class Throttling(_Sim):
        def on_pdu(self, s, ev):
            if ev.command_id == C.CANCEL_SM:
                self.received.append((time.monotonic(), ev))
                st = C.ESME_RTHROTTLED if self.cancels() == 1 else 0
                return s.send(P.CancelSmResp(sequence_number=ev.sequence_number, command_status=st))
            return super().on_pdu(s, ev)
    out = io.StringIO()
    with ProxyHarness(pipe, clock=lambda: NOW, verdict_log=VerdictLog(out), simulator=Throttling) as h:
        s, _ = raw_session(h)
        mid = _submit(s, 2, "84912777511")
        h.run(lambda: pipe.lists.add_dnc(84912777511, "S"))
        assert _wait(lambda: len(_cancels(h)) == 2), "not sent again after ESME_RTHROTTLED"
        assert _wait(lambda: not h.proxy.scheduled.entries)
        assert h.proxy.stats["scheduled_ads_cancelled"] == 1 and h.proxy.stats["scheduled_ads_cancel_failed"] == 0
    line, = _lines(out, "cancel")
    assert line["message_id"] == mid and line["status"] == 0


def test_a_late_answer_after_a_retry_gives_one_line(pipe):
    # the first cancel_sm answered after the response timeout (taken: 0), its retry on the other link (the first
    # is stalled) then refused (cancelled already): one line, the one that says what happened
    answered = []

    class Slow(_Sim):
        def on_pdu(self, s, ev):
            if ev.command_id == C.CANCEL_SM:
                self.received.append((time.monotonic(), ev))
                st = 0 if self.cancels() == 1 else C.ESME_RCANCELFAIL

                def answer():
                    s.send(P.CancelSmResp(sequence_number=ev.sequence_number, command_status=st))
                    answered.append(st)
                asyncio.get_running_loop().call_later(2.5, answer)     # (after the retry: 1 s after the timeout)
                return
            return super().on_pdu(s, ev)
    out = io.StringIO()
    with ProxyHarness(pipe, clock=lambda: NOW, verdict_log=VerdictLog(out),
                      settings=SmppSettings(smsc_response_timeout=0.5),
                      prepare=lambda p: p.settings.smsc.append(p.settings.smsc[0]),       # two links
                      simulator=Slow) as h:
        s, _ = raw_session(h)
        assert len(h.proxy.links) == 2
        mid = _submit(s, 2, "84912777521")
        h.run(lambda: pipe.lists.add_dnc(84912777521, "S"))
        assert _wait(lambda: len(_cancels(h)) == 2, 6), "no retry after the timeout"
        assert _wait(lambda: len(answered) == 2, 30)    # both answers sent (2.5 s after each cancel) ...
        time.sleep(0.5)                                 # ... and read (loopback: milliseconds)
        assert h.proxy.stats["scheduled_ads_cancelled"] == 1 and h.proxy.stats["scheduled_ads_cancel_failed"] == 0
    line, = _lines(out, "cancel")
    assert line["message_id"] == mid and line["status"] == 0


def test_the_heap_does_not_keep_what_an_empty_index_dropped():
    ads = ScheduledAds()
    for i in range(5000):                   # scheduled, then cancelled by their ESME before a tick saw them
        ads.add(_ad(f"m{i}", 10_000 + i))
        ads.discard(f"m{i}")
    assert len(ads) == 0 and len(ads.heap) == 0


def test_a_cancel_line_is_no_verdict_in_the_metrics():
    # /metrics telfilter_verdicts counted each kind=cancel line as an SMS verdict of action "None"
    from datetime import datetime, timezone

    from engine.metrics import MeteredVerdictLog, Metrics
    m = Metrics(None)
    out = io.StringIO()
    vlog = MeteredVerdictLog(out, None, m)
    vlog.write_cancel(datetime(2026, 3, 2, tzinfo=timezone.utc), "esme1", "SHOPABC", "84912777531", "m1",
                      datetime(2026, 3, 3, tzinfo=timezone.utc), 0, "on list:dnc S")
    assert '"kind": "cancel"' in out.getvalue() and dict(m.verdicts) == {}


def test_a_retry_asks_again_about_its_own_ad_only(tmp_path):
    # a cancel the SMSC keeps throttling is tried each second; the other ads on the list (consent to their
    # advertiser: never cancelled) were judged again with it each second, O(the index) on the event loop
    class Throttling(_Sim):
        def on_pdu(self, s, ev):
            if ev.command_id == C.CANCEL_SM:
                self.received.append((time.monotonic(), ev))
                return s.send(P.CancelSmResp(sequence_number=ev.sequence_number, command_status=C.ESME_RTHROTTLED))
            return super().on_pdu(s, ev)
    d = tmp_path / "data"
    store = ListStore(d)
    store.import_csv("senders", SENDERS, "senders.csv")
    store.import_csv("consent", b"owner,number\nShop ABC,84912777541\nShop ABC,84912777542\n", "consent.csv")
    pipe = build(data_dir=d, with_model=False)
    judged = []
    pipe.dnc_judge = counting(pipe.dnc_judge, judged)
    with ProxyHarness(pipe, clock=lambda: NOW, simulator=Throttling) as h:
        s, _ = raw_session(h)
        for i, n in enumerate(("84912777541", "84912777542", "84912777543")):
            _submit(s, 2 + i, n)
        h.run(lambda: [pipe.lists.add_dnc(n, "S") for n in (84912777541, 84912777542, 84912777543)])
        assert _wait(lambda: len(_cancels(h)) >= 3, 6), "the throttled cancel was not tried again"
    assert len(judged) >= 5 and judged.count("+84912777541") == judged.count("+84912777542") == 1
