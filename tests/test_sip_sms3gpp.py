"""SMS over IMS bodies (engine/sip_screen/sms3gpp.py, msgbody.py) on hand-built RP-DATA / TPDU vectors: GSM 7-bit with
and without a UDH, UCS2 Vietnamese, 8-bit data, an alphanumeric SMS-DELIVER originator, RP-ACK, and malformed bodies
(an Sms3gppError, never another exception)."""
import pytest
from hypothesis import given, settings, strategies as st

from engine.sip_screen.msgbody import BodyError, Content, NoText, message_content
from engine.sip_screen.sms3gpp import (SMS_DELIVER, SMS_SUBMIT, Address, RpData, RpOther, Sms3gppError,
                                       alphabet, decode_rp, decode_tpdu)

H = bytes.fromhex
SMSC = "07914889000000f1"                       # RP address: 7 octets, international, +84980000001


def rp_mo(tpdu: bytes, mr: int = 0x2A) -> bytes:
    """RP-DATA MS -> network (24.011 §7.3.1.2): RP-MTI 0, reference, empty originator, SMSC destination, TPDU."""
    return bytes([0x00, mr, 0x00]) + H(SMSC) + bytes([len(tpdu)]) + tpdu


def rp_mt(tpdu: bytes) -> bytes:
    """RP-DATA network -> MS (§7.3.1.1): RP-MTI 1, SMSC originator, empty destination."""
    return bytes([0x01, 0x07]) + H(SMSC) + b"\x00" + bytes([len(tpdu)]) + tpdu


# SMS-SUBMIT, VPF relative, TP-MR 0, TP-DA +46708251358, PID 0, DCS 0 (GSM 7-bit), VP 0xAA, "hellohello" (the
# classic example PDU: 10 septets packed into 9 octets E8329BFD4697D9EC37)
SUBMIT_GSM7 = H("1100" "0b916407281553f8" "00" "00" "aa" "0a" "e8329bfd4697d9ec37")
# the same with UDHI (0x51): UDH 05 00 03 2A 02 01 (part 1 of 2, reference 42), then "Hi" after 1 fill bit:
# 7 header septets + 2 = UDL 9; 'H' (1001000) after the fill bit is 0x90, 'i' 0x69
SUBMIT_GSM7_UDH = H("5100" "0b916407281553f8" "00" "00" "aa" "09" "050003" "2a0201" "9069")
# UCS2 (DCS 08), no VP (0x01), TP-DA national 0912345678 (type a1), "Việt Nam" in UTF-16BE
VIET = "Việt Nam"
SUBMIT_UCS2 = H("0107" "0aa19021436587" "00" "08") + bytes([len(VIET) * 2]) + VIET.encode("utf-16-be")
# 8-bit data (DCS 04): a link in plain ASCII, judged on what is readable in it
EIGHT_BIT = b"\x01\x02go http://spam.example/win now"
SUBMIT_8BIT = H("0100" "0aa19021436587" "00" "04") + bytes([len(EIGHT_BIT)]) + EIGHT_BIT


def test_gsm7_submit_in_rp_data():
    rp = decode_rp(rp_mo(SUBMIT_GSM7))
    assert isinstance(rp, RpData) and rp.to_network and rp.rp_mr == 0x2A and rp.rp_oa is None
    assert rp.rp_da == Address("84980000001", 1, 1)
    tp = decode_tpdu(rp.rp_ud, True)
    assert (tp.tp_mti, tp.tp_da, tp.text, tp.binary, tp.concat) == (SMS_SUBMIT, Address("46708251358", 1, 1),
                                                                     "hellohello", False, None)


def test_gsm7_with_udh_after_its_fill_bit():
    tp = decode_tpdu(SUBMIT_GSM7_UDH, True)
    assert tp.tp_udhi and tp.concat == (42, 2, 1) and tp.text == "Hi"


def test_ucs2_vietnamese():
    tp = decode_tpdu(SUBMIT_UCS2, True)
    assert tp.text == VIET and tp.tp_da == Address("0912345678", 2, 1) and tp.tp_dcs == 8


def test_8bit_is_judged_on_its_readable_link():
    tp = decode_tpdu(SUBMIT_8BIT, True)
    assert tp.binary and "http://spam.example/win" in tp.text


def test_deliver_with_alphanumeric_originator():
    from engine.smpp_proxy.codec.text import gsm_encode, gsm_pack
    name = gsm_pack(gsm_encode("BANKVN"))                  # 6 septets: 6 octets, 12 useful semi-octets
    tpdu = bytes([0x04, 12, 0xD0]) + name + H("00" "00" "62102221000000") + bytes([2]) + gsm_pack(b"\x4f\x4b")
    rp = decode_rp(rp_mt(tpdu))
    assert isinstance(rp, RpData) and not rp.to_network and rp.rp_oa == Address("84980000001", 1, 1)
    tp = decode_tpdu(rp.rp_ud, rp.to_network)
    assert (tp.tp_mti, tp.tp_oa, tp.text) == (SMS_DELIVER, Address("BANKVN", 5, 0), "OK")


