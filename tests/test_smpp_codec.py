"""SMPP codec: golden vectors (whole, byte by byte, with trailing bytes), round trips, fuzz."""
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.smpp_proxy.codec import (NEED_DATA, RemoteProtocolError, SmppConnection, Tlv, decode, encode, pdu_text)
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.text import concat_info, gsm_decode, gsm_encode, gsm_pack, gsm_unpack

VEC = Path(__file__).parent / "vectors" / "smpp"
GOOD = sorted(p for p in VEC.glob("*.bin") if not p.name.startswith("07_"))


def feed(chunks, max_pdu=65536):
    """h11's tr(): feed chunks, collect events; errors are events too."""
    c = SmppConnection(max_pdu)
    out = []
    for ch in chunks:
        c.receive_data(ch)
        while True:
            try:
                ev = c.next_event()
            except RemoteProtocolError as e:
                out.append(e)
                if e.fatal:
                    return out, c
                continue
            if ev is NEED_DATA:
                break
            out.append(ev)
    return out, c


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_golden_decode_reencode_byte_exact(path):
    raw = path.read_bytes()
    pdu = decode(raw)
    assert encode(pdu) == raw
    assert pdu.raw == raw
    whole, _ = feed([raw])
    onebyte, _ = feed([raw[i:i + 1] for i in range(len(raw))])
    trailing, c = feed([raw + raw[:7]])
    assert whole == onebyte == trailing == [pdu]
    assert c.trailing_data == raw[:7]


def test_vector_texts():
    t = lambda n: pdu_text(decode((VEC / n).read_bytes()))
    assert t("18_submit_sm_ucs2_vi.bin") == "nghắ nghiêng nghiễng ngả"
    # DCS 8 declared, Latin-1 sent: judged as meant and as the handset shows it (UCS-2)
    assert t("06_deliver_sm_dcs8_latin1_bytes.bin").meant == "Ááéíóúñü"
    assert t("14_deliver_sm_mo_syniverse.bin") == "there is no spoon"
    assert t("08_data_sm_message_payload.bin") == "Test"
    assert t("16_submit_sm_udh_port_addressing.bin") is None               # 8-bit binary: not text
    assert t("11_deliver_sm_dlr_in_message_payload.bin").startswith("id:0000436949")


def test_malformed_vector_07_is_invalid_msglen_and_stream_continues():
    bad = (VEC / "07_deliver_sm_malformed_sm_length.bin").read_bytes()
    good = (VEC / "14_deliver_sm_mo_syniverse.bin").read_bytes()
    evs, _ = feed([bad + good])
    assert isinstance(evs[0], RemoteProtocolError) and evs[0].status == C.ESME_RINVMSGLEN and not evs[0].fatal
    assert evs[0].command_id == C.DELIVER_SM and evs[0].sequence_number == 1
    assert evs[1] == decode(good)


@pytest.mark.parametrize("raw,status,fatal", [
    (bytes.fromhex("0000000800000015"), None, None),                                    # incomplete: need data
    (bytes.fromhex("0000000a0000001500000000000000010000"), C.ESME_RINVCMDLEN, True),  # length < 16
    (bytes.fromhex("00000010000000ff0000000000000002"), C.ESME_RINVCMDID, False),      # unknown command
    (bytes.fromhex("000000140000001500000000000000030000ffff"), C.ESME_RINVCMDLEN, False),  # bytes after enquire_link
    (bytes.fromhex("00000013000000040000000000000004616263"), C.ESME_RINVCMDLEN, False),  # cut C-string
])
def test_error_statuses(raw, status, fatal):
    evs, _ = feed([raw])
    if status is None:
        assert evs == []
        return
    assert isinstance(evs[0], RemoteProtocolError) and evs[0].status == status and evs[0].fatal == fatal


def test_tlv_errors():
    base = P.SubmitSm(sequence_number=9, source_addr="a", destination_addr="b", short_message=b"x")
    raw = encode(base)
    trunc = raw + b"\x14\x00\x00"                             # 3 bytes: not even a TLV header
    evs, _ = feed([(len(trunc)).to_bytes(4, "big") + trunc[4:]])
    assert evs[0].status == C.ESME_RINVOPTPARSTREAM
    over = raw + b"\x14\x00\x00\x09ab"                          # TLV claims 9 bytes, 2 follow
    evs, _ = feed([(len(over)).to_bytes(4, "big") + over[4:]])
    assert evs[0].status == C.ESME_RINVOPTPARSTREAM
    badlen = raw + b"\x02\x0c\x00\x01\x07"                      # sar_msg_ref_num must be 2 bytes
    evs, _ = feed([(len(badlen)).to_bytes(4, "big") + badlen[4:]])
    assert evs[0].status == C.ESME_RINVTLVLEN == C.ESME_RINVPARLEN


