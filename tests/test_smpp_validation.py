"""SMPP 3.4 field validation: every refused PDU is a RemoteProtocolError with a client-error status,
the command_id and sequence_number it carried, and the stream goes on."""
import pytest

from engine.smpp_proxy.codec import RemoteProtocolError, Tlv, decode, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.lean import view_sm
from engine.smpp_proxy.codec.pdu import LocalProtocolError, answer_for
from engine.smpp_proxy.codec.text import pdu_text
from engine.smpp_proxy.codec.udh import concat_info, parse_udh, pdu_check_user_data, pdu_concat

from .test_smpp_codec import feed


def submit(**kw):
    base = dict(sequence_number=77, source_addr="SHOPABC", destination_addr="84912000001", short_message=b"hi")
    base.update(kw)
    return P.SubmitSm(**base)


def raw_with(pdu, **fields):
    """Encode `pdu` with fields the encoder would refuse: patch them in as raw C-Octet Strings."""
    raw = bytearray(encode(pdu))
    for name, value in fields.items():
        old = getattr(pdu, name).encode("latin-1") + b"\x00"
        i = raw.index(old, 16)
        raw[i:i + len(old)] = value + b"\x00"
    raw[0:4] = len(raw).to_bytes(4, "big")
    return bytes(raw)


def refused(raw):
    with pytest.raises(RemoteProtocolError) as ei:
        decode(raw)
    e = ei.value
    assert not e.fatal
    evs, _ = feed([raw + encode(P.EnquireLink(sequence_number=9))])       # the stream goes on
    assert isinstance(evs[0], RemoteProtocolError) and evs[0].status == e.status
    assert evs[1] == P.EnquireLink(sequence_number=9)
    return e


@pytest.mark.parametrize("field,ok,bad,status", [
    ("destination_addr", b"8" * 20, b"8" * 21, C.ESME_RINVDSTADR),
    ("source_addr", b"S" * 20, b"S" * 21, C.ESME_RINVSRCADR),
    ("service_type", b"CMTXX", b"CMTXXX", C.ESME_RINVSERTYP),
    ("schedule_delivery_time", b"261130120000000+", b"26113012000000+", C.ESME_RINVSCHED),
    ("validity_period", b"000001000000000R", b"tomorrow", C.ESME_RINVEXPIRY),
])
def test_submit_sm_field_limits(field, ok, bad, status):
    good = submit(**{field: "x"})
    assert getattr(decode(raw_with(good, **{field: ok})), field) == ok.decode()
    e = refused(raw_with(good, **{field: bad}))
    assert (e.status, e.command_id, e.sequence_number) == (status, C.SUBMIT_SM, 77)


@pytest.mark.parametrize("field,bad,status", [
    ("system_id", b"s" * 16, C.ESME_RINVSYSID),
    ("password", b"p" * 9, C.ESME_RINVPASWD),
    ("system_type", b"t" * 13, C.ESME_RINVSYSTYP),
])
def test_bind_field_limits(field, bad, status):
    good = P.BindTransceiver(sequence_number=3, system_id="esme1", password="secret", system_type="x")
    assert decode(raw_with(good, system_id=b"s" * 15, password=b"p" * 8)).password == "p" * 8
    e = refused(raw_with(good, **{field: bad}))
    assert (e.status, e.command_id, e.sequence_number) == (status, C.BIND_TRANSCEIVER, 3)
    assert answer_for(e) == P.BindTransceiverResp(sequence_number=3, command_status=status)


def test_data_sm_allows_65_octet_addresses_and_message_id_is_bounded():
    d = P.DataSm(sequence_number=1, source_addr="a" * 64, destination_addr="b" * 64)
    assert decode(encode(d)) == d
    q = P.QuerySm(sequence_number=2, message_id="m", source_addr="x")
    e = refused(raw_with(q, message_id=b"m" * 65))
    assert e.status == C.ESME_RINVMSGID


def test_responses_are_not_bounded_an_smsc_answer_is_never_refused_for_length():
    r = P.SubmitSmResp(sequence_number=4, message_id="m" * 100)
    assert decode(encode(r)) == r


def test_missing_nul_is_truncation_over_long_string_is_the_field_status():
    raw = encode(submit())
    cut = raw[:16] + b"\x00\x01\x01" + b"SHOP"               # source_addr cut before its NUL
    e = refused(len(cut).to_bytes(4, "big") + cut[4:])
    assert e.status == C.ESME_RINVCMDLEN and e.sequence_number == 77
    run = raw[:16] + b"\x00\x01\x01" + b"S" * 40              # no NUL within 21 octets
    e = refused(len(run).to_bytes(4, "big") + run[4:])
    assert e.status == C.ESME_RINVSRCADR


