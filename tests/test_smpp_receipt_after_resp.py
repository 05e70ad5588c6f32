"""An SMSC's receipt that comes right after its submit_sm_resp, to an ESME bound as a transmitter + receiver pair.

Found by the Kannel interop probe (bearerbox 1.4.5, TX + RX binds, 2,000 MTs, the simulator sending each receipt
right after its resp): the proxy relayed the resp on the TX bind and the receipt on the RX bind in the same loop
iteration (its writes are coalesced), and Kannel, which reads its binds in two threads and matches a receipt
against the ids its TX thread has stored, read 263 and 308 of 2,000 receipts first and threw them away ("got DLR but
could not find message"). Such a receipt now waits until the resp has been out RECEIPT_AFTER_RESP (Kannel then
matched 2,000 of 2,000); one that comes later, or to a lone transceiver, goes at once. Only for an account that asks
for it (`[[account]] receipt_after_resp = true`): the SMSC's deliver_sm waits unanswered meanwhile."""
import socket
import time

from engine.app import build
from engine.smpp_proxy import routing
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.msgids import RecentlyAnswered

from .test_smpp_proxy import read_raw

HAM = b"Don hang cua ban da duoc giao, cam on quy khach"


def _opt_in(h, on=True):
    h.proxy.accounts["esme1"].receipt_after_resp = on
    return h


def _bind(h, pdu_class):
    s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    s.sendall(encode(pdu_class(sequence_number=1, system_id="esme1", password="secret", interface_version=0x34)))
    assert read_raw(s).command_status == 0
    return s


def _submit(s, seq=2):
    s.sendall(encode(P.SubmitSm(sequence_number=seq, source_addr="84901234567", destination_addr="84912345678",
                                registered_delivery=1, short_message=HAM)))


def _receipt_answers(h):
    return [r for r in h.sim.mo_responses if r.command_id == C.DELIVER_SM_RESP]


def _wait(pred, timeout=5):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred():
        time.sleep(0.01)
    return pred()


def test_receipt_on_the_receiver_bind_waits_for_its_resp_on_the_transmitter(tmp_path):
    with ProxyHarness(build(data_dir=tmp_path / "data"), receipt_delay=0) as h:
        _opt_in(h)
        tx, rx = _bind(h, P.BindTransmitter), _bind(h, P.BindReceiver)
        _submit(tx)
        resp = read_raw(tx)
        t_resp = time.monotonic()
        assert (resp.command_id, resp.command_status) == (C.SUBMIT_SM_RESP, 0)
        dr = read_raw(rx)
        gap = time.monotonic() - t_resp
        assert dr.command_id == C.DELIVER_SM and P.tlv(dr, C.TAG_RECEIPTED_MESSAGE_ID).rstrip(b"\0").decode() == resp.message_id
        assert gap >= routing.RECEIPT_AFTER_RESP * 0.8, gap           # before: ~1 ms
        assert h.proxy.stats["receipts_after_resp_waited"] == 1
        rx.sendall(encode(P.DeliverSmResp(sequence_number=dr.sequence_number)))
        assert _wait(lambda: len(_receipt_answers(h)) == 1)               # the SMSC's deliver_sm answered once
        assert _receipt_answers(h)[0].command_status == 0
        tx.close()
        rx.close()


def test_a_lone_transceiver_gets_its_receipt_at_once(tmp_path):
    with ProxyHarness(build(data_dir=tmp_path / "data"), receipt_delay=0) as h:
        _opt_in(h)
        trx = _bind(h, P.BindTransceiver)
        _submit(trx)
        assert read_raw(trx).command_id == C.SUBMIT_SM_RESP          # TCP keeps the order: no wait needed
        assert read_raw(trx).command_id == C.DELIVER_SM
        assert h.proxy.stats["receipts_after_resp_waited"] == 0
        trx.close()


def test_a_receipt_that_comes_later_is_not_delayed(tmp_path):
    with ProxyHarness(build(data_dir=tmp_path / "data"), receipt_delay=1.6) as h:
        _opt_in(h)
        tx, rx = _bind(h, P.BindTransmitter), _bind(h, P.BindReceiver)
        _submit(tx)
        assert read_raw(tx).command_status == 0
        assert read_raw(rx).command_id == C.DELIVER_SM
        assert h.proxy.stats["receipts_after_resp_waited"] == 0
        tx.close()
        rx.close()