def test_oversize_pdu_is_fatal():
    evs, _ = feed([bytes.fromhex("0001000000000004000000000000000a")], max_pdu=4096)
    assert evs[0].fatal and evs[0].status == C.ESME_RINVCMDLEN


def test_unknown_and_vendor_tlvs_kept_byte_faithfully():
    p = P.DeliverSm(sequence_number=5, source_addr="84901", destination_addr="5656", short_message=b"",
                    tlvs=(Tlv(0x1401, b"\x00\x01vendor"), Tlv(0x7777, b""), Tlv(0x0424, b"payload")))
    assert decode(encode(p)) == p


def test_every_command_round_trips():
    for cid, cls in P.CLASSES.items():
        if cid == C.SUBMIT_MULTI:
            continue                     # needs at least one destination (below)
        p = cls(sequence_number=123)
        assert decode(encode(p)) == p, cls.__name__
    m = P.SubmitMulti(sequence_number=1, source_addr="x", dest_addresses=((1, 1, 1, "84912345678"), (2, "list1")),
                      short_message=b"hello")
    assert decode(encode(m)) == m
    r = P.SubmitMultiResp(sequence_number=1, message_id="m1", unsuccess_smes=((1, 1, "849", 0x45),))
    assert decode(encode(r)) == r
    # a response with an error status may omit its body (SMPP 3.4 §4.4.2)
    e = P.SubmitSmResp(sequence_number=7, command_status=C.ESME_RTHROTTLED)
    assert len(encode(e)) == 16 and decode(encode(e)) == e


_cstr = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=20)
_tlvs = st.lists(st.builds(Tlv, st.integers(0x1400, 0x3FFF), st.binary(max_size=30)), max_size=3).map(tuple)


@given(seq=st.integers(1, 0x7FFFFFFF), src=_cstr, dst=_cstr, esm=st.integers(0, 255), dc=st.integers(0, 255),
       sm=st.binary(max_size=254), tlvs=_tlvs, cls=st.sampled_from([P.SubmitSm, P.DeliverSm]))
@settings(max_examples=300)
def test_hypothesis_round_trip(seq, src, dst, esm, dc, sm, tlvs, cls):
    p = cls(sequence_number=seq, source_addr=src, destination_addr=dst, esm_class=esm & ~C.ESM_UDHI, data_coding=dc,
            short_message=sm, tlvs=tlvs)
    raw = encode(p)
    assert decode(raw) == p
    evs, _ = feed([raw[i:i + 3] for i in range(0, len(raw), 3)])
    assert evs == [p]


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_random_bytes_give_events_or_protocol_errors_only(data):
    evs, _ = feed([data])
    for e in evs:
        assert isinstance(e, RemoteProtocolError) or hasattr(e, "command_id")


@given(st.text(alphabet=st.sampled_from("@£$¥èéùìòÇ\nØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"), max_size=160))
def test_gsm_round_trip_packed_and_unpacked(text):
    s = gsm_encode(text)
    assert gsm_decode(s) == text
    assert gsm_unpack(gsm_pack(s), len(s)) == s


def test_gsm_packed_known_value():
    # 3GPP TS 23.038 example: "hellohello" packed
    assert gsm_pack(gsm_encode("hellohello")).hex() == "e8329bfd4697d9ec37"


def test_concat_info_udh_and_sar():
    udh8 = bytes([5, 0, 3, 0x42, 3, 2]) + b"abc"
    assert concat_info(0x40, udh8, ()) == (0x42, 3, 2)
    udh16 = bytes([6, 8, 4, 0x12, 0x34, 2, 1]) + b"abc"
    assert concat_info(0x40, udh16, ()) == (0x1234, 2, 1)
    sar = (Tlv(0x020C, b"\x00\x07"), Tlv(0x020E, b"\x02"), Tlv(0x020F, b"\x02"))
    assert concat_info(0, b"abc", sar) == (7, 2, 2)
    assert concat_info(0, udh8, ()) is None                  # no UDHI bit: no UDH


def test_utf16_surrogate_pairs():
    from engine.smpp_proxy.codec import decode_text
    assert decode_text(8, "👍 ok".encode("utf-16-be")) == "👍 ok"


def test_window_expires_oldest_first_and_only_those_due():
    from engine.smpp_proxy.codec import Window
    w = Window(size=3, timeout=10.0)
    w.add(1, 0.0, "a")
    w.add(2, 1.0, "b")
    w.add(3, 2.0, "c")
    assert w.full and w.expired(10.5) == [(1, "a")]
    assert w.complete(3) == "c" and w.complete(3) is None
    w.add(2, 5.0, "b2")                                  # a reused sequence number restarts its clock
    w.add(4, 6.0, "d")                                   # (the clock only moves forward)
    assert w.expired(13.5) == [] and w.expired(15.0) == [(2, "b2")]
    assert w.expired(99) == [(4, "d")] and not w.pending
