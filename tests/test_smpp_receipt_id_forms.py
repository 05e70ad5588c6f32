"""Receipt message_ids written otherwise than the submit_sm_resp wrote them (routing.py `_twins`): found by an
adversarial probe of the SMSC side (a scripted SMSC behind `serve`, smpplib ESMEs)."""
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)


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
