"""What an SMSC's answers may carry beyond SMPP 3.4's bounds, read leniently, without unbounded memory or a lost
liveness mark (found by the SMPP probe, stop 53).

- A message_id over 64 characters (§5.2.23: 65 octets with its NUL): relayed to the ESME as it came, but the id map
  (bounded by count, 2M ids) keyed it as it came: a 4 KB id a message would have made it 8 GB. Such an id is keyed by
  a digest (msgids.id_key); its receipt still finds the account.
- The lean read path (smsc_link.py) handed the rest of a read to the codec when a large frame followed, and the
  answers it had read before it did not mark the link as answering (timeouts in a row not reset)."""
from engine.smpp_proxy.codec import Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.msgids import MID_MAX, id_key
from engine.smpp_proxy.simulator import SmscSimulator
from tests.test_smpp_resp_tlvs import _submit
from tests.test_smpp_proxy import pipe, raw_session, read_raw  # noqa: F401  (pipe: fixture)


class _LongIds(SmscSimulator):
    """An SMSC whose message_ids are 300 characters."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.id_format = "%0300d"


def test_a_long_message_id_is_relayed_keyed_by_a_digest_and_its_receipt_routed(pipe):
    with ProxyHarness(pipe, simulator=_LongIds) as h:
        s, _ = raw_session(h)
        s.sendall(_submit(2))
        r = read_raw(s)
        assert r.command_status == 0 and len(r.message_id) == 300          # the ESME gets it as it came
        keys = list(h.proxy.msgid_account._ids)
        assert keys == [id_key("", r.message_id)] and len(keys[0]) <= MID_MAX
        receipt = P.DeliverSm(source_addr="84912345678", destination_addr="84901234567",
                              esm_class=C.ESM_TYPE_DELIVERY_RECEIPT, short_message=b"stat:DELIVRD",
                              tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, r.message_id.encode() + b"\x00"),
                                    Tlv(C.TAG_MESSAGE_STATE, b"\x02")))
        assert h.run(h.sim.send_deliver, receipt)
        s.settimeout(5)
        got = read_raw(s)
        assert got.command_id == C.DELIVER_SM and got.esm_class == C.ESM_TYPE_DELIVERY_RECEIPT


def test_an_id_within_the_bound_is_its_own_key():
    assert id_key("", "0" * MID_MAX) == "0" * MID_MAX and id_key("s", "AB12") == "s\x1fAB12"
    assert id_key("s", "x" * 65) == id_key("s", "x" * 65) != id_key("s", "x" * 66)


class _AnswerThenLarge(SmscSimulator):
    """An SMSC whose submit_sm_resp comes in one write with a 5 KB deliver_sm (message_payload) behind it."""

    def _answer(self, s, resp):
        if resp.command_id != C.SUBMIT_SM_RESP:
            return super()._answer(s, resp)
        big = P.DeliverSm(sequence_number=s.conn.next_sequence(), source_addr="84912345678", destination_addr="5656",
                          tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"x" * 5000),))
        s.transport.write(encode(resp) + encode(big))


def test_answers_read_before_a_large_frame_mark_the_link_as_answering(pipe):
    with ProxyHarness(pipe, simulator=_AnswerThenLarge) as h:
        s, _ = raw_session(h)
        link, = h.proxy.links
        h.run(setattr, link, "timeouts_in_row", 2)
        s.sendall(_submit(2))
        r = read_raw(s)
        while r.command_id != C.SUBMIT_SM_RESP:
            r = read_raw(s)
        assert r.command_status == 0
        assert h.run(getattr, link, "timeouts_in_row") == 0


def test_an_ad_scheduled_ahead_under_a_long_id_is_not_indexed_no_cancel_sm_could_name_it(tmp_path):
    from tests.test_smpp_dnc_cancel import NOW, _submit as submit_ad, with_senders
    pipe = with_senders(tmp_path)
    with ProxyHarness(pipe, clock=lambda: NOW, simulator=_LongIds) as h:
        s, _ = raw_session(h)
        assert len(submit_ad(s, 2, "84912777901")) == 300
        assert len(h.proxy.scheduled) == 0 and h.proxy.stats["scheduled_ads_unindexed"] == 1
