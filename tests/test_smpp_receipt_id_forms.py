"""Receipt message_ids written otherwise than the submit_sm_resp wrote them (receipt_ids.py `_twins`): found by an
adversarial probe of the SMSC side (a scripted SMSC behind `serve`, smpplib ESMEs)."""
import itertools
import time

import pytest

from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)
from tests.test_smpp_receipts import Esme, _receipt_ids, _submitted


def _receipt(mid: str):
    body = f"id:{mid} sub:001 dlvrd:001 submit date:2612031100 done date:2612031100 stat:DELIVRD err:000 text:"
    return P.DeliverSm(sequence_number=0, source_addr="84912345678", destination_addr="84901234567",
                       esm_class=C.ESM_TYPE_DELIVERY_RECEIPT, short_message=body.encode("latin-1"))


def test_a_receipt_id_with_a_non_ascii_digit_is_answered_not_lost_in_housekeeping(pipe):
    """'²' (0xB2 read as Latin-1) is a digit to str.isdigit() but not to int(): the twin lookup at the end of the
    receipt's receipt_wait raised in housekeeping, after the receipt had left the queue, so the SMSC never got
    an answer to its deliver_sm (and the rest of that housekeeping tick was skipped)."""
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        h.proxy.settings.receipt_wait = 0.2
        assert h.sim.send_deliver(_receipt("1\xb2"))
        assert wait(lambda: h.sim.mo_responses, 3), "the SMSC got no answer to its deliver_sm"
        assert h.sim.mo_responses[0].command_status == C.ESME_RX_T_APPN


_FORMS = {
    "hex resp, receipt without its leading zeros": ("%08X", lambda m: m.lstrip("0")),
    "hex resp, receipt in lower case": ("%08X", str.lower),
    "decimal resp, receipt zero-padded to 10 (SMPP 3.4 appendix B)": ("%d", lambda m: m.zfill(10)),
    "zero-padded decimal resp, receipt without the zeros": ("%010d", lambda m: m.lstrip("0")),
}


@pytest.mark.parametrize("form", list(_FORMS))
def test_a_receipt_naming_its_message_by_the_same_number_otherwise_written_reaches_the_account(pipe, form):
    """Before: only the other base was tried (decimal 26 for 0000001A), so a receipt whose id differed from the
    resp's only in zero padding or letter case was asked for again (ESME_RX_T_APPN) at every delivery and never
    reached the ESME, which was bound."""
    id_format, written = _FORMS[form]
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05) as h:
        h.proxy.settings.receipt_wait = 0.3
        h.sim.id_format, h.sim._ids = id_format, itertools.count(0x1A)
        sim_receipt = h.sim._receipt
        h.sim._receipt = lambda s, sm, mid, to=None: sim_receipt(s, sm, written(mid), to)
        e = Esme(h)
        e.submit(1)
        ids = _submitted(e, 1)
        assert _receipt_ids(e, 1) == [written(ids[0])]                  # the first after its receipt_wait
        e.submit(3, first=1)
        ids = _submitted(e, 3)
        t0 = time.monotonic()
        assert _receipt_ids(e, 3) == sorted(written(m) for m in ids)
        assert time.monotonic() - t0 < 0.3                              # then learnt: at once
        assert h.proxy.stats["receipts_retry_later"] == 0 and h.proxy.stats["receipts_by_twin_id"] == 4


@pytest.mark.parametrize("learnt, owner", [("other base", "esme1"), ("same base", "esme2")])
def test_a_twin_of_the_kind_the_id_space_matched_by_goes_first(pipe, learnt, owner):
    """Receipt "291" with both 00000123 (0x123 = 291: written in decimal) and 00000291 (written without its zeros)
    known: an id space whose receipts matched in the other base routes it to 00000123's account, one whose receipts
    matched without their zeros to 00000291's."""
    with ProxyHarness(pipe, accounts=("esme1:secret", "esme2:secret")) as h:
        p = h.proxy
        p._remember_message_id("00000123", "esme1")
        p._remember_message_id("00000291", "esme2")
        p._remember_message_id("0000001A", "esme1")
        assert p._account_of("1A" if learnt == "same base" else "26") is None      # nothing learnt: waits
        assert p._twin_account("1A" if learnt == "same base" else "26", "") == "esme1"  # its wait ended: learnt
        assert p._account_of("291") == owner


