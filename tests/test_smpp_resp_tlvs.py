"""Responses that carry TLVs: SMPP 3.4 gives submit_sm_resp and deliver_sm_resp none, but SMSCs and ESMEs add them
(SMPP 5.0's additional_status_info_text, network_error_code, vendor tags), as the codec already allowed for
submit_multi_resp, query_sm and replace_sm. They were refused as malformed ("unexpected bytes after the body") and
so never matched: the SMSC's answer to a submit it took was lost (the ESME got ESME_RSYSERR, outcome unknown, after
the response timeout, and the link was closed as half-hung), and an ESME's acknowledgement of a receipt was taken
as none (the receipt offered again and again)."""
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.simulator import SmscSimulator
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401  (pipe: fixture)

_INFO = Tlv(0x001D, b"accepted by node 7\x00")          # additional_status_info_text


class _TlvAnswers(SmscSimulator):
    """An SMSC whose submit_sm_resp, query_sm_resp, cancel_sm_resp and replace_sm_resp carry a TLV."""

    def _answer(self, s, resp):
        if resp.command_id in (C.SUBMIT_SM_RESP, C.QUERY_SM_RESP, C.CANCEL_SM_RESP, C.REPLACE_SM_RESP):
            resp = P.replace(resp, tlvs=(_INFO,))
        super()._answer(s, resp)


def _submit(seq, rd=0):
    return encode(P.SubmitSm(sequence_number=seq, source_addr="84901234567", destination_addr="84912345678",
                             registered_delivery=rd, short_message=b"see you at %d" % seq))


def test_a_submit_sm_resp_with_a_tlv_is_relayed(pipe):
    with ProxyHarness(pipe, simulator=_TlvAnswers, settings=SmppSettings(smsc_response_timeout=1.0)) as h:
        s, _ = raw_session(h)
        s.sendall(_submit(2))
        r = read_raw(s)
        assert (r.command_id, r.sequence_number, r.command_status) == (C.SUBMIT_SM_RESP, 2, 0)
        assert r.message_id == "00000001"
        assert h.proxy.stats["smsc_timeouts"] == 0 and h.proxy.stats["smsc_half_hung"] == 0


def test_a_deliver_sm_resp_with_a_tlv_acknowledges_the_receipt(pipe):
    with ProxyHarness(pipe, receipt_delay=0.05) as h:
        s, _ = raw_session(h)
        s.sendall(_submit(2, rd=1))
        got = [read_raw(s), read_raw(s)]
        dr = next(p for p in got if p.command_id == C.DELIVER_SM)
        s.sendall(encode(P.DeliverSmResp(sequence_number=dr.sequence_number, tlvs=(_INFO,))))
        assert wait(lambda: len(h.sim.mo_responses) == 1)
        assert h.sim.mo_responses[0].command_status == 0
        assert h.proxy.held_total == 0 and h.proxy.stats["receipts_held"] == 0


def test_a_query_and_a_cancel_sm_resp_with_a_tlv_are_relayed(pipe):
    """(an SMSC's vendor tag on them was refused the same way: ESME_RSYSERR after the timeout, the link rebound)"""
    with ProxyHarness(pipe, simulator=_TlvAnswers, settings=SmppSettings(smsc_response_timeout=1.0)) as h:
        s, _ = raw_session(h)
        s.sendall(_submit(2))
        mid = read_raw(s).message_id
        s.sendall(encode(P.QuerySm(sequence_number=3, message_id=mid, source_addr="84901234567")))
        r = read_raw(s)
        assert (r.command_id, r.command_status) == (C.QUERY_SM_RESP, 0)
        s.sendall(encode(P.CancelSm(sequence_number=4, message_id=mid, source_addr="84901234567")))
        r = read_raw(s)
        assert (r.command_id, r.command_status) == (C.CANCEL_SM_RESP, 0)
        assert h.proxy.stats["smsc_timeouts"] == 0 and h.proxy.stats["smsc_half_hung"] == 0
