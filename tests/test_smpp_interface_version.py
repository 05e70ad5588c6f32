"""An ESME bound with interface_version below 0x34 (SMPP 3.3 or earlier; codec/v33.py, binds.py, routing.py): its
bind_resp carries no sc_interface_version, and what it is sent carries no TLV: a receipt keeps its text, an MO sent
as data_sm reaches it as a deliver_sm (message_payload in short_message, SAR TLVs as a UDH element). One whose
user data does not fit short_message goes to a 3.4 bind of the account, else back to the SMSC as ESME_RX_T_APPN
(it delivers it again), never acknowledged and lost. smpplib, which cannot be told its interface_version, is
made to send 0x33 by its module constant (it sets the field from it after the keyword arguments)."""
import select
import socket

import pytest
import smpplib.consts

from engine.smpp_proxy.codec import Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.v33 import for_v33
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import client, pipe, read_raw, receive, send, wait  # noqa: F401,F811  (pipe: fixture)

BINDS = {"transmitter": P.BindTransmitter, "receiver": P.BindReceiver, "transceiver": P.BindTransceiver}


def _bind(h, version, kind="transceiver", system_id="esme1"):
    s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    s.sendall(encode(BINDS[kind](sequence_number=1, system_id=system_id, password="secret",
                                 interface_version=version)))
    r = read_raw(s)
    assert r.command_status == 0
    return s, r


def _versions(h):
    return h.run(lambda: sorted(s.interface_version for s in h.proxy.sessions if s.account))


def _ack(s, pdu):
    s.sendall(encode(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number)))


def _quiet(s) -> bool:
    return select.select([s], [], [], 0.3)[0] == []


@pytest.mark.parametrize("kind", sorted(BINDS))
def test_a_3_3_bind_is_answered_without_sc_interface_version_and_recorded(pipe, kind):
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        old, r_old = _bind(h, 0x33, kind)
        new, r_new = _bind(h, 0x34, kind)
        assert r_old.tlvs == ()                                     # SMPP 3.4 §5.3.2.25: a 3.4 bind's answer only
        assert P.tlv(r_new, C.TAG_SC_INTERFACE_VERSION) == b"\x34"
        assert _versions(h) == [0x33, 0x34]
        old.close(), new.close()


def test_a_receipt_reaches_a_3_3_bind_as_its_text_without_tlvs(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret", "esme2:secret")) as h:
        old, _ = _bind(h, 0x33, system_id="esme1")
        new, _ = _bind(h, 0x34, system_id="esme2")
        for s in (old, new):
            s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                        registered_delivery=1, short_message=b"hello")))
            assert read_raw(s).command_status == 0
        dr_old, dr_new = read_raw(old), read_raw(new)
        assert dr_old.command_id == C.DELIVER_SM and dr_old.esm_class == C.ESM_TYPE_DELIVERY_RECEIPT
        assert dr_old.tlvs == () and b"stat:DELIVRD" in dr_old.short_message
        assert dr_old.short_message.startswith(b"id:")
        assert {t.tag for t in dr_new.tlvs} == {C.TAG_RECEIPTED_MESSAGE_ID, C.TAG_MESSAGE_STATE}     # a 3.4 bind's
        _ack(old, dr_old), _ack(new, dr_new)
        assert wait(lambda: sum(r.command_status == 0 for r in h.sim.mo_responses) == 2)
        old.close(), new.close()


def _mo_data_sm(payload: bytes, *sar, source="84912000888"):
    tlvs = (Tlv(C.TAG_MESSAGE_PAYLOAD, payload), Tlv(0x1501, b"vendor"))
    if sar:
        ref, total, seq = sar
        tlvs += (Tlv(C.TAG_SAR_MSG_REF_NUM, ref.to_bytes(2, "big")), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, bytes((total,))),
                 Tlv(C.TAG_SAR_SEGMENT_SEQNUM, bytes((seq,))))
    return P.DataSm(source_addr_ton=1, source_addr_npi=1, source_addr=source, destination_addr="8088",
                    registered_delivery=0, data_coding=0, tlvs=tlvs)


