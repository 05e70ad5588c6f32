"""The hot path's view and raw edits agree with the full decoder and encoder."""
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.smpp_proxy.codec import NEED_DATA, RemoteProtocolError, SmppConnection, Tlv, decode, encode, pdu_text
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.lean import append_tlv, encode_prefix, prefix_user_data, view_sm, with_sequence
from engine.smpp_proxy.codec.text import concat_info, gsm_encode
from engine.smpp_proxy.codec.udh import pdu_check_user_data, pdu_concat

VEC = Path(__file__).parent / "vectors" / "smpp"
SM_VECTORS = sorted(p for p in VEC.glob("*.bin") if p.read_bytes()[4:8] in (b"\x00\x00\x00\x04", b"\x00\x00\x00\x05"))


def outcome(f, raw):
    try:
        return f(raw)
    except RemoteProtocolError as e:
        return ("error", e.status, e.command_id, e.sequence_number, e.fatal)


def same_as_full(raw):
    """view_sm and decode accept and refuse alike; what the view reads equals the dataclass."""
    full = outcome(decode, raw)
    view = outcome(view_sm, raw)
    if isinstance(full, tuple):
        assert view == full
        return None
    assert view.pdu() == full
    assert outcome(lambda _: view.concat, None) == outcome(lambda _: pdu_concat(full), None)
    assert outcome(lambda _: view.text()[0], None) == outcome(lambda _: pdu_text(full), None)
    assert outcome(lambda _: view.check_user_data(), None) == outcome(lambda _: pdu_check_user_data(full), None)
    # the submit path's one call for both (SmView.checked_user_data): the same bytes, or the same error
    assert outcome(lambda _: view.checked_user_data(), None) == \
        outcome(lambda _: (view.check_user_data(), view.user_data)[1], None)
    payloads = [t.value for t in full.tlvs if t.tag == C.TAG_MESSAGE_PAYLOAD]
    assert view.message_payload == (payloads[0] if payloads else None)
    return view


@pytest.mark.parametrize("path", SM_VECTORS, ids=lambda p: p.stem)
def test_view_matches_full_decode_on_vectors(path):
    same_as_full(path.read_bytes())


def test_sound_sar_tlvs_beside_a_udhi_without_user_data():
    # found by tests/fuzz/smpp_fuzz.py (seed 4242): the view returned the SAR parts where the full
    # decoder refuses the missing UDH
    raw = encode(P.DeliverSm(sequence_number=3, esm_class=C.ESM_UDHI, short_message=b"",
                             tlvs=(Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x07"), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
                                   Tlv(C.TAG_SAR_SEGMENT_SEQNUM, b"\x01"))))
    assert outcome(lambda _: view_sm(raw).concat, None)[0] == "error"
    same_as_full(raw)


def test_lean_connection_yields_views_for_submit_and_deliver_only():
    sub = encode(P.SubmitSm(sequence_number=3, source_addr="a", destination_addr="b", short_message=b"x"))
    el = encode(P.EnquireLink(sequence_number=4))
    c = SmppConnection(lean=True)
    c.receive_data(sub + el)
    v, e, end = c.next_event(), c.next_event(), c.next_event()
    assert v.pdu() == decode(sub) and v.raw == sub and e == decode(el) and end is NEED_DATA


@given(st.binary(min_size=0, max_size=120), st.sampled_from([C.SUBMIT_SM, C.DELIVER_SM]))
@settings(max_examples=400)
def test_view_and_full_decode_agree_on_any_body(body, cid):
    raw = (16 + len(body)).to_bytes(4, "big") + cid.to_bytes(4, "big") + b"\x00\x00\x00\x00\x00\x00\x00\x07" + body
    same_as_full(raw)


def _submit(**kw):
    base = dict(sequence_number=11, source_addr="SHOPABC", destination_addr="84912000001", data_coding=0,
                short_message=gsm_encode("Giam gia"))
    base.update(kw)
    return P.SubmitSm(**base)