def test_sm_length_255_is_invalid_message_length():
    raw = bytearray(encode(submit(short_message=b"x" * 254)))
    raw[raw.index(bytes([254]) + b"x")] = 255
    raw += b"x"
    raw[0:4] = len(raw).to_bytes(4, "big")
    assert refused(bytes(raw)).status == C.ESME_RINVMSGLEN


def test_encoder_refuses_what_the_decoder_would():
    with pytest.raises(LocalProtocolError):
        encode(submit(destination_addr="8" * 21))
    with pytest.raises(LocalProtocolError):
        encode(P.BindTransmitter(system_id="x", password="ninechars"))


# ---------------------------------------------------------------- user data: UDH, SAR, message_payload
# Framing accepts these PDUs (they have a sequence number and are answered by the proxy, which logs
# the refusal); reading their user data raises a RemoteProtocolError carrying the PDU's identity.

POISON_MO = P.DeliverSm(sequence_number=0x51, source_addr="84912000001", destination_addr="5656", esm_class=0x40,
                        short_message=bytes.fromhex("f00003010201"))


def user_data_refused(pdu, read=True):
    """The status each way of reading `pdu`'s user data refuses it with (full PDU and lean view agree)."""
    p = decode(encode(pdu))
    with pytest.raises(RemoteProtocolError) as ei:
        pdu_check_user_data(p)
    e = ei.value
    assert (e.command_id, e.sequence_number) == (pdu.command_id, pdu.sequence_number) and not e.fatal
    assert e.status not in (C.ESME_RSYSERR, C.ESME_RUNKNOWNERR)
    if pdu.command_id in (C.SUBMIT_SM, C.DELIVER_SM):
        with pytest.raises(RemoteProtocolError) as ev:
            view_sm(encode(pdu)).check_user_data()
        assert (ev.value.status, ev.value.command_id, ev.value.sequence_number) == (e.status, e.command_id,
                                                                                    e.sequence_number)
    if read:                               # a bad header also stops pdu_text and pdu_concat, same status
        for f in (pdu_text, pdu_concat):
            with pytest.raises(RemoteProtocolError) as er:
                f(p)
            assert (er.value.status, er.value.sequence_number) == (e.status, e.sequence_number)
    return e


@pytest.mark.parametrize("sm,status", [
    (bytes.fromhex("f00003010201"), C.ESME_RINVMSGLEN),           # UDHL 240, 5 octets follow (issue #12's poison MO)
    (bytes.fromhex("0500090102036869"), C.ESME_RINVMSGLEN),       # IE length 9 overruns the 5-octet header
    (bytes.fromhex("05000301"), C.ESME_RINVMSGLEN),               # UDHL 5, 3 octets follow
    (bytes.fromhex("0400020102") + b"hi", C.ESME_RINVESMCLASS),   # concat IE of 2 octets
    (bytes.fromhex("050003070300") + b"hi", C.ESME_RINVESMCLASS),  # part 0
    (bytes.fromhex("050003070304") + b"hi", C.ESME_RINVESMCLASS),  # part 4 of 3
    (bytes.fromhex("050003070000") + b"hi", C.ESME_RINVESMCLASS),  # total 0
    (bytes.fromhex("0608040001020301") + b"hi", C.ESME_RINVESMCLASS),  # 16-bit ref concat: part 3 of 2
    (b"", C.ESME_RINVMSGLEN),                                      # UDHI and no user data at all
])
def test_bad_udh_is_a_client_error_with_the_pdu_s_identity(sm, status):
    for cls in (P.SubmitSm, P.DeliverSm):
        e = user_data_refused(cls(sequence_number=0x51, source_addr="849", destination_addr="5656", esm_class=0x40,
                                  short_message=sm))
        assert e.status == status


def test_poison_mo_is_answerable_with_a_deliver_sm_resp_error():
    evs, conn = feed([encode(POISON_MO) + encode(P.EnquireLink(sequence_number=0x52))])
    assert evs == [POISON_MO, P.EnquireLink(sequence_number=0x52)] and not conn.closed
    with pytest.raises(RemoteProtocolError) as ei:
        pdu_text(evs[0])
    assert answer_for(ei.value) == P.DeliverSmResp(sequence_number=0x51, command_status=C.ESME_RINVMSGLEN)


def test_answer_for_unknown_command_or_header_only_is_generic_nack():
    e = RemoteProtocolError("x", C.ESME_RINVCMDID, 0x1234, 5)
    assert answer_for(e) == P.GenericNack(sequence_number=5, command_status=C.ESME_RINVCMDID)
    assert answer_for(RemoteProtocolError("x", C.ESME_RINVCMDLEN)) == P.GenericNack(command_status=C.ESME_RINVCMDLEN)
    resp = RemoteProtocolError("x", C.ESME_RINVCMDLEN, C.SUBMIT_SM_RESP, 6)      # a response is never answered
    assert answer_for(resp).command_id == C.GENERIC_NACK