def test_rp_ack_and_error_carry_no_text():
    assert decode_rp(H("022a")) == RpOther(2, 0x2A)                   # RP-ACK MS -> network
    assert decode_rp(H("052a0101")).name == "RP-ERROR"                # RP-ERROR network -> MS, cause 1
    assert isinstance(message_content("application/vnd.3gpp.sms", H("032a")), NoText)


@pytest.mark.parametrize("body, words", [
    (H("00"), "RP message cut short"),
    (H("072a"), "reserved RP-MTI 7"),
    (H("002a00") + H(SMSC), "RP-User Data cut short"),
    (rp_mo(SUBMIT_GSM7)[:-3], "RP-User Data cut short"),
    (H("002a0101") + H(SMSC) + b"\x01\x11", "empty RP-Originator"),          # an originator MS -> network
    (rp_mo(H("1100" "0b916407281553f8" "0000aa" "a1")), "TP-UDL of 161 septets"),
    (rp_mo(H("5100" "0b916407281553f8" "0000aa" "09" "0a0003")), "TP-User-Data cut short"),
    (rp_mo(H("4104" "0aa19021436587" "0004" "03" "090003")), "TP-User-Data-Header"),
    (rp_mo(H("03")), "reserved TP-MTI 3"),
    (rp_mo(H("00")), "SMS-DELIVER-REPORT"),
])
def test_malformed_bodies_say_what(body, words):
    with pytest.raises(BodyError, match=words):
        message_content("application/vnd.3gpp.sms", body)


def test_alphabets_of_23038():
    assert [alphabet(d) for d in (0x00, 0x04, 0x08, 0x0C, 0x4C, 0x24, 0x48, 0xC0, 0xE0, 0xF0, 0xF4, 0x80)] == \
        ["gsm7", "8bit", "ucs2", "gsm7", "gsm7", "8bit", "ucs2", "gsm7", "ucs2", "gsm7", "8bit", "gsm7"]


def test_the_reserved_alphabet_is_read_as_the_gsm_7_bit_default_alphabet():
    """TS 23.038 §4: "Any reserved codings shall be assumed to be the GSM 7 bit default alphabet (the same as codepoint
    00000000) by a receiving entity" -- bits 3-2 = 11 of the general data coding groups too (warthog618/sms decodes
    DCS 0x0C so, MediaTek's SMS stack maps a reserved alphabet to the default): a handset shows the text. It was read
    as 8-bit data, judged on its readable links only: any packed text passed."""
    from engine.smpp_proxy.codec.text import gsm_encode, gsm_pack
    for dcs in (0x0C, 0x1C, 0x4C):
        tpdu = H("0100" "0aa19021436587" "00") + bytes([dcs, 11]) + gsm_pack(gsm_encode("WIN BIG now"))
        got = decode_tpdu(tpdu, True)
        assert (got.text, got.binary) == ("WIN BIG now", False)


def test_plain_text_cpim_and_multipart():
    assert message_content("text/plain; charset=\"ISO-8859-1\"", "Café".encode("latin-1")) == Content("Café")
    assert message_content(None, "Mua ngay".encode()) == Content("Mua ngay")          # no Content-Type: text/plain
    cpim = (b"From: <sip:a@x>\r\nTo: <sip:b@y>\r\n\r\nContent-Type: text/plain;charset=utf-8\r\n\r\n"
            + "Khuyến mãi".encode())
    assert message_content("Message/CPIM", cpim).text == "Khuyến mãi"
    multi = (b"--b1\r\nContent-Type: application/im-iscomposing+xml\r\n\r\n<x/>\r\n--b1\r\n"
             b"Content-Type: text/plain\r\n\r\nwin big\r\n--b1--\r\n")
    assert message_content("multipart/mixed; boundary=b1", multi).text == "win big"
    got = message_content("multipart/mixed; boundary=b2", b"--b2\r\nContent-Type: application/vnd.3gpp.sms\r\n"
                          b"Content-Transfer-Encoding: binary\r\n\r\n" + rp_mo(SUBMIT_UCS2) + b"\r\n--b2--\r\n")
    assert got.text == VIET and got.recipient == Address("0912345678", 2, 1)
    assert isinstance(message_content("application/im-iscomposing+xml", b"<x/>"), NoText)
    assert isinstance(message_content("text/plain", b""), NoText)
    with pytest.raises(BodyError, match="unknown charset"):
        message_content("text/plain; charset=zlib", b"x")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_give_an_event_or_an_sms3gpp_error(data, to_network):
    for f in (decode_rp, lambda b: decode_tpdu(b, to_network)):
        try:
            f(data)
        except Sms3gppError:
            pass


@pytest.mark.parametrize("body", [rp_mo(SUBMIT_GSM7), rp_mo(SUBMIT_GSM7_UDH), rp_mo(SUBMIT_UCS2), rp_mo(SUBMIT_8BIT)])
def test_every_cut_of_a_body_is_an_error_that_says_so(body):
    """Fed short by any number of octets, a body is refused with an Sms3gppError (a 400 and its reason), never read as
    something else; whole, with trailing octets, it reads as it does whole."""
    for n in range(len(body)):
        with pytest.raises(BodyError):
            message_content("application/vnd.3gpp.sms", body[:n] or b"\x00")
    assert message_content("application/vnd.3gpp.sms", body + b"\x00\x00") == \
        message_content("application/vnd.3gpp.sms", body)
