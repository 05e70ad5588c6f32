"""A silent drop's REJECTD receipt to an ESME bound as a transmitter + receiver pair.

Found by the Kannel interop probe (bearerbox 1.4.5, `smsc = smpp` as two groups, TX on `port`, RX on
`receive-port`, silent_symbols = ["AD_SENDER_NOT_QC"]): the proxy wrote the submit_sm_resp on the TX bind and the
REJECTD deliver_sm on the RX bind in the same instant. Kannel reads its two binds in two threads and matches a
receipt against the ids its TX thread has stored from submit_sm_resps; the receipt was read first ("got DLR but
could not find message or was not interested in it id<L000000014>"), acknowledged and thrown away: 11 of 20 silent
drops never reached a final state in Kannel. An SMSC's receipt comes after its answer; the proxy's own now does too
when it goes over another bind (on the bind the submit came on, TCP keeps the order and it goes at once)."""
import socket
import time

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy import submit
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness

from .test_smpp_proxy import read_raw

PHISH = b"Tai khoan bi khoa, xac minh tai http://phish.example/login ngay"


def _bind(h, pdu_class):
    s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    s.sendall(encode(pdu_class(sequence_number=1, system_id="esme1", password="secret", interface_version=0x34)))
    assert read_raw(s).command_status == 0
    return s


def test_rejected_receipt_on_the_receiver_bind_comes_after_the_resp_with_a_gap(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", b"kind,value\ndomain,phish.example\n")
    s = SmppSettings(silent_symbols=("URL_BLACKLISTED",))
    with ProxyHarness(build(data_dir=d), accounts=("esme1:secret",), settings=s) as h:
        tx, rx = _bind(h, P.BindTransmitter), _bind(h, P.BindReceiver)
        tx.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                     registered_delivery=1, short_message=PHISH)))
        resp = read_raw(tx)
        t_resp = time.monotonic()
        assert (resp.command_id, resp.command_status) == (C.SUBMIT_SM_RESP, 0) and resp.message_id.startswith("L")
        dr = read_raw(rx)
        gap = time.monotonic() - t_resp
        assert dr.command_id == C.DELIVER_SM and b"stat:REJECTD" in dr.short_message
        assert P.tlv(dr, C.TAG_RECEIPTED_MESSAGE_ID).rstrip(b"\x00").decode() == resp.message_id
        assert gap >= submit.REJECTED_RECEIPT_OTHER_BIND_DELAY * 0.8, gap   # before: ~1 ms
        tx.close()
        rx.close()


def test_a_stop_sends_the_rejected_receipts_still_waiting(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", b"kind,value\ndomain,phish.example\n")
    s = SmppSettings(silent_symbols=("URL_BLACKLISTED",))
    h = ProxyHarness(build(data_dir=d), accounts=("esme1:secret",), settings=s).start()
    try:
        tx, rx = _bind(h, P.BindTransmitter), _bind(h, P.BindReceiver)
        tx.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                     registered_delivery=1, short_message=PHISH)))
        assert read_raw(tx).command_status == 0
        assert h.proxy.rejected_receipts_waiting
        t0 = time.monotonic()
        h.call(h.proxy.stop())
        dr = read_raw(rx)                                 # not lost with the timer
        assert b"stat:REJECTD" in dr.short_message and time.monotonic() - t0 < 1.0
        assert not h.proxy.rejected_receipts_waiting
    finally:
        h.proxy = None                                    # stopped above
        h.stop()


def test_a_drain_sends_the_rejected_receipts_still_waiting_before_the_unbinds(tmp_path):
    # a drain (SIGTERM in serve) unbinds the ESMEs before stop() runs: a REJECTD receipt still in its 1 s wait
    # went out only after the unbind (held, on disk: delivered after the restart), not while the receiver was bound
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", b"kind,value\ndomain,phish.example\n")
    s = SmppSettings(silent_symbols=("URL_BLACKLISTED",))
    h = ProxyHarness(build(data_dir=d), accounts=("esme1:secret",), settings=s).start()
    try:
        tx, rx = _bind(h, P.BindTransmitter), _bind(h, P.BindReceiver)
        tx.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                     registered_delivery=1, short_message=PHISH)))
        assert read_raw(tx).command_status == 0
        assert h.proxy.rejected_receipts_waiting
        h.call(h.proxy.drain(1.0, unbind_wait=0.3))
        first = read_raw(rx)
        assert first.command_id == C.DELIVER_SM and b"stat:REJECTD" in first.short_message, first
        assert not h.proxy.rejected_receipts_waiting
        h.call(h.proxy.stop())
    finally:
        h.proxy = None
        h.stop()