def test_good_udh_still_decodes_with_concat_and_ports():
    sm = bytes.fromhex("0b0003070302" "050415811581") + b"hi"          # concat 2 of 3, ports 5505 -> 5505
    p = decode(encode(submit(esm_class=0x40, short_message=sm)))
    pdu_check_user_data(p)
    assert concat_info(p.esm_class, p.short_message, p.tlvs) == pdu_concat(p) == (7, 3, 2)
    assert pdu_text(p) == "hi"
    assert parse_udh(bytes.fromhex("0608040102030168"))[1] == (0x0102, 3, 1)


def test_udh_in_message_payload_is_checked_too():
    d = P.DataSm(sequence_number=8, source_addr="a", destination_addr="b", esm_class=0x40,
                 tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, bytes.fromhex("f00003010201")),))
    assert user_data_refused(d).status == C.ESME_RINVMSGLEN
    ok = P.replace(d, tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, bytes.fromhex("050003010201") + b"x" * 300),))
    pdu_check_user_data(decode(encode(ok)))
    assert pdu_concat(ok) == (1, 2, 1) and pdu_text(ok) == "x" * 300


@pytest.mark.parametrize("tlvs,status", [
    ((Tlv(0x020C, b"\x00\x07"), Tlv(0x020E, b"\x02")), C.ESME_RMISSINGOPTPARAM),
    ((Tlv(0x020C, b"\x00\x07"), Tlv(0x020E, b"\x02"), Tlv(0x020F, b"\x00")), C.ESME_RINVOPTPARAMVAL),
    ((Tlv(0x020C, b"\x00\x07"), Tlv(0x020E, b"\x02"), Tlv(0x020F, b"\x03")), C.ESME_RINVOPTPARAMVAL),
])
def test_sar_tlvs_incomplete_or_out_of_range(tlvs, status):
    p = submit(tlvs=tlvs)
    assert user_data_refused(p, read=False).status == status
    with pytest.raises(RemoteProtocolError):
        pdu_concat(p)


@pytest.mark.parametrize("tag", [0x020C, 0x020E, 0x020F])
@pytest.mark.parametrize("cls", [P.SubmitSm, P.DeliverSm, P.DataSm])
def test_a_sar_tlv_given_twice_is_refused(tag, cls):
    # which copy an SMSC reads is undefined (as for two message_payloads): with the first one naming
    # reference 9 and the last 100 / 200, two parts we took for two messages were joined on the handset
    sar = {0x020C: b"\x00\x09", 0x020E: b"\x02", 0x020F: b"\x01"}
    again = {0x020C: b"\x00\x64", 0x020E: b"\x03", 0x020F: b"\x02"}[tag]
    tlvs = tuple(Tlv(t, v) for t, v in sar.items()) + (Tlv(tag, again),)
    kw = {} if cls is P.DataSm else {"short_message": b"hi"}
    p = cls(sequence_number=0x61, source_addr="849", destination_addr="84912000001", tlvs=tlvs, **kw)
    e = user_data_refused(p, read=False)
    assert (e.status, e.command_id, e.sequence_number) == (C.ESME_ROPTPARNOTALLWD, cls.command_id, 0x61)
    with pytest.raises(RemoteProtocolError):
        pdu_concat(p)
    same = cls(sequence_number=0x61, source_addr="849", destination_addr="84912000001",
               tlvs=tuple(Tlv(t, v) for t, v in sar.items()), **kw)
    assert pdu_concat(decode(encode(same))) == (9, 2, 1)


def test_short_message_and_message_payload_together_or_twice_are_refused():
    both = submit(tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"other text"),))
    e = user_data_refused(both, read=False)
    assert (e.status, e.command_id, e.sequence_number) == (C.ESME_RINVMSGLEN, C.SUBMIT_SM, 77)
    twice = submit(short_message=b"", tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"a"), Tlv(C.TAG_MESSAGE_PAYLOAD, b"b")))
    assert user_data_refused(twice, read=False).status == C.ESME_ROPTPARNOTALLWD
    one = submit(short_message=b"", tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"a" * 400),))
    pdu_check_user_data(decode(encode(one)))


def test_deliver_sm_times_are_sized_but_not_parsed():
    d = P.DeliverSm(sequence_number=5, source_addr="a", destination_addr="b", schedule_delivery_time="whatever",
                    validity_period="v")
    assert decode(encode(d)) == d
    e = refused(raw_with(d, validity_period=b"x" * 17))
    assert e.status == C.ESME_RINVEXPIRY
