"""The dates in the receipt texts the proxy writes itself (SMPP 3.4 appendix B `submit date:` / `done date:`,
YYMMDDhhmm with no zone) are in `[engine] timezone`, as the carrier's SMSC writes its own receipts on its local
clock: a silent drop's REJECTD receipt (submit.py) and the text a 3.3 bind is given for a receipt that said
everything in TLVs (codec/v33.py). Found by a clock audit: both were written in UTC, so an ESME reading the SMSC's
receipts and ours side by side in Hanoi saw a rejected message dated 7 hours before it was sent."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from engine.smpp_proxy.codec import Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.v33 import for_v33
from engine.smpp_proxy.forward import ForwardPath
from engine.smpp_proxy.submit import SubmitPath

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
# 23:30 UTC on 6 December is 06:30 on 7 December in Hanoi: the date changes too
NOW = datetime(2026, 12, 6, 23, 30, 15, tzinfo=timezone.utc)


class _Proxy(ForwardPath):
    """The parts of SmppProxy a REJECTD receipt reads: its clock, the engine's time zone, and where receipts go."""

    def __init__(self):
        self.clock, self.pipeline, self.sent = (lambda: NOW), SimpleNamespace(tz=HANOI), []

    def _deliver_receipt(self, account, dr, target=None, on_done=None):
        self.sent.append(dr)

    _rejected_receipt = SubmitPath._rejected_receipt


def test_a_rejected_receipt_is_dated_on_the_engine_time_zone_clock():
    proxy = _Proxy()
    sess = SimpleNamespace(state=SimpleNamespace(can_receive=True), closed=False,
                           account=SimpleNamespace(system_id="esme1"))
    pdu = P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                     registered_delivery=1, short_message=b"hello")
    proxy._rejected_receipt(sess, pdu, "L1-000001")
    (dr,) = proxy.sent
    assert b"submit date:2612070630 done date:2612070630 stat:REJECTD" in dr.short_message


def test_a_receipt_text_made_for_a_3_3_bind_is_dated_on_the_clock_given():
    dr = P.DeliverSm(sequence_number=4, source_addr="84912345678", destination_addr="84901234567",
                     esm_class=C.ESM_TYPE_DELIVERY_RECEIPT,
                     tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, b"abc\0"), Tlv(C.TAG_MESSAGE_STATE, b"\x02")))
    text = P.decode(for_v33(encode(dr), lambda: NOW.astimezone(HANOI))).short_message
    assert text == b"id:abc sub:001 dlvrd:001 submit date:2612070630 done date:2612070630 stat:DELIVRD err:000 text:"
    # the clock's own zone, whichever it is
    west = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert b"done date:2612061830 " in P.decode(for_v33(encode(dr), lambda: west)).short_message