def test_raw_edits_equal_re_encoding():
    p = _submit(tlvs=(Tlv(0x1401, b"v"),))
    raw = encode(p)
    assert with_sequence(raw, 99) == encode(P.replace(p, sequence_number=99))
    assert append_tlv(raw, 0x1402, b"5;AD") == encode(P.replace(p, tlvs=p.tlvs + (Tlv(0x1402, b"5;AD"),)))
    assert decode(append_tlv(raw, 0x1402, b"")).tlvs[-1] == Tlv(0x1402, b"")


@pytest.mark.parametrize("dc,body,prefix,reading", [
    (0x00, gsm_encode("[QC] Giam gia"), "[TAG] ", "gsm"),
    (0x01, gsm_encode("[QC] Giam gia"), "[TAG] ", "gsm"),          # GSM septets under 1: prefix as GSM too
    (0x01, b"plain ascii", "[TAG] ", "ascii"),
    (0x03, "café".encode("latin-1"), "[TAG] ", "latin1"),
    (0x08, "Khuyến mãi".encode("utf-16-be"), "[TAG] ", "ucs2"),
])
def test_prefix_in_the_message_s_own_encoding(dc, body, prefix, reading):
    for p in (_submit(data_coding=dc, short_message=body),
              _submit(data_coding=dc, short_message=b"", tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, body),)),
              _submit(data_coding=dc, esm_class=0x40, short_message=bytes.fromhex("050003070201") + body)):
        v = view_sm(encode(p))
        text, how = v.text()
        assert how == reading
        out = prefix_user_data(v, encode_prefix(prefix, dc, how))
        q = decode(out)
        assert pdu_text(q) == prefix + text
        assert concat_info(q.esm_class, q.short_message, q.tlvs) == v.concat


def test_prefix_that_does_not_fit_or_cannot_be_written():
    v = view_sm(encode(_submit(short_message=b"x" * 250)))
    assert prefix_user_data(v, b"12345") is None
    assert encode_prefix("Ắ", 0x00, "gsm") is None and encode_prefix("x", 0x04, "binary") is None
    assert encode_prefix("x", 0x00, "gsm-packed") is None


def test_no_prefix_into_a_broken_header():
    v = view_sm(encode(_submit(esm_class=0x40, short_message=bytes.fromhex("f00003010201"))))
    assert prefix_user_data(v, b"[TAG] ") is None
    assert v.tlvs == () and v.tlvs is v.tlvs


@pytest.mark.parametrize("kw", [{}, dict(service_type="CMT", schedule_delivery_time="000001000000000R",
                                         validity_period="000002000000000R")], ids=["empty", "set"])
def test_view_and_full_decode_agree_on_every_truncation(kw):
    # the body cut after each octet: the empty C-Octet Strings (told by their first octet) and the
    # ones searched for refuse a body that ends in or before them alike
    raw = encode(_submit(**kw))
    for end in range(16, len(raw) + 1):
        same_as_full(end.to_bytes(4, "big") + raw[4:end])


@pytest.mark.parametrize("field", ["source_addr", "destination_addr"])
@pytest.mark.parametrize("octets", [19, 20, 21, 22, 40])
def test_an_address_at_and_past_its_21_octets_is_read_and_refused_as_the_full_decoder_does(field, octets):
    # SMPP 3.4 §5.2.8/§5.2.9: 21 octets with the NUL; the view finds the NUL from the field's start and
    # bounds it after, so a NUL further on (the next fields') must refuse it as well
    good = encode(_submit())
    addr = _submit().source_addr if field == "source_addr" else _submit().destination_addr
    at = good.index(addr.encode() + b"\x00")
    raw = good[:at] + b"8" * octets + good[at + len(addr):]
    raw = len(raw).to_bytes(4, "big") + raw[4:]
    if field == "source_addr" and octets >= 21:     # refused as too long, not as a missing NUL
        assert outcome(view_sm, raw)[1] == C.ESME_RINVSRCADR
    same_as_full(raw)
