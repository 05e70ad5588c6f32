"""An ad scheduled ahead whose recipient registers DK DNC before its delivery is cancelled at the SMSC
(engine/smpp_proxy/dnc_cancel.py, scheduled.py). Before, DNC was judged at submission only: the SMSC delivered it
to a number that had said no (README Known limits)."""
import io
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.numbers import format_number
from engine.smpp_proxy.accounts import SmppSettings, load_smpp_settings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.scheduled import PendingAd, ScheduledAds
from engine.smpp_proxy.simulator import SmscSimulator
from engine.verdictlog import VerdictLog
from tests.test_serve import wait_for
from tests.test_smpp_proxy import raw_session, read_raw

ICT = timezone(timedelta(hours=7))
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=ICT)
TOMORROW_9 = "260303090000028+"             # 2026-03-03 09:00 +07:00 (quarter hours: 28 = +7 h)
SENDERS = (b"sender,owner,category,valid_from,valid_to,accounts\n"
           b"SHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\nBANKCARE,Bank X,CSKH,2020-01-01,2099-12-31,\n")
AD = b"[QC] Giam gia 30%. TC gui 5656"


def with_senders(tmp_path):
    """A pipeline on a data dir whose sender registry has SHOPABC (QC) and BANKCARE (CSKH): the `pipe` fixture of
    the scheduled-ads tests (test_smpp_dnc_cancel_*.py, test_smpp_relay_link_down.py)."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    return build(data_dir=d, with_model=False)


pipe = pytest.fixture(with_senders, name="pipe")


def _submit(s, seq, dst, sched=TOMORROW_9, src="SHOPABC", text=AD, **kw):
    s.sendall(encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr=src, dest_addr_ton=1,
                                destination_addr=dst, data_coding=1, schedule_delivery_time=sched,
                                short_message=text, **kw)))
    r = _answer(s)
    assert r.command_status == 0, hex(r.command_status)
    return r.message_id


def _answer(s):
    """The next response, a receipt met on the way answered."""
    while True:
        r = read_raw(s)
        if r.command_id != C.DELIVER_SM:
            return r
        s.sendall(encode(P.DeliverSmResp(sequence_number=r.sequence_number)))


def _cancels(h):
    return [p for _, p in h.sim.received if p.command_id == C.CANCEL_SM]


def _wait(cond, timeout=5.0):
    return wait_for(cond, timeout)


def counting(make, into: list):
    """Pipeline.dnc_judge that notes each recipient judged in `into` (as lists export it: "+84912..."); `make`: the
    pipeline's own."""
    def judges():
        judge = make()

        def noted(sender, sender_ton, account, recipient, due):
            into.append(format_number(recipient))
            return judge(sender, sender_ton, account, recipient, due)
        return noted
    return judges


def _lines(buf, kind):
    return [json.loads(x) for x in buf.getvalue().splitlines() if f'"kind": "{kind}"' in x]


def test_an_ad_scheduled_ahead_is_cancelled_when_its_recipient_registers_dk_dnc(pipe):
    out = io.StringIO()
    with ProxyHarness(pipe, clock=lambda: NOW, verdict_log=VerdictLog(out)) as h:
        s, _ = raw_session(h)
        mid = _submit(s, 2, "84912777401")
        other = _submit(s, 3, "84912777402")                 # another recipient's ad stays
        now_ad = _submit(s, 4, "84912777401", sched="")      # sent at once: nothing to cancel
        assert len(h.proxy.scheduled) == 2 and now_ad
        assert h.run(h.sim.send_mo, "84912777401", "5656", "DK DNC")
        assert _wait(lambda: _cancels(h)), "no cancel_sm"
        time.sleep(1.3)                                     # a tick more: nothing else cancelled, nothing twice
        got = _cancels(h)
        assert [(c.message_id, c.source_addr, c.source_addr_ton, c.destination_addr, c.dest_addr_ton)
                for c in got] == [(mid, "SHOPABC", 5, "84912777401", 1)]
        assert list(h.proxy.scheduled.entries) != [] and other in {a.message_id for a in
                                                                    h.proxy.scheduled.entries.values()}
        assert h.proxy.stats["scheduled_ads_cancelled"] == 1
        assert h.proxy.stats["counts_given_back"] == 1          # its count toward the advertiser's cap
    line, = _lines(out, "cancel")
    assert line["message_id"] == mid and line["status"] == 0 and line["recipient"] == "84912777401"
    assert line["delivery"].startswith("2026-03-03T02:00:00") and "dnc S" in line["reason"]