def test_a_receipt_routed_by_its_twin_ends_the_charged_note_of_its_message(pipe):
    """A receipt marks its message as in a final state (MessageIds.receipted: a cancel_sm or replace_sm the SMSC
    answers 0 after it gives no ad-cap count back, relay.py). Routed by its twin, the receipt's own id was marked,
    which names nothing: the message's note kept its charged bit, and a later cancel_sm/replace_sm gave back a count
    for a message already delivered. Found by review41 (the receipt_after_resp wait missed such receipts the same way)."""
    from engine.smpp_proxy.msgids import SINGLE
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        p = h.proxy
        for mid in ("0000001A", "0000001B", "0000001C"):
            p._remember_message_id(mid, "esme1")
            p.msgid_account.note(mid, SINGLE, 0, "84901234567", 1_800_000_000, None, True)
        p.receipt_id_forms[""] = [0, 1, 0]               # the space's receipts matched by twin: at once

        class Link:
            id_space, addr = "", ("127.0.0.1", 1)
            answers: list = []

            def send_pdu(self, pdu):
                self.answers.append(pdu)

        async def deliver(mid):
            p.handle_smsc_deliver(Link(), _receipt(mid))
        h.call(deliver("26"))                              # other base: 0x1A
        h.call(deliver("1b"))                              # same base, lower case
        assert not p.msgid_account.sent("0000001A").charged and not p.msgid_account.sent("0000001B").charged
        assert p.msgid_account.sent("0000001C").charged
        p.early_receipts.clear()


@pytest.mark.parametrize("tlv", [b"", b"\x00"], ids=["zero-length", "a lone NUL"])
def test_a_receipt_with_an_empty_receipted_message_id_is_routed_by_the_id_in_its_text(pipe, tlv):
    """An SMSC that sends receipted_message_id (SMPP 3.4 §5.3.2.12) empty, with the id in the receipt's text
    (appendix B, "id:..."): the empty TLV was taken as the id, the receipt refused for good (ESME_RX_P_APPN,
    `receipts_unroutable`: the SMSC never offers it again) and lost, while its text named a message of a bound
    ESME."""
    from engine.smpp_proxy.codec import Tlv
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=None) as h:
        e = Esme(h)
        e.submit(1)
        mid = _submitted(e, 1)[0]
        r = _receipt(mid)
        assert h.run(h.sim.send_deliver, P.replace(r, tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, tlv),)))
        got = e.receipts(1, 3.0)
        assert len(got) == 1 and f"id:{mid} ".encode() in got[0].short_message      # relayed to its ESME
        e.answer(got[0])
        assert wait(lambda: h.sim.mo_responses)
        assert h.sim.mo_responses[0].command_status == 0 and h.proxy.stats["receipts_unroutable"] == 0


@pytest.mark.parametrize("esm_class", [0x10, 0x08], ids=["manual/user acknowledgement", "SME delivery acknowledgement"])
def test_an_sme_acknowledgement_with_no_id_is_delivered_as_an_mo(pipe, esm_class):
    """SMPP 3.4 §5.2.12: an SME (handset) acknowledgement is the handset's own message; one with no
    receipted_message_id and no id in its text was refused for good (ESME_RX_P_APPN, `receipts_unroutable`) and
    lost. Now it goes as an MO to the account its destination routes to, esm_class kept; an SMSC receipt (0x04)
    with nothing to route it by is still refused."""
    from tests.test_smpp_proxy import client, receive
    with ProxyHarness(pipe, accounts=("esme2:pw2",)) as h:
        rx = client(h, "esme2", "pw2", bind="receiver")
        ack = P.DeliverSm(sequence_number=0, source_addr_ton=1, source_addr="84912000888", destination_addr="8088",
                          esm_class=esm_class, short_message=b"YES")
        assert h.run(h.sim.send_deliver, ack)
        # (refused, the SMSC has its answer at once; routed, the proxy counts it before the ESME is offered it)
        assert wait(lambda: h.sim.mo_responses or h.proxy.stats["sme_acks_as_mo"])
        assert h.proxy.stats["sme_acks_as_mo"] == 1, h.sim.mo_responses
        mo = receive(rx)
        assert mo.short_message == b"YES" and mo.esm_class == esm_class
        assert wait(lambda: h.sim.mo_responses)
        assert h.sim.mo_responses[0].command_status == 0
        assert h.proxy.stats["receipts_unroutable"] == 0
        assert h.run(h.sim.send_deliver, P.replace(ack, esm_class=C.ESM_TYPE_DELIVERY_RECEIPT))
        assert wait(lambda: len(h.sim.mo_responses) == 2)
        assert h.sim.mo_responses[1].command_status == C.ESME_RX_P_APPN
        rx.disconnect()
