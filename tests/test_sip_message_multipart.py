"""A multipart MESSAGE body (RFC 2046 §5.1) read by msgbody's own splitter, level by level, as a UA shows it: each
part between delimiter lines, its headers to the first line that is none, its transfer encoding undone; the preamble
and epilogue dropped, a missing close delimiter tolerated. No MIME parser reads levels the depth bound refuses: the
cost of a body is a few passes of bytes.find over it (its measure is in the commit that brought the splitter)."""
import base64

import pytest
from hypothesis import given, settings, strategies as st

from engine.sip_screen.msgbody import BodyError, NoText, message_content

from .test_sip_sms3gpp import SUBMIT_UCS2, rp_mo

MP = "multipart/mixed; boundary=b"


def text(body: bytes, ctype: str = MP) -> str:
    return message_content(ctype, body).text


def test_parts_as_a_ua_shows_them():
    two = b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/html\r\n\r\nWIN BIG\r\n--b--\r\n"
    assert text(two) == "hello\nWIN BIG\nWIN BIG"                     # (the html part as written and as shown)
    assert text(b"preamble WIN\r\n--b\r\n\r\nhi\r\n--b--\r\nepilogue WIN") == "hi"            # neither shown
    assert text(b"--b\r\nContent-Type: text/plain\r\n\r\nWIN BIG") == "WIN BIG"                 # no close delimiter
    assert text(b"--b\nContent-Type: text/plain\n\nWIN\n--b--\n") == "WIN"                      # LF line ends
    assert text(b"--b  \r\n\r\nWIN\r\n--b-- \r\n") == "WIN"                                     # transport padding
    assert text(b"--b\r\n\r\nWIN\r\n--bb\r\nstill WIN\r\n--b--\r\n") == "WIN\r\n--bb\r\nstill WIN"   # no delimiter
    assert text(b'--a b\r\n\r\nWIN\r\n--a b--\r\n', 'multipart/mixed; boundary="a b"') == "WIN"
    assert text(b"--b\r\nContent-Type: text/plain;\r\n charset=latin-1\r\n\r\nCaf\xe9\r\n--b--\r\n") == "Caf\u00e9"


def test_a_part_with_no_empty_line_after_its_headers_is_read_from_its_first_line_that_is_none():
    """A line that is no header ends the headers (the email parser and UAs read the text from there)."""
    assert text(b"--b\r\nContent-Type: text/plain\r\nWIN BIG now\r\n--b--\r\n") == "WIN BIG now"


def test_transfer_encodings_nesting_cpim_and_3gpp_parts():
    b64 = base64.b64encode(b"WIN BIG")
    assert text(b"--b\r\nContent-Transfer-Encoding: BASE64\r\n\r\n" + b64 + b"\r\n--b--\r\n") == "WIN BIG"
    assert text(b"--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nWIN=20BIG=\r\n now\r\n--b--\r\n") \
        == "WIN BIG now"
    nested = b"--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nWIN\r\n--c--\r\n--b--\r\n"
    assert text(nested) == "WIN"
    cpim = b"--b\r\nContent-Type: message/cpim\r\n\r\nFrom: x\r\n\r\nContent-Type: text/plain\r\n\r\nWIN\r\n--b--\r\n"
    assert text(cpim) == "WIN"
    sms = message_content(MP, b"--b\r\nContent-Type: application/vnd.3gpp.sms\r\n\r\n" + rp_mo(SUBMIT_UCS2)
                          + b"\r\n--b--\r\n")
    assert sms.what == "SMS-SUBMIT" and sms.recipient is not None
    assert isinstance(message_content(MP, b"--b\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--b--\r\n"), NoText)


@pytest.mark.parametrize("body, why", [
    (b"no delimiter at all", "boundary"),
    (b"".join(b"--b\r\n\r\nx\r\n" for _ in range(17)) + b"--b--\r\n", "parts"),
    (b"--b\r\nContent-Transfer-Encoding: x-foo\r\n\r\nWIN\r\n--b--\r\n", "Transfer-Encoding"),
])
def test_what_is_refused(body, why):
    with pytest.raises(BodyError, match=why):
        message_content(MP, body)
    with pytest.raises(BodyError, match="boundary"):
        message_content("multipart/mixed", b"--b\r\n\r\nWIN\r\n--b--\r\n")


_PIECES = st.sampled_from([b"--b", b"--b--", b"\r\n", b"\n", b"\r\n\r\n", b"Content-Type: ",
                           b"multipart/mixed; boundary=b", b"message/cpim", b"text/plain",
                           b"Content-Transfer-Encoding: base64", b" ", b":", b"WIN",
                           b"\x00\xff", b"application/vnd.3gpp.sms", b"=", b"charset=utf-16"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=40), st.sampled_from([MP, "message/cpim", "multipart/alternative; boundary=\"b\""]))
def test_any_body_is_read_or_refused_and_nothing_else(pieces, ctype):
    try:
        message_content(ctype, b"".join(pieces))
    except BodyError:
        pass