def test_an_mo_data_sm_reaches_a_3_3_bind_as_a_deliver_sm(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        old, _ = _bind(h, 0x33, "receiver")
        assert h.run(h.sim.send_deliver, _mo_data_sm(b"hello service"))
        mo = read_raw(old)
        assert (mo.command_id, mo.short_message, mo.tlvs) == (C.DELIVER_SM, b"hello service", ())
        assert (mo.source_addr, mo.destination_addr, mo.source_addr_ton) == ("84912000888", "8088", 1)
        _ack(old, mo)                       # its deliver_sm_resp answers the SMSC's data_sm
        assert wait(lambda: h.sim.mo_responses)
        assert [(r.command_id, r.command_status) for r in h.sim.mo_responses] == [(C.DATA_SM_RESP, 0)]
        old.close()


def test_an_mo_in_sar_parts_reaches_a_3_3_bind_with_its_parts_in_a_udh(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        old, _ = _bind(h, 0x33, "receiver")
        for seq, text in ((1, b"hello "), (2, b"service")):
            assert h.run(h.sim.send_deliver, _mo_data_sm(text, 0x1234, 2, seq))
        parts = [read_raw(old), read_raw(old)]
        assert [(p.command_id, p.esm_class & C.ESM_UDHI, p.tlvs) for p in parts] == [(C.DELIVER_SM, C.ESM_UDHI, ())] * 2
        assert sorted(p.short_message for p in parts) == [b"\x06\x08\x04\x12\x34\x02\x01hello ",
                                                          b"\x06\x08\x04\x12\x34\x02\x02service"]
        for p in parts:
            _ack(old, p)
        assert wait(lambda: len(h.sim.mo_responses) == 2)
        old.close()


def test_an_mo_too_long_for_a_3_3_bind_goes_to_a_3_4_one_or_back_to_the_smsc(pipe):
    long_text = (b"Chao ban, toi muon hoi ve don hang so 4471 dat hom thu ba tuan truoc. Den nay van chua nhan duoc "
                 b"hang, trang thai van la dang xu ly. Ban kiem tra giup toi xem con thieu giay to gi khong, hoac "
                 b"cho toi biet ngay giao du kien. Toi o nha buoi chieu sau bon gio. Cam on ban rat nhieu nhe.")
    assert len(long_text) > 254                         # over short_message's 254 octets
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        old, _ = _bind(h, 0x33, "receiver")
        assert h.run(h.sim.send_deliver, _mo_data_sm(long_text))
        assert wait(lambda: h.sim.mo_responses)          # the SMSC keeps it and delivers it again later
        assert [(r.command_id, r.command_status) for r in h.sim.mo_responses] == [(C.DATA_SM_RESP, C.ESME_RX_T_APPN)]
        assert _quiet(old)                               # nothing (cut, or unreadable) reached the 3.3 bind
        assert h.proxy.stats["mo_too_long_for_v33"] == 1
        new, _ = _bind(h, 0x34, "receiver")
        for i in range(4):          # (whichever bind the round robin is at; senders apart: no MO flood rule)
            assert h.run(h.sim.send_deliver, _mo_data_sm(long_text, source=f"8491200089{i}"))
            mo = read_raw(new)
            assert mo.command_id == C.DATA_SM and P.tlv(mo, C.TAG_MESSAGE_PAYLOAD) == long_text
            _ack(new, mo)
        assert _quiet(old)
        assert wait(lambda: len(h.sim.mo_responses) == 5)
        assert [r.command_status for r in h.sim.mo_responses[1:]] == [0] * 4
        old.close(), new.close()


def test_smpplib_bound_as_3_3_reads_receipts_and_mo_without_tlvs(pipe, monkeypatch):
    monkeypatch.setattr(smpplib.consts, "SMPP_VERSION_34", 0x33)      # the version smpplib's binds send
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        c = client(h)
        assert _versions(h) == [0x33]
        _, resps = send(c, "hello there", registered_delivery=1)
        assert resps[0].status == 0
        dr = receive(c)
        assert b"stat:DELIVRD" in dr.short_message and dr.receipted_message_id is None and dr.message_state is None
        assert h.run(h.sim.send_deliver, _mo_data_sm(b"hello service"))
        mo = receive(c)
        assert (mo.command, mo.short_message, mo.message_payload) == ("deliver_sm", b"hello service", None)
        assert wait(lambda: len(h.sim.mo_responses) == 2)
        assert [r.command_status for r in h.sim.mo_responses] == [0, 0]
        c.disconnect()


def test_every_pdu_a_3_3_peer_is_sent_loses_its_tlvs_and_only_then():
    resp = P.SubmitSmResp(sequence_number=3, message_id="abc", tlvs=(Tlv(0x1501, b"v\0"),))
    assert P.decode(for_v33(encode(resp))) == P.SubmitSmResp(sequence_number=3, message_id="abc")
    for plain in (encode(P.replace(resp, tlvs=())), encode(P.SubmitSmResp(sequence_number=3, command_status=8))):
        assert for_v33(plain) is plain
    plain = encode(P.DeliverSm(sequence_number=4, short_message=b"hi"))
    assert for_v33(plain) is plain
    payload = encode(P.DeliverSm(sequence_number=5, esm_class=C.ESM_UDHI,
                                 tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"\x06\x05\x04\x0b\x84\x23\xf0hi"),
                                       Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x07"), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
                                       Tlv(C.TAG_SAR_SEGMENT_SEQNUM, b"\x01"))))
    # a UDH of its own (here application ports, IEI 0x05): the SAR's element joins it
    assert P.decode(for_v33(payload)).short_message == b"\x0c\x05\x04\x0b\x84\x23\xf0\x08\x04\x00\x07\x02\x01hi"
    assert for_v33(encode(P.DeliverSm(tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"x" * 254),)))) is not None
    assert for_v33(encode(P.DeliverSm(tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"x" * 255),)))) is None


