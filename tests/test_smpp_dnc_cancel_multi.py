"""A submit_multi's ad scheduled ahead is cancelled, whole, when one of its recipients registers DK DNC before its
delivery (dnc_cancel.py, scheduled.py). It was not indexed: one message_id for several recipients, so the SMSC
delivered the ad to a number that had said no (README Known limits, until stop 53). One cancel_sm names the
message_id (SMPP 3.4 §4.9.1: NULL destination and service_type) and cancels every recipient's copy, as a drop at
its submission would have dropped the PDU whole; each copy has its line."""
import io
import time

from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.scheduled import PendingAd, ScheduledAds, member_key
from engine.verdictlog import VerdictLog
from tests.test_smpp_dnc_cancel import AD, NOW, TOMORROW_9, _answer, _cancels, _lines, _wait, pipe  # noqa: F401
from tests.test_smpp_proxy import raw_session, read_raw

A, B, C3 = "84912777801", "84912777802", "84912777803"


def _multi(s, seq, dests, **kw):
    s.sendall(encode(P.SubmitMulti(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC",
                                   dest_addresses=tuple((1, 1, 1, d) for d in dests), data_coding=1,
                                   schedule_delivery_time=TOMORROW_9, short_message=AD, **kw)))
    r = _answer(s)
    assert r.command_id == C.SUBMIT_MULTI_RESP and r.command_status == 0, hex(r.command_status)
    return r.message_id


def test_a_scheduled_submit_multi_ad_is_cancelled_whole_when_one_recipient_registers_dk_dnc(pipe):
    out = io.StringIO()
    with ProxyHarness(pipe, clock=lambda: NOW, verdict_log=VerdictLog(out)) as h:
        s, _ = raw_session(h)
        mid = _multi(s, 2, [A, B, C3])
        assert len(h.proxy.scheduled) == 3                  # one entry per recipient
        assert h.run(h.sim.send_mo, B, "5656", "DK DNC")
        assert _wait(lambda: _cancels(h)), "no cancel_sm"
        assert _wait(lambda: h.proxy.stats["scheduled_ads_cancelled"] == 3)
        c, = _cancels(h)
        assert (c.message_id, c.source_addr, c.source_addr_ton, c.destination_addr, c.service_type) == \
            (mid, "SHOPABC", 5, "", "")
        assert not h.proxy.scheduled.entries and not h.proxy.scheduled.groups
    lines = _lines(out, "cancel")
    assert sorted(x["recipient"] for x in lines) == ["+" + A, "+" + B, "+" + C3]
    assert {x["message_id"] for x in lines} == {mid} and {x["status"] for x in lines} == {0}
    barred, = [x for x in lines if x["recipient"] == "+" + B]
    assert "dnc S" in barred["reason"]
    assert all("PDU_CANCELLED" in x["reason"] and B in x["reason"] for x in lines if x is not barred)


def test_two_recipients_of_one_submit_multi_on_dnc_make_one_cancel_sm(pipe):
    with ProxyHarness(pipe, clock=lambda: NOW) as h:
        s, _ = raw_session(h)
        _multi(s, 2, [A, B])
        h.run(lambda: (pipe.lists.add_dnc(int(A), "S"), pipe.lists.add_dnc(int(B), "S")))
        assert _wait(lambda: h.proxy.stats["scheduled_ads_cancelled"] == 2)
        time.sleep(1.3)                                     # a tick more: nothing cancelled twice
        assert len(_cancels(h)) == 1


def test_a_receipt_takes_out_its_recipients_copy_and_the_esmes_cancel_the_whole_submit_multi(pipe):
    with ProxyHarness(pipe, clock=lambda: NOW, receipt_delay=30) as h:
        s, _ = raw_session(h)
        mid = _multi(s, 2, [A, B, C3])
        key = next(iter(h.proxy.scheduled.groups))
        # B's receipt (an SMSC delivered B's copy): B's entry goes, A's and C's stay
        sm = next(p for p in h.sim.submits() if p.command_id == C.SUBMIT_MULTI)
        link = next(x for x in h.sim.sessions if x.bound)
        h.run(h.sim._receipt, link, sm, mid, (1, 1, B))
        r = read_raw(s)
        assert r.command_id == C.DELIVER_SM and r.source_addr == B
        s.sendall(encode(P.DeliverSmResp(sequence_number=r.sequence_number)))
        assert _wait(lambda: len(h.proxy.scheduled) == 2)
        assert set(h.proxy.scheduled.entries) == {member_key(key, int(A)), member_key(key, int(C3))}
        s.sendall(encode(P.CancelSm(sequence_number=3, message_id=mid, source_addr_ton=5, source_addr="SHOPABC")))
        r = _answer(s)
        assert r.command_id == C.CANCEL_SM_RESP and r.command_status == 0
        assert not h.proxy.scheduled.entries and not h.proxy.scheduled.groups


def test_a_submit_multi_a_destination_of_which_the_smsc_refused_indexes_the_others(pipe):
    with ProxyHarness(pipe, clock=lambda: NOW) as h:
        real = h.sim.on_pdu

        def unsuccessful_b(sess, ev):
            if ev.command_id != C.SUBMIT_MULTI:
                return real(sess, ev)
            h.sim.received.append((time.monotonic(), ev))
            sess.send(P.SubmitMultiResp(sequence_number=ev.sequence_number, message_id="M1",
                                        unsuccess_smes=((1, 1, B, C.ESME_RINVDSTADR),)))
        h.sim.on_pdu = unsuccessful_b
        s, _ = raw_session(h)
        _multi(s, 2, [A, B])
        assert sorted(a.recipient for a in h.proxy.scheduled.entries.values()) == [int(A)]


def test_the_index_keeps_a_submit_multis_copies_together_across_its_journal(tmp_path):
    import asyncio
    due = int(NOW.timestamp()) + 86400

    def ad(n):
        return PendingAd(member_key("\x1fM9", n), "", "M9", "esme1", due, n, "", 5, 0, "SHOPABC", 0, 0, "")

    async def run():
        loop = asyncio.get_running_loop()
        s = ScheduledAds()
        s.open(tmp_path / "scheduled_ads.journal", loop, int(NOW.timestamp()))
        for n in (int(A), int(B), int(C3)):
            s.add(ad(n))
        assert s.siblings(member_key("\x1fM9", int(A))) == tuple(member_key("\x1fM9", int(n)) for n in (A, B, C3))
        s.discard(member_key("\x1fM9", int(B)))
        await s.close()
        t = ScheduledAds()
        assert t.open(tmp_path / "scheduled_ads.journal", loop, int(NOW.timestamp())) == 2
        assert t.groups == {"\x1fM9": (member_key("\x1fM9", int(A)), member_key("\x1fM9", int(C3)))}
        assert [x.recipient for x in t.discard_message("\x1fM9")] == [int(A), int(C3)]
        assert not t.entries and not t.groups
        await t.close()
    asyncio.run(run())
