"""Text readings by data_coding as clients send them (issue #15), and URLs in binary payloads (issue #10)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.smpp_proxy.codec import Tlv, binary_urls, decode, encode, pdu_reading, pdu_text, pdu_urls, read_text
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.text import GSM_BASIC, GSM_EXT, gsm_encode

GSM_CHARS = "".join(ch for ch in GSM_BASIC if ch != "\x1b") + "".join(GSM_EXT.values())


def sm(dc, body, **kw):
    return decode(encode(P.SubmitSm(sequence_number=1, source_addr="0912345678", destination_addr="0912000001",
                                    data_coding=dc, short_message=body, **kw)))


def test_gsm_bytes_under_data_coding_1_read_as_under_0():
    # node-smpp's default: GSM 03.38 septets under data_coding 1; "[" is ESC '<', "@" is 0x00
    body = gsm_encode("[QC] Giam gia 50% @ shop $5")
    assert pdu_text(sm(0x01, body)) == pdu_text(sm(0x00, body)) == "[QC] Giam gia 50% @ shop $5"
    assert pdu_reading(sm(0x01, body)) == ("[QC] Giam gia 50% @ shop $5", "gsm")


def test_plain_ascii_under_data_coding_1_stays_ascii():
    assert pdu_reading(sm(0x01, b"[QC] a_b {x} ~ user@host $5")) == ("[QC] a_b {x} ~ user@host $5", "ascii")


@pytest.mark.parametrize("dc,body,reading,want", [
    (0x00, b"\x00\x02[", "gsm", ("@$Ä", "gsm")),
    (0x00, b"\x00\x02[", "ascii", ("\x00\x02[", "ascii")),
    (0x01, "Tiếng".encode("utf-8"), "latin1", ("Tiáº¿ng", "latin1")),
    (0x00, "Ááé".encode("latin-1"), "auto", ("Ááé", "latin1")),      # bit 7 set: not septets
    (0x01, "Ááé".encode("latin-1"), "auto", ("Ááé", "latin1")),
    (0x01, b"\x1b<QC\x1b>", "gsm", ("[QC]", "gsm")),
    (0x03, b"caf\xe9", "gsm", ("café", "latin1")),                    # the setting is for data_coding 0 / 1 only
    (0x08, "ắ".encode("utf-16-be"), "auto", ("ắ", "ucs2")),
    (0x04, b"\x01\x02", "auto", (None, "binary")),
])
def test_readings(dc, body, reading, want):
    assert read_text(dc, body, reading) == want


def test_unknown_reading_is_refused():
    with pytest.raises(ValueError):
        read_text(0, b"x", "utf8")


@given(st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=160))
@settings(max_examples=300)
def test_auto_reads_gsm_text_under_1_as_the_handset_shows_it_when_gsm_specific(text):
    body = gsm_encode(text)
    t, how = read_text(0x01, body)
    # with an octet ASCII text never carries, the reading is GSM and exact (and the ASCII one judged with it
    # when they differ: tests/test_smpp_ucs2_two_readings.py)
    if any(b < 0x20 and b not in (0x09, 0x0A, 0x0D) for b in body):
        assert (getattr(t, "shown", t), how) == (text, "gsm")
    else:
        assert how == "ascii" and len(t) == len(body)
    assert read_text(0x00, body) == (text, "gsm")


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=160))
def test_auto_reads_printable_ascii_under_1_unchanged(text):
    assert read_text(0x01, text.encode()) == (text, "ascii")


# ---------------------------------------------------------------- binary payloads

WSP_SI = bytes.fromhex("250601ae" "02056a0045c60c03") + b"wap.yahoo.com\x00\x01\x03Yahoo!\x00\x01\x01"
WBXML_SL = bytes.fromhex("02066a00850a03") + b"promo-shop\x00" + bytes.fromhex("8501")
WAP_UDH = bytes.fromhex("0605040b8423f0")          # port addressing 9200 -> 2948 (WAP push)


def test_wap_push_si_and_sl_urls():
    assert binary_urls(WSP_SI) == ["http://wap.yahoo.com"]
    assert binary_urls(WBXML_SL) == ["http://www.promo-shop.com/"]
    p = sm(0x04, WAP_UDH + WSP_SI, esm_class=0x40)
    assert pdu_text(p) is None and pdu_urls(p) == ["http://wap.yahoo.com"]


def test_si_href_from_the_string_table():
    strtbl = b"evil.example/x\x00"
    si = bytes.fromhex("02056a") + bytes([len(strtbl)]) + strtbl + bytes.fromhex("45c60b8300010101")
    assert binary_urls(si) == ["evil.example/x"]


def test_plain_ascii_urls_in_other_binary_payloads():
    body = b"\x00\xff\x13http://bad.example/a?b=1\x00\x81 bit.ly/x \xfe www.km.vn\x00"
    assert binary_urls(body) == ["http://bad.example/a?b=1", "bit.ly/x", "www.km.vn"]
    p = sm(0xF5, b"", tlvs=(Tlv(0x0424, body),))
    assert pdu_urls(p)[0] == "http://bad.example/a?b=1"
    assert binary_urls(bytes(range(256)) * 4) == []


@given(st.binary(max_size=600))
@settings(max_examples=500)
def test_binary_urls_never_raise_and_stay_bounded(data):
    urls = binary_urls(data)
    assert len(urls) <= 8 and all(isinstance(u, str) and len(u) <= 512 for u in urls)
    assert binary_urls(WAP_UDH[1:] + data) is not None


# ---------------------------------------------------------------- vectors from node-smpp and issue 12
VEC = __import__("pathlib").Path(__file__).parent / "vectors" / "smpp"


def test_node_smpp_vectors_read_as_the_handset_shows_them():
    dc1 = decode((VEC / "22_submit_sm_node_smpp_dc1_gsm_bytes.bin").read_bytes())
    assert dc1.data_coding == 0x01
    assert pdu_reading(dc1) == ("[QC] Giam gia 50% @ shop ABC {$5} ~ TC gui 5656", "gsm")
    assert pdu_text(P.replace(dc1, data_coding=0x00)) == pdu_text(dc1)        # same verdict input as under 0
    assert pdu_reading(dc1, "ascii")[0].startswith("\x1b<QC\x1b>")              # what main used to judge
    assert pdu_text(decode((VEC / "23_submit_sm_node_smpp_ucs2_vi.bin").read_bytes())) == "Khuyến mãi [QC]"


def test_wap_push_vector_urls_and_poison_vector_refusal():
    from engine.smpp_proxy.codec import RemoteProtocolError
    from engine.smpp_proxy.codec import constants as C
    wap = decode((VEC / "25_submit_sm_wap_push_si.bin").read_bytes())
    assert pdu_text(wap) is None and pdu_urls(wap) == ["http://phish.example/login"]
    poison = decode((VEC / "24_deliver_sm_poison_udh.bin").read_bytes())
    with pytest.raises(RemoteProtocolError) as ei:
        pdu_text(poison)
    assert (ei.value.status, ei.value.command_id, ei.value.sequence_number) == (C.ESME_RINVMSGLEN, C.DELIVER_SM, 0x51)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40), st.sampled_from([0x00, 0x01]), st.sampled_from(["auto", "gsm", "ascii", "latin1"]))
def test_the_auto_reading_is_told_by_any_octet_over_0x7f(payload, dc, reading):
    # read_text tells Latin-1 by bytes.isascii() (a regex search for [\x80-\xff] before): the same texts and readings
    import re
    from engine.smpp_proxy.codec import text as T

    def by_regex(p):
        if reading == "auto" and re.search(rb"[\x80-\xff]", p):
            return T.read_text(dc, p, "latin1")
        return T.read_text(dc, p, reading)
    for p in (payload, bytes(range(256)), bytes([0x7f]) + payload, payload + b"\x80"):
        assert T.read_text(dc, p, reading) == by_regex(p)