def test_an_ad_with_the_recipients_consent_and_a_care_message_are_not_cancelled(tmp_path):
    d = tmp_path / "data"
    store = ListStore(d)
    store.import_csv("senders", SENDERS, "senders.csv")
    store.import_csv("consent", b"owner,number\nShop ABC,84912777411\n", "consent.csv")
    pipe = build(data_dir=d, with_model=False)
    with ProxyHarness(pipe, clock=lambda: NOW) as h:
        s, _ = raw_session(h)
        _submit(s, 2, "84912777411")                                            # consent to Shop ABC
        _submit(s, 3, "84912777412", src="BANKCARE", text=b"Tai khoan cua quy khach da duoc kich hoat")  # CSKH
        assert len(h.proxy.scheduled) == 1                  # the care message is no ad: not indexed
        assert h.run(h.sim.send_mo, "84912777411", "5656", "DK DNC")
        assert h.run(h.sim.send_mo, "84912777412", "5656", "DK DNC")
        assert _wait(lambda: pipe.lists.in_dnc(84912777412, "S") and pipe.lists.in_dnc(84912777411, "S"))
        time.sleep(1.5)
        assert _cancels(h) == [] and len(h.proxy.scheduled) == 1
        # the consent withdrawn by the operator (`lists remove consent`, which serve reloads): the ad is barred now,
        # cancelled at that reload, not at the next DNC change
        assert store.remove("consent", "84912777411", extra=["Shop ABC"])
        from engine.serve_reload import reload_lists
        assert h.call(reload_lists(pipe)) is None
        assert _wait(lambda: [c.destination_addr for c in _cancels(h)] == ["84912777411"])


def test_a_message_a_replace_sm_turns_into_an_ad_ahead_is_cancelled_at_a_dk_dnc(pipe):
    """A QC brandname's DKQC registration request (no ad) scheduled for tomorrow, then replaced by an ad: it is an ad
    ahead from the replace_sm the SMSC took, cancelled when its recipient registers DK DNC. (It was not indexed:
    the destination as submitted is kept for ads only; the cancel_sm names the message_id and leaves the
    destination NULL, as SMPP 3.4 §4.9.1 allows.)"""
    dkqc = b"DKQC: Shop ABC xin phep gui tin QC. Dong y soan Y gui 5656"
    out = io.StringIO()
    with ProxyHarness(pipe, clock=lambda: NOW, verdict_log=VerdictLog(out)) as h:
        s, _ = raw_session(h)
        mid = _submit(s, 2, "84912777701", text=dkqc)
        assert len(h.proxy.scheduled) == 0                  # a registration request: no ad
        s.sendall(encode(P.ReplaceSm(sequence_number=3, message_id=mid, source_addr_ton=5, source_addr="SHOPABC",
                                     short_message=AD)))
        assert _answer(s).command_status == 0
        assert _wait(lambda: len(h.proxy.scheduled) == 1)
        assert h.run(h.sim.send_mo, "84912777701", "5656", "DK DNC")
        assert _wait(lambda: _cancels(h)), "no cancel_sm"
        c, = _cancels(h)
        assert (c.message_id, c.source_addr, c.source_addr_ton, c.destination_addr) == (mid, "SHOPABC", 5, "")
        assert _wait(lambda: h.proxy.stats["scheduled_ads_cancelled"] == 1)
    line, = _lines(out, "cancel")
    assert line["message_id"] == mid and line["status"] == 0 and line["recipient"] == "+84912777701"