def _long_receipt(mid: str):
    text = (f"id:{mid} sub:001 dlvrd:001 submit date:2603021000 done date:2603021001 stat:DELIVRD err:000 "
            "text:").encode() + b"an SMSC that puts the whole message in its receipt " * 4
    assert len(text) > 254
    return P.DeliverSm(source_addr="84912345678", destination_addr="84901234567",
                       esm_class=C.ESM_TYPE_DELIVERY_RECEIPT,
                       tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, text), Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid.encode() + b"\0")))


def _submit_no_receipt(s) -> str:
    s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                short_message=b"hello")))
    r = read_raw(s)
    assert r.command_status == 0
    return r.message_id


def test_a_receipt_too_long_for_the_accounts_3_3_receiver_is_left_with_the_smsc(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        old, _ = _bind(h, 0x33)
        assert h.run(h.sim.send_deliver, _long_receipt(_submit_no_receipt(old)))
        assert wait(lambda: h.sim.mo_responses)
        assert [r.command_status for r in h.sim.mo_responses] == [C.ESME_RX_T_APPN]    # delivered again later
        assert _quiet(old) and h.proxy.held_total == 0 and h.proxy.stats["receipts_too_long_for_v33"] == 1
        old.close()


def test_a_held_receipt_too_long_for_a_3_3_receiver_waits_for_a_3_4_one(pipe):
    """Held (acknowledged) when no receiver was bound: a 3.3 receiver that binds is not offered it (nor does the
    flush of the held queue go round it for ever); a 3.4 receiver of the account gets it whole."""
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        tx, _ = _bind(h, 0x33, "transmitter")
        assert h.run(h.sim.send_deliver, _long_receipt(_submit_no_receipt(tx)))
        assert wait(lambda: h.sim.mo_responses)
        assert [r.command_status for r in h.sim.mo_responses] == [0] and h.proxy.held_total == 1     # held
        old, _ = _bind(h, 0x33, "receiver")
        assert _quiet(old) and h.run(lambda: h.proxy.held_total) == 1
        new, _ = _bind(h, 0x34, "receiver")
        dr = read_raw(new)
        assert dr.command_id == C.DELIVER_SM and len(P.tlv(dr, C.TAG_MESSAGE_PAYLOAD)) > 254
        _ack(new, dr)
        assert wait(lambda: h.run(lambda: h.proxy.held_total) == 0)
        assert _quiet(old) and h.proxy.stats["receipts_held"] == 1       # held once, not again at each offer
        for s in (tx, old, new):
            s.close()


def test_every_golden_vector_reaches_a_3_3_peer_whole_and_without_tlvs_or_not_at_all():
    """The real PDUs of tests/vectors/smpp: what a 3.3 peer is sent decodes, has no TLV, is no data_sm, and holds
    the message's user data as it was (short_message or message_payload; SAR TLVs only add a UDH element)."""
    from pathlib import Path

    from engine.smpp_proxy.codec import RemoteProtocolError, pdu_user_data
    from engine.smpp_proxy.codec.udh import sar_info
    seen = 0
    for path in sorted((Path(__file__).parent / "vectors" / "smpp").glob("*.bin")):
        raw = path.read_bytes()
        try:
            pdu = P.decode(raw)
            before = pdu_user_data(pdu) if pdu.command_id in (C.DELIVER_SM, C.DATA_SM) else None
        except RemoteProtocolError:
            continue                        # a vector of bytes the codec refuses: never sent on
        out = for_v33(raw)
        if out is None:
            assert len(P.tlv(pdu, C.TAG_MESSAGE_PAYLOAD) or b"") > 254, path.name
            continue
        got = P.decode(out)
        assert got.tlvs == () and got.command_id != C.DATA_SM, path.name
        if before is not None:
            seen += 1
            assert pdu_user_data(got) == before and got.source_addr == pdu.source_addr, path.name
            assert sar_info(pdu.tlvs) is None or got.esm_class & C.ESM_UDHI, path.name
    assert seen >= 10


def test_a_pdu_up_to_270_octets_fits_a_3_3_peer_with_its_sar_tlvs_made_a_udh():
    """fits_v33's shortcut (no decoding up to 16 + 254 octets) holds at its edge: the longest message_payload such a
    data_sm can carry, with SAR TLVs, becomes a short_message of at most 254 octets."""
    from engine.smpp_proxy.codec.v33 import fits_v33
    sar = (Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x07"), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
           Tlv(C.TAG_SAR_SEGMENT_SEQNUM, b"\x01"))
    empty = len(encode(P.DataSm(tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b""),) + sar)))
    raw = encode(P.DataSm(tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"x" * (270 - empty)),) + sar))
    assert len(raw) == 270 and fits_v33(P.decode(raw))
    assert len(P.decode(for_v33(raw)).short_message) <= 254


