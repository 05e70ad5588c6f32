"""Issue 12 (SMPP), the SMSC side: a misbehaving SMSC (poison MO, a hung link, a full window, late
answers), the SMSC link's lean wire path, and receipts that overtake their submit_sm_resp (issue 17).
The ESME side (bypass, attacker ESMEs, the verdict log) is in test_smpp_inline_safety_verdict.py
and test_smpp_inline_safety_binds.py."""
import time

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_inline_safety_verdict import GOOD, logged, send_submit, submit  # noqa: F401,F811  (logged: fixture)
from tests.test_smpp_proxy import pipe, raw_session, raw_submit, read_raw, wait  # noqa: F401,F811  (pipe: fixture)


# ---------------------------------------------------------------- a misbehaving SMSC

def test_poison_mo_answered_with_error_link_stays_up(logged):
    h, _ = logged
    link = h.proxy.links[0]
    poison = P.DeliverSm(source_addr="84912345678", destination_addr="5656", esm_class=0x40,
                         short_message=bytes.fromhex("f00003010201"))
    for _ in range(3):
        assert h.run(h.sim.send_deliver, poison)
    assert wait(lambda: len(h.sim.mo_responses) == 3)
    assert all(r.command_status not in (0, C.ESME_RX_T_APPN) for r in h.sim.mo_responses)
    assert h.proxy.links == [link] and link.bound
    s, _ = raw_session(h)
    assert raw_submit(s, 40).command_status == 0


def test_hung_smsc_detected_and_replaced(pipe):
    st = SmppSettings(enquire_link_interval=0.5, smsc_response_timeout=0.5, smsc_stall_after=0.3)
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=st) as h:
        s, _ = raw_session(h)
        assert send_submit(s, 1).command_status == 0
        old = h.proxy.links[0]
        h.run(h.sim.hang)
        assert send_submit(s, 2).command_status == C.ESME_RSYSERR      # sent into the hang: outcome unknown
        t0 = time.monotonic()
        assert send_submit(s, 3).command_status == C.ESME_RTHROTTLED  # the link is known stalled: retry later
        assert time.monotonic() - t0 < 0.5
        assert wait(lambda: h.proxy.links and h.proxy.links[0] is not old and h.proxy.links[0].bound, 5)
        assert any(p.command_id == C.ENQUIRE_LINK for p in h.sim.ignored)
        assert send_submit(s, 4).command_status == 0


def test_enquire_link_sent_when_window_is_full(pipe):
    st = SmppSettings(enquire_link_interval=0.3, smsc_response_timeout=30, smsc_window=1)
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=st) as h:
        h.sim.stall = True
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=1, source_addr=GOOD, destination_addr="849", short_message=b"x")))
        assert wait(lambda: sum(p.command_id == C.ENQUIRE_LINK for _, p in h.sim.received) >= 2, 3)


def test_late_smsc_answer_keeps_receipt_routing(pipe):
    st = SmppSettings(smsc_response_timeout=0.3)
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=st) as h:
        h.sim.answer_delay = 0.8
        s, _ = raw_session(h)
        assert raw_submit(s, 1).command_status == C.ESME_RSYSERR
        assert wait(lambda: h.proxy.stats["late_responses"] == 1)
        assert h.proxy.msgid_account.get("00000001") == "esme1"


def test_per_link_response_timeout(tmp_path):
    from engine.smpp_proxy.accounts import load_smpp_settings
    (tmp_path / "smpp.toml").write_text('[upstream]\nresponse_timeout = 10\n'
                                        'smsc = [{address = "127.0.0.1:2776", response_timeout = 25}, "127.0.0.1:2777"]\n')
    s = load_smpp_settings(tmp_path)
    assert s.smsc == ["127.0.0.1:2776", "127.0.0.1:2777"] and s.smsc_links["127.0.0.1:2776"]["response_timeout"] == 25


# ---------------------------------------------------------------- lean wire path

def test_smsc_link_lean_path_any_chunking():
    """submit_sm_resp frames read from bytes and everything else via the codec give the same
    events whatever the segment boundaries."""
    import asyncio
    from engine.smpp_proxy.smsc_link import SmscLink

    class Proxy:
        settings = SmppSettings()
        stats: dict = {}

        def __init__(self):
            self.delivered = []

        def handle_smsc_deliver(self, link, pdu):
            self.delivered.append(pdu.short_message)

    stream = (encode(P.SubmitSmResp(sequence_number=1, message_id="A1"))
              + encode(P.DeliverSm(sequence_number=9, source_addr="1", destination_addr="2", short_message=b"mo"))
              + encode(P.SubmitSmResp(sequence_number=2, command_status=C.ESME_RTHROTTLED))
              + encode(P.DataSmResp(sequence_number=3, message_id="B2", tlvs=(Tlv(0x0425, b"\x00"),)))
              + encode(P.SubmitSmResp(sequence_number=4, message_id="x" * 64)))

    async def run(step):
        proxy, got = Proxy(), []
        link = SmscLink(proxy, ("127.0.0.1", 1))
        for seq in (1, 2, 3, 4):
            link.window.add(seq, 0.0, lambda r, st: got.append((r.sequence_number, st, r.message_id, bytes(r.raw))))
        for i in range(0, len(stream), step):
            link.data_received(stream[i:i + step])
        return got, proxy.delivered

    for step in (1, 3, 16, 17, 50, len(stream)):
        got, delivered = asyncio.run(run(step))
        assert [g[:3] for g in got] == [(1, 0, "A1"), (2, C.ESME_RTHROTTLED, ""), (3, 0, "B2"), (4, 0, "x" * 64)], step
        assert delivered == [b"mo"], step