def test_a_dnc_change_by_the_operator_cancels_too_and_a_refused_cancel_is_logged(pipe):
    class Refusing(SmscSimulator):
        def on_pdu(self, s, ev):
            if ev.command_id == C.CANCEL_SM:        # delivered already, says the SMSC
                self.received.append((time.monotonic(), ev))
                return s.send(P.CancelSmResp(sequence_number=ev.sequence_number, command_status=C.ESME_RCANCELFAIL))
            return super().on_pdu(s, ev)
    out = io.StringIO()
    with ProxyHarness(pipe, clock=lambda: NOW, verdict_log=VerdictLog(out), simulator=Refusing) as h:
        s, _ = raw_session(h)
        mid = _submit(s, 2, "84912777421")
        h.run(lambda: pipe.lists.add_dnc(84912777421, "S"))      # ctl lists, the shared journal, a reload ...
        assert _wait(lambda: _cancels(h))
        assert _wait(lambda: not h.proxy.scheduled.entries)
        assert h.proxy.stats["scheduled_ads_cancel_failed"] == 1 and h.proxy.stats["counts_given_back"] == 0
    line, = _lines(out, "cancel")
    assert line["message_id"] == mid and line["status"] == C.ESME_RCANCELFAIL


def test_a_receipt_or_the_esmes_own_cancel_takes_the_ad_out_of_the_index(pipe):
    with ProxyHarness(pipe, clock=lambda: NOW, receipt_delay=0.05) as h:
        s, _ = raw_session(h)
        _submit(s, 2, "84912777431", registered_delivery=1)    # (the simulator's receipt comes at once)
        s.settimeout(5)
        r = read_raw(s)
        assert r.command_id == C.DELIVER_SM
        s.sendall(encode(P.DeliverSmResp(sequence_number=r.sequence_number)))
        assert _wait(lambda: not h.proxy.scheduled.entries)
        mid = _submit(s, 3, "84912777432")
        assert len(h.proxy.scheduled) == 1
        s.sendall(encode(P.CancelSm(sequence_number=4, message_id=mid, source_addr_ton=5, source_addr="SHOPABC",
                                    dest_addr_ton=1, destination_addr="")))
        r = _answer(s)
        assert r.command_id == C.CANCEL_SM_RESP and r.command_status == 0 and not h.proxy.scheduled.entries


def test_off_in_smpp_toml_nothing_is_indexed(pipe, tmp_path):
    (tmp_path / "smpp.toml").write_text("[cancel_sm]\nscheduled_on_dnc = false\n")
    settings = load_smpp_settings(tmp_path)
    assert settings.cancel_scheduled_on_dnc is False
    with ProxyHarness(pipe, clock=lambda: NOW, settings=settings) as h:
        s, _ = raw_session(h)
        _submit(s, 2, "84912777441")
        assert len(h.proxy.scheduled) == 0
    assert SmppSettings().cancel_scheduled_on_dnc is True


def test_off_in_smpp_toml_the_last_runs_ads_are_not_cancelled_either(pipe):
    # was: turned off across a restart, the ads the journal gave back (indexed while it was on) were still cancelled
    settings = SmppSettings()
    settings.cancel_scheduled_on_dnc = False
    with ProxyHarness(pipe, clock=lambda: NOW, settings=settings) as h:
        h.run(h.proxy.scheduled.add, _ad("m1", int(NOW.timestamp()) + 86400, 84912777442))     # (as `open` reads)
        h.run(lambda: pipe.lists.add_dnc(84912777442, "S"))
        time.sleep(1.5)
        assert _cancels(h) == [] and h.proxy.stats["scheduled_ads_cancel_sent"] == 0


def _ad(key, due, n=84912777451):
    return PendingAd(key, "", key, "esme1", due, n, "", 5, 0, "SHOPABC", 1, 1, str(n))


def test_the_index_is_bounded_and_expires():
    ads = ScheduledAds(bound=3)
    assert all(ads.add(_ad(f"m{i}", 1000 + i, 84912777450 + i % 2)) for i in range(3))
    assert not ads.add(_ad("m3", 2000)) and ads.unindexed == 1
    from pyroaring import BitMap64
    assert [a.key for a in ads.to(BitMap64([84912777450]))] == ["m0", "m2"]
    assert ads.expire(1000) == 1 and len(ads) == 2
    assert ads.discard("m2").key == "m2" and [a.key for a in ads.to(BitMap64([84912777450]))] == []
    assert ads.hids == {}                           # (no journal: a harness's proxy)