def test_a_receipt_waiting_when_the_receiver_unbinds_is_held_and_a_stop_sends_the_waiting_ones(tmp_path):
    h = _opt_in(ProxyHarness(build(data_dir=tmp_path / "data"), receipt_delay=0).start())
    try:
        tx, rx = _bind(h, P.BindTransmitter), _bind(h, P.BindReceiver)
        _submit(tx)
        assert read_raw(tx).command_status == 0
        assert _wait(lambda: h.proxy.receipts_after_resp)
        rx.close()                                        # gone while its receipt waits: held, not lost
        assert _wait(lambda: h.proxy.held.get("esme1"))
        assert _wait(lambda: len(_receipt_answers(h)) == 1) and _receipt_answers(h)[0].command_status == 0
        rx = _bind(h, P.BindReceiver)
        dr = read_raw(rx)                                 # delivered when a receiver binds again
        assert dr.command_id == C.DELIVER_SM
        rx.sendall(encode(P.DeliverSmResp(sequence_number=dr.sequence_number)))

        _submit(tx, 3)
        assert read_raw(tx).command_status == 0
        assert _wait(lambda: h.proxy.receipts_after_resp)
        t0 = time.monotonic()
        h.call(h.proxy.stop())
        assert read_raw(rx).command_id == C.DELIVER_SM     # sent by the stop, not lost with the timer
        assert time.monotonic() - t0 < 1.0 and not h.proxy.receipts_after_resp
    finally:
        h.proxy = None                                    # stopped above
        h.stop()


def test_an_account_that_did_not_ask_gets_its_receipt_at_once(tmp_path):
    """The default: the SMSC's deliver_sm is not held for an ESME that reads its binds in order."""
    with ProxyHarness(build(data_dir=tmp_path / "data"), receipt_delay=0) as h:
        tx, rx = _bind(h, P.BindTransmitter), _bind(h, P.BindReceiver)
        _submit(tx)
        assert read_raw(tx).command_status == 0
        assert read_raw(rx).command_id == C.DELIVER_SM
        assert h.proxy.stats["receipts_after_resp_waited"] == 0
        tx.close()
        rx.close()


def test_receipt_after_resp_is_an_account_key(tmp_path):
    from engine.smpp_proxy.account_file import parse_accounts
    from engine.smpp_proxy.accounts import SmppConfigError
    head = '[[account]]\nsystem_id = "k"\npassword_hash = "pbkdf2_sha256$1$aa$bb"\n'
    assert parse_accounts(tmp_path / "smpp.toml", {"account": [{"system_id": "k", "password_hash":
                          "pbkdf2_sha256$1$aa$bb", "receipt_after_resp": True}]}, head)["k"].receipt_after_resp
    try:
        parse_accounts(tmp_path / "smpp.toml", {"account": [{"system_id": "k", "password_hash": "pbkdf2_sha256$1$aa$bb",
                                                              "receipt_after_resp": 0.25}]}, head)
    except SmppConfigError as e:
        assert "receipt_after_resp must be bool" in str(e)
    else:
        raise AssertionError("a number for receipt_after_resp was taken")


def test_recently_answered_generations():
    r = RecentlyAnswered(0.25, bound=4)
    r.rotate(10.0)
    r.add("a")
    assert r.due("a", 10.01) == 10.01 + 0.25 and r.due("b", 10.01) is None
    r.rotate(10.3)                                       # "a" answered before 10.3: due at 10.55 at the latest
    assert r.due("a", 10.4) == 10.3 + 0.25 and r.due("a", 10.6) is None
    r.rotate(10.6)
    assert r.due("a", 10.61) is None and len(r) == 0
    for k in "wxyz":                                     # at the bound: a generation starts early, none grows past it
        r.add(k)
    r.add("v")
    assert len(r) == 5 and r.due("w", 11.0) == 11.25 and r.dropped == 0


def test_a_receipt_matched_by_its_twin_waits_for_its_resp_too(tmp_path):
    """An SMSC that writes a receipt's id in the other base than its resp's (hex resp, decimal receipt: common),
    once the id space has learnt it, routes the receipt by its twin at once (receipt_ids._account_of). The wait looked
    the receipt's own id up among the resps just out, where only the resp's form is: every such receipt went on the
    receiver bind in the same instant as its resp on the transmitter, the race receipt_after_resp is there for."""
    with ProxyHarness(build(data_dir=tmp_path / "data"), receipt_delay=0) as h:
        _opt_in(h)
        h.proxy.settings.receipt_wait = 0.3
        h.sim.receipt_ids_in_other_base = True
        tx, rx = _bind(h, P.BindTransmitter), _bind(h, P.BindReceiver)
        _submit(tx)                                   # the first: its twin tried after its receipt_wait, then learnt
        assert read_raw(tx).command_status == 0
        dr = read_raw(rx)
        rx.sendall(encode(P.DeliverSmResp(sequence_number=dr.sequence_number)))
        _submit(tx, 3)
        resp = read_raw(tx)
        t_resp = time.monotonic()
        dr = read_raw(rx)
        gap = time.monotonic() - t_resp
        rid = P.tlv(dr, C.TAG_RECEIPTED_MESSAGE_ID).rstrip(b"\0").decode()
        assert int(rid) == int(resp.message_id, 16)      # the other base
        assert h.proxy.stats["receipts_by_twin_id"] == 2
        assert gap >= routing.RECEIPT_AFTER_RESP * 0.8, gap
        tx.close()
        rx.close()