def _windows(h, version):
    return h.run(lambda: [len(s.window) for s in h.proxy.sessions if s.account and s.interface_version == version])


def test_an_mo_data_sm_with_an_address_longer_than_a_deliver_sm_holds_is_not_sent_to_a_3_3_bind(pipe):
    """A data_sm's source_addr may be 64 octets (an e-mail or IP address), a deliver_sm's 20: a 3.3 receiver is
    not offered it (it used to fail at the encode, after its window entry: the SMSC was answered ESME_RX_P_APPN,
    the message dropped for good, and again when the entry timed out). A 3.4 receiver gets it."""
    mo = _mo_data_sm(b"hello service", source="subscriber@mail.example.net")
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        old, _ = _bind(h, 0x33, "receiver")
        assert h.run(h.sim.send_deliver, mo)
        assert wait(lambda: h.sim.mo_responses)
        assert [(r.command_id, r.command_status) for r in h.sim.mo_responses] == [(C.DATA_SM_RESP, C.ESME_RX_T_APPN)]
        assert _windows(h, 0x33) == [0]          # nothing left to answer later
        assert _quiet(old) and h.proxy.stats["smsc_pdu_errors"] == 0
        new, _ = _bind(h, 0x34, "receiver")
        assert h.run(h.sim.send_deliver, mo)
        got = read_raw(new)
        assert (got.command_id, got.source_addr) == (C.DATA_SM, "subscriber@mail.example.net")
        _ack(new, got)
        assert wait(lambda: len(h.sim.mo_responses) == 2) and h.sim.mo_responses[1].command_status == 0
        assert _quiet(old)
        old.close(), new.close()


def test_sar_tlvs_that_would_take_a_udh_past_255_octets_make_the_message_too_long_for_3_3_not_an_error():
    """A UDH of 250 octets (UDHL 250) and SAR TLVs: their element would make a UDHL of 256, which no octet holds;
    the message is over 254 octets then: not for a 3.3 peer (it used to raise ValueError in the routing)."""
    from engine.smpp_proxy.codec.v33 import fits_v33
    ud = bytes((250, 0x70, 248)) + bytes(248) + b"z"
    raw = encode(P.DeliverSm(esm_class=C.ESM_UDHI, short_message=ud,
                             tlvs=(Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x07"), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
                                   Tlv(C.TAG_SAR_SEGMENT_SEQNUM, b"\x01"))))
    assert fits_v33(P.decode(raw)) is False and for_v33(raw) is None