def test_the_journal_gives_the_index_back_after_a_crash(tmp_path):
    import asyncio
    import msgpack

    from engine.smpp_proxy.scheduled import _unpack
    path = tmp_path / "scheduled_ads.journal"

    async def run():
        loop = asyncio.get_running_loop()
        a = ScheduledAds()
        assert a.open(path, loop, now=0) == 0
        a.add(_ad("m1", 1001))
        a.add(_ad("m2", 1002))
        a.add(_ad("m3", 1003, 84912777452))
        a.discard("m2")
        assert await a.log.writer.idle(5)
        a.log.writer.close()                        # killed: no rewrite at a stop
        b = ScheduledAds()
        assert b.open(path, loop, now=1001) == 1 and list(b.entries) == ["m3"]      # m1 due: sent; m2 gone
        assert b.to(__import__("pyroaring").BitMap64([84912777452]))[0].key == "m3"
        assert await b.close() == 1
        c = ScheduledAds()
        assert c.open(path, loop, now=1001) == 1   # a clean stop's rewrite reads back the same
        await c.close()
    asyncio.run(run())
    assert _unpack(b"\xc1") is None and _unpack(msgpack.packb(["k", 1])) is None
    assert _unpack(msgpack.packb(list(_ad("m9", 5)))) == _ad("m9", 5)


def test_of_two_records_of_one_ad_the_later_is_read_back(tmp_path):
    # was: the first read won. Re-timed (replace_sm) or given again, an ad's old record goes before its new one is
    # added; a gone record the writer refused (full) left both live, and the start read back the old delivery time
    import asyncio

    from engine.smpp_proxy.heldjournal import RecordLog
    from engine.smpp_proxy.scheduled import _pack
    path = tmp_path / "scheduled_ads.journal"

    async def run():
        loop = asyncio.get_running_loop()
        rl = RecordLog(path, "t", "scheduled ad")
        rl.open(loop)
        rl.add("m1", _pack(_ad("m1", 2000)))
        rl.add("m1", _pack(_ad("m1", 3000)))        # (the gone record of the first: refused)
        assert await rl.writer.idle(5)
        rl.writer.close()
        a = ScheduledAds()
        assert a.open(path, loop, now=1000) == 1 and a.entries["m1"].due == 3000
        assert list(a.log.records) == [a.hids["m1"]]
        await a.close()
    asyncio.run(run())


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_serve_keeps_the_index_across_a_restart(tmp_path, stop):
    """`serve`: an ad scheduled for tomorrow, a stop (clean, or kill -9), a start, then the recipient's DK DNC: the ad
    is cancelled by the new process (DATA_DIR/smpp/scheduled_ads.journal)."""
    import signal

    from tests.test_smpp_receipts import Esme, ServeBeside
    ListStore(tmp_path / "data").import_csv("senders", SENDERS, "senders.csv")
    when = (datetime.now(ICT) + timedelta(days=1)).replace(hour=10, minute=0, second=0)
    sched = when.strftime("%y%m%d%H%M%S") + "028+"
    run = ServeBeside(tmp_path)
    try:
        p, h = run.start(1)
        e = Esme(h)
        e.s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                                      destination_addr="84912777461", data_coding=1, schedule_delivery_time=sched,
                                      short_message=AD)))
        r = e.next(lambda x: x.command_id == C.SUBMIT_SM_RESP)
        assert r.command_status == 0
        journal = tmp_path / "data" / "smpp" / "scheduled_ads.journal"
        if stop == "SIGKILL":
            # its record written first (a crash loses what the journal's writer thread has not written yet): waited
            # for, not slept for -- a fixed 0.3 s bet that the writer thread's write came within it (it is ~1 ms;
            # a stalling disk or a starved thread is longer). The journal is rewritten empty at the start, so any
            # byte in it is the ad's record
            assert _wait(lambda: journal.stat().st_size > 0, 30), (tmp_path / "err1.log").read_text()[-2000:]
            p.kill()
            p.wait(30)
        else:
            p.send_signal(signal.SIGTERM)
            assert p.wait(30) == 0
        assert journal.stat().st_size > 0
        run.start(2)
        assert run.sim.run(run.sim.sim.send_mo, "84912777461", "5656", "DK DNC")
        assert _wait(lambda: [c for _, c in list(run.sim.sim.received)
                              if c.command_id == C.CANCEL_SM and c.message_id == r.message_id], 10), \
            (tmp_path / "err2.log").read_text()[-2000:]
    finally:
        run.close()
