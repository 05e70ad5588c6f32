"""The compiled lean view (codec/_leanview.c) gives the Python view's result for any bytes: the same SmView, slot
for slot, or the same refusal (it hands everything but its common case to the Python view)."""
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.traffic import pdus
from engine.smpp_proxy.codec import RemoteProtocolError, Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec import lean

_leanview = pytest.importorskip("engine.smpp_proxy.codec._leanview")
compiled = _leanview.viewer(lean.SmView, lean.SmView.__slots__, lean._view_sm)
HDR = struct.Struct(">IIII")
VEC = Path(__file__).parent / "vectors" / "smpp"


def outcome(f, *args, **kw):
    try:
        v = f(*args, **kw)
    except RemoteProtocolError as e:
        return ("error", type(e), str(e), e.status, e.command_id, e.sequence_number, e.fatal)
    assert type(v) is lean.SmView
    return [(name, type(getattr(v, name)), _plain(getattr(v, name))) for name in lean.SmView.__slots__]


def _plain(x):
    """An error held in a slot (udh_error, sar_error) as what it says: two of them are never the same object."""
    if isinstance(x, Exception):
        return (str(x), getattr(x, "status", None), getattr(x, "command_id", None), getattr(x, "sequence_number", None))
    return x


def same(raw, *head):
    """Both views of `raw` as the ESME read calls them (command_id, sequence_number, status from its header)
    and as the codec's other callers do (the bytes alone)."""
    if not head and len(raw) >= 16:
        _, cid, status, seq = HDR.unpack_from(raw)
        head = (cid, seq, status)
    if head:
        assert outcome(compiled, raw, *head) == outcome(lean._view_sm, raw, *head)
    assert outcome(compiled, raw) == outcome(lean._view_sm, raw)


def _submit(**kw):
    base = dict(sequence_number=7, source_addr="SHOPABC", source_addr_ton=5, destination_addr="84912345678",
                dest_addr_ton=1, dest_addr_npi=1, short_message=b"Uu dai cuoi tuan", data_coding=0)
    base.update(kw)
    return encode(P.SubmitSm(**base))


def test_the_mix_is_viewed_alike_and_by_the_compiled_view_itself():
    def refuse(*a):
        raise AssertionError("the common case went to the Python view")
    own = _leanview.viewer(lean.SmView, lean.SmView.__slots__, refuse)
    for raw in pdus(1500, seed=11):
        _, cid, status, seq = HDR.unpack_from(raw)
        assert outcome(own, raw, cid, seq, status) == outcome(lean._view_sm, raw, cid, seq, status)
        same(raw)


@pytest.mark.parametrize("kw", [
    dict(), dict(service_type="CMT"), dict(source_addr=""), dict(destination_addr=""), dict(short_message=b""),
    dict(short_message=b"x" * 254), dict(data_coding=8, short_message="Xin chào".encode("utf-16-be")),
    dict(esm_class=C.ESM_UDHI, short_message=bytes.fromhex("050003070201") + b"part"),
    dict(esm_class=C.ESM_UDHI, short_message=b"\x09"), dict(schedule_delivery_time="261206120000000+"),
    dict(validity_period="000001000000000R"), dict(registered_delivery=1, priority_flag=3, protocol_id=0x7f),
    dict(tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"payload"),), short_message=b""),
    dict(tlvs=(Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x07"), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
               Tlv(C.TAG_SAR_SEGMENT_SEQNUM, b"\x01"))),
    dict(source_addr="A" * 20, destination_addr="9" * 20), dict(source_addr="ÐÆ\xff"),
])
def test_submit_and_deliver_fields_and_their_limits(kw):
    raw = _submit(**kw)
    same(raw)
    same(raw[:4] + C.DELIVER_SM.to_bytes(4, "big") + raw[8:])
    for cut in range(len(raw)):             # every truncation (command_length as sent: the read's caller)
        same(raw[:cut], C.SUBMIT_SM, 7, 0)


def test_every_octet_changed_and_tlv_bytes_added():
    raw = _submit(service_type="", short_message=b"Hi")
    for i in range(16, len(raw)):
        for b in (0x00, 0x01, 0x40, 0x7f, 0xfe, 0xff):
            same(raw[:i] + bytes([b]) + raw[i + 1:])
    for tail in (b"\x00", b"\x04\x24", b"\x04\x24\x00\x02ab", b"\x02\x0c\x00\x01\x01", b"\x00\x00\x00\x00"):
        same(raw + tail)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=90), st.sampled_from([C.SUBMIT_SM, C.DELIVER_SM, C.DATA_SM]),
       st.integers(0, 2 ** 32 - 1))
def test_any_body(body, cid, seq):
    raw = HDR.pack(16 + len(body), cid, 0, seq) + body
    same(raw, cid, seq, 0)
    same(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=8, max_size=40), st.binary(max_size=30))
def test_sound_fixed_fields_with_any_values(octets, text):
    # NUL-ended strings of any octets and any one-octet fields, around a short_message of any bytes
    a, b = bytes(x or 0x31 for x in octets[:5]), bytes(x or 0x32 for x in octets[5:8])
    body = (b"\x00" + bytes(octets[:2]) + a + b"\x00" + bytes(octets[2:4]) + b + b"\x00" + bytes(octets[4:7])
            + b"\x00\x00" + bytes(octets[:4]) + bytes([len(text)]) + text)
    same(HDR.pack(16 + len(body), C.SUBMIT_SM, 0, 9) + body)


def test_other_calls_go_to_the_python_view():
    raw = _submit()
    assert outcome(compiled, raw, cid=C.SUBMIT_SM) == outcome(lean._view_sm, raw, cid=C.SUBMIT_SM)
    assert outcome(compiled, bytearray(raw), C.SUBMIT_SM, 7, 0) == outcome(lean._view_sm, bytearray(raw), C.SUBMIT_SM, 7, 0)
    assert outcome(compiled, raw, None, None, None) == outcome(lean._view_sm, raw, None, None, None)
    for vec in sorted(VEC.glob("*.bin")):
        same(vec.read_bytes())


def test_a_changed_smview_is_refused():
    class Other:
        __slots__ = tuple(reversed(lean.SmView.__slots__))
    with pytest.raises(ValueError):
        _leanview.viewer(Other, Other.__slots__, lean._view_sm)