def test_tag_spliced_into_raw_bytes_equals_reencoding():
    from engine.smpp_proxy.codec import append_tlv, decode, prefix_user_data, view_sm
    p = P.SubmitSm(sequence_number=7, service_type="CMT", source_addr="SHOP", destination_addr="8491",
                   validity_period="261231235959000+", esm_class=0x40, data_coding=8,
                   short_message=b"\x05\x00\x03\x01\x02\x01hi", tlvs=(Tlv(0x1401, b""),))
    raw = encode(p)
    assert append_tlv(raw, 0x1400, b"3;X") == encode(P.replace(p, tlvs=p.tlvs + (Tlv(0x1400, b"3;X"),)))
    sm = b"\x05\x00\x03\x01\x02\x01[?]hi"
    spliced = prefix_user_data(view_sm(raw), b"[?]")          # the prefix goes after the UDH
    assert spliced == encode(P.replace(p, short_message=sm))
    assert decode(spliced).short_message == sm


# ---------------------------------------------------------------- issue 17: receipts before their resp

def test_receipt_before_its_resp_is_held_and_delivered(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.02) as h:
        h.sim.answer_delay = 0.4                       # the receipt overtakes the submit_sm_resp
        s, _ = raw_session(h)
        r = submit(s, 5, registered_delivery=1)
        assert r.command_id == C.SUBMIT_SM_RESP and r.command_status == 0
        dr = read_raw(s)
        assert dr.command_id == C.DELIVER_SM and P.tlv(dr, C.TAG_RECEIPTED_MESSAGE_ID).rstrip(b"\0").decode() == r.message_id
        s.sendall(encode(P.DeliverSmResp(sequence_number=dr.sequence_number)))
        assert wait(lambda: len(h.sim.mo_responses) == 1)
        assert h.sim.mo_responses[0].command_status == 0 and h.proxy.stats["receipts_early"] == 1


def test_unknown_receipt_never_acknowledged_and_dropped(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=SmppSettings(receipt_wait=0.3)) as h:
        def receipt(body, mid=None):
            tl = (Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid + b"\0"),) if mid else ()
            return P.DeliverSm(source_addr="8491", destination_addr="849", esm_class=C.ESM_TYPE_DELIVERY_RECEIPT,
                               short_message=body, tlvs=tl)
        h.run(h.sim.send_deliver, receipt(b"id:DEAD1 stat:DELIVRD", b"DEAD1"))
        h.run(h.sim.send_deliver, receipt(b"stat:DELIVRD"))
        assert wait(lambda: len(h.sim.mo_responses) == 2)
        assert sorted(r.command_status for r in h.sim.mo_responses) == [C.ESME_RX_T_APPN, C.ESME_RX_P_APPN]


def test_an_smsc_answer_to_no_request_is_counted(pipe):
    """An answer whose sequence the link never sent (or answered twice) is dropped, counted (found by the SMSC-side
    probe: it went without a trace), and the link stays up."""
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        s, _ = raw_session(h)
        assert raw_submit(s, 40).command_status == 0

        def stray():
            sess = next(x for x in h.sim.sessions if x.bound)
            sess.send(P.SubmitSmResp(sequence_number=0x7FFF0000, message_id="stray"))
            return True
        assert h.run(stray)
        assert wait(lambda: h.proxy.stats["smsc_unmatched_responses"] == 1)
        assert raw_submit(s, 41).command_status == 0 and h.proxy.links[0].bound


def test_an_enquire_link_answered_after_it_was_given_up_is_not_counted_unmatched(pipe):
    """A link retiring (the SMSC's unbind, a lost bind) forgets its enquire_links under way, and one that times
    out is not kept for a late answer: their answers, when they come, were counted in smsc_unmatched_responses as
    answers to no request (review42)."""
    import time
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        s, _ = raw_session(h)
        assert raw_submit(s, 40).command_status == 0

        def probe_then_forget():
            link = h.proxy.links[0]
            link.probe(time.monotonic())
            for q in link.probes:                # as retire() does
                link.window.pending.pop(q, None)
            link.probes.clear()
            return True
        assert h.run(probe_then_forget)
        assert raw_submit(s, 41).command_status == 0          # (the SMSC's answer to the probe came before it)
        time.sleep(0.1)
        assert h.proxy.stats["smsc_unmatched_responses"] == 0


def test_lean_resps_leave_the_window_as_window_complete_takes_them():
    """The SMSC link's lean path takes an answered request out of the window itself (smsc_link.py, Window.complete
    inline): each on_resp called once with its resp, nothing left pending, the same entry `complete` returns."""
    import asyncio
    from engine.smpp_proxy.codec import Window
    from engine.smpp_proxy.smsc_link import SmscLink

    class Proxy:
        settings = SmppSettings()
        stats: dict = {}

    w = Window(4, 5.0)
    w.add(7, 0.0, "ctx")
    assert w.complete(7) == "ctx" and w.complete(7) is None and not w.pending

    async def run():
        link, got = SmscLink(Proxy(), ("127.0.0.1", 1)), []
        for seq in (1, 2):
            link.window.add(seq, 0.0, lambda r, st, seq=seq: got.append((seq, r.sequence_number, st, r.message_id)))
        link.data_received(encode(P.SubmitSmResp(sequence_number=2, message_id="B"))
                           + encode(P.SubmitSmResp(sequence_number=1, command_status=C.ESME_RTHROTTLED)))
        return got, link.window.pending

    got, pending = asyncio.run(run())
    assert got == [(2, 2, 0, "B"), (1, 1, C.ESME_RTHROTTLED, "")] and not pending
