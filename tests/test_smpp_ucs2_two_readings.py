"""UCS-2 user data that might be Latin-1 bytes mislabelled (a private-use or U+FFFD unit, or an odd length, and few
NUL octets) is judged on both readings: what the handset shows (UCS-2) and what the client may have meant
(Latin-1). Before, such a message was judged as Latin-1 alone, so one private-use character appended to a link in
full-width or mathematical letters (no NUL octets: U+FF50, U+D835 U+DC29) turned it into Latin-1 noise and it went
out, while the same text without it was dropped (found by a probe of how message content is judged)."""
import time

import pytest

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.text import read_text
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, raw_session, read_raw  # noqa: F401  (pipe: fixture)
from tests.test_smpp_text_evasion import _statuses

SPAM = "Click phish.example/verify to keep your account"


def _fullwidth(s):
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def _math_bold(s):
    return "".join(chr(0x1D41A + ord(c) - 97) if "a" <= c <= "z" else c for c in s.lower())


FW, MB = _fullwidth(SPAM), _math_bold(SPAM)
EVASIONS = [(FW + "\ue000").encode("utf-16-be"), (FW + "\ufffd").encode("utf-16-be"), FW.encode("utf-16-be") + b"A",
            (MB + "\ue000").encode("utf-16-be", "surrogatepass")]


@pytest.mark.parametrize("payload", EVASIONS, ids=["fullwidth+U+E000", "fullwidth+U+FFFD", "fullwidth+odd", "math+U+E000"])
def test_what_the_handset_shows_is_in_the_text_judged(payload):
    text, _ = read_text(0x08, payload)
    assert (FW if payload[:2] == b"\xff\x23" else MB) in text


def test_latin1_bytes_sent_as_ucs2_are_read_as_latin1_too():
    text, reading = read_text(0x08, "Khuyến mãi lớn".encode("latin-1", "replace"))
    assert reading == "latin1-in-ucs2" and "Khuy?n m\xe3i l?n" in text


def test_the_readings_of_parts_are_joined_each_with_its_own():
    from engine.smpp_proxy.concat import joined
    a, b = (read_text(0x08, ("\ue000" + FW[:15]).encode("utf-16-be"))[0],
            read_text(0x08, (FW[15:] + "\ue000").encode("utf-16-be"))[0])
    assert FW in joined([a, b], False)


def test_through_the_proxy(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=1.0)) as h:
        s, _ = raw_session(h)
        for i, body in enumerate(EVASIONS, 1):
            s.sendall(encode(P.SubmitSm(sequence_number=i, source_addr="84901234567", destination_addr="84912345678",
                                        data_coding=8, short_message=body)))
        assert all(st != 0 for st in _statuses(s, list(range(1, len(EVASIONS) + 1))))
        for i, part in enumerate(("\ue000" + FW[:15], FW[15:] + "\ue000"), 1):    # split, each part with a junk unit
            body = bytes([5, 0, 3, 0x21, 2, i]) + part.encode("utf-16-be")
            s.sendall(encode(P.SubmitSm(sequence_number=20 + i, source_addr="84901234567",
                                        destination_addr="84912345678", data_coding=8, esm_class=0x40,
                                        short_message=body)))
        assert all(st != 0 for st in _statuses(s, [21, 22]))
        time.sleep(0.1)
        assert h.sim.submits() == []


@pytest.mark.parametrize("dc,enc", [(0x05, "shift_jis"), (0x0A, "iso2022_jp"), (0x0D, "euc_jp"), (0x0E, "euc_kr")])
def test_asian_data_codings_are_read_in_their_encoding_too(pipe, dc, enc):
    # before, read as Latin-1 alone: a link in full-width letters was noise ('#p#h#i', '£ð£è£é') and went out
    assert FW in read_text(dc, FW.encode(enc))[0]
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=7, source_addr="84901234567", destination_addr="84912345678",
                                    data_coding=dc, short_message=FW.encode(enc))))
        assert _statuses(s, [7]) != [0]


def test_ia5_read_as_gsm_for_a_control_octet_is_read_as_ascii_too(pipe):
    # before: GSM alone, '@' read as '¡', and the link to phish.example (after its userinfo) went out
    body = b"Verify: http://bank@phish.example/login \x01"
    assert "bank@phish.example" in read_text(0x01, body)[0]
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=8, source_addr="84901234567", destination_addr="84912345678",
                                    data_coding=0x01, short_message=body)))
        assert _statuses(s, [8]) != [0]