def test_a_receipt_that_says_its_message_in_tlvs_only_reaches_a_3_3_bind_with_its_text_written(pipe):
    """A data_sm receipt (or a deliver_sm one with no text) names its message and state in TLVs only; a 3.3 ESME
    reads neither, and an empty receipt it cannot match was acknowledged, so lost. It gets SMPP 3.4 appendix B
    text written from them (id, stat, err from network_error_code); a 3.4 bind gets the PDU as sent."""
    with ProxyHarness(pipe, accounts=("esme1:secret", "esme2:secret")) as h:
        old, _ = _bind(h, 0x33, system_id="esme1")
        new, _ = _bind(h, 0x34, system_id="esme2")
        for s, state in ((old, b"\x05"), (new, b"\x02")):
            mid = _submit_no_receipt(s)
            assert h.run(h.sim.send_deliver, P.DataSm(
                source_addr="84912345678", destination_addr="84901234567", esm_class=C.ESM_TYPE_DELIVERY_RECEIPT,
                data_coding=8, tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid.encode() + b"\0"),
                                     Tlv(C.TAG_MESSAGE_STATE, state), Tlv(C.TAG_NETWORK_ERROR_CODE, b"\x03\x00\x0b"))))
            dr = read_raw(s)
            if s is old:
                assert (dr.command_id, dr.esm_class, dr.data_coding, dr.tlvs) == (C.DELIVER_SM, 4, 0, ())
                assert dr.short_message.startswith(f"id:{mid} sub:001 dlvrd:000 submit date:".encode())
                assert b" stat:UNDELIV err:011 text:" in dr.short_message
            else:
                assert dr.command_id == C.DATA_SM and P.tlv(dr, C.TAG_MESSAGE_STATE) == b"\x02"
            _ack(s, dr)
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses] == [0, 0])
        old.close(), new.close()


def test_held_receipts_too_long_for_3_3_are_read_once_and_a_flush_passes_over_a_bounded_number(pipe, monkeypatch):
    """An account whose receivers are all 3.3, with many held receipts none can take (held while none was bound):
    each is read (decoded) once, not at every flush of the held queue (each housekeeping tick and each receipt
    acknowledged: 17 us a receipt, per flush), and a flush passes over at most MAX_HELD_SKIPS of them, so one
    that fits behind them still goes (a few flushes later)."""
    from engine.smpp_proxy import held as H
    from engine.smpp_proxy.codec import v33
    n = 3 * H.MAX_HELD_SKIPS
    decoded = []
    real = v33.decode
    monkeypatch.setattr(v33, "decode", lambda raw: decoded.append(len(raw) > 270) or real(raw))   # (the long ones)
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        fit = encode(P.DeliverSm(sequence_number=1, esm_class=C.ESM_TYPE_DELIVERY_RECEIPT, short_message=b"id:fit"))
        raws = [encode(P.replace(_long_receipt(f"m{i}"), sequence_number=1)) for i in range(n)] + [fit]

        def hold():
            for raw in raws:
                h.proxy.held["esme1"].append(H._HeldReceipt(raw))
                h.proxy.held_total += 1
        h.run(hold)
        old, _ = _bind(h, 0x33, "receiver")
        dr = read_raw(old)                       # the one that fits, past the others
        assert dr.short_message == b"id:fit"
        _ack(old, dr)                            # (a flush again)
        assert wait(lambda: _windows(h, 0x33) == [0])
        assert h.run(lambda: h.proxy.held_total) == n
        assert sum(decoded) == n                 # each read once

        def one_flush():
            q = h.proxy.held["esme1"]
            after = q[H.MAX_HELD_SKIPS]
            h.proxy._flush_held("esme1")
            return q[0] is after
        assert h.run(one_flush)                  # it passed over MAX_HELD_SKIPS of them, not round the queue
        old.close()


def test_a_receipt_too_long_for_the_accounts_only_receiver_a_busy_3_3_one_is_left_with_the_smsc(pipe):
    """Its receivers all 3.3, their windows full: the receipt is not held (acknowledged, then kept until
    max_held_days for a 3.4 receiver the account may never bind, taking held room), the SMSC keeps it, as when
    their windows have room."""
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        h.proxy.accounts["esme1"].window = 1
        old, _ = _bind(h, 0x33)
        old.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                      registered_delivery=1, short_message=b"hello")))
        assert read_raw(old).command_status == 0
        busy = read_raw(old)                     # its window's one slot: a receipt left unanswered
        assert busy.command_id == C.DELIVER_SM
        assert h.run(h.sim.send_deliver, _long_receipt(_submit_no_receipt(old)))
        assert wait(lambda: len(h.sim.mo_responses) == 1)
        assert [r.command_status for r in h.sim.mo_responses] == [C.ESME_RX_T_APPN]
        assert h.run(lambda: h.proxy.held_total) == 0 and h.proxy.stats["receipts_too_long_for_v33"] == 1
        _ack(old, busy)
        assert wait(lambda: len(h.sim.mo_responses) == 2) and h.sim.mo_responses[1].command_status == 0
        old.close()
