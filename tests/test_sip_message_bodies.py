"""What of a SIP MESSAGE's body is judged (engine/sip_screen/msgbody.py) when a peer wraps the text to slip it past the
screen, or sends a body built to cost the screen: a compressed body (Content-Encoding), a CPIM content with no
Content-Type or in a transfer encoding, a charset whose decoder fails, a multipart body of many parts or deep
nesting. Each is read as the receiving UA reads it, or refused with a status, never relayed unread nor a 500."""
import gzip
import zlib

import pytest

from engine.sip_screen.msgbody import BodyError, Content, message_content

from .sip_helpers import UAC, sent
from .test_sip_message import message, pipe, screen            # noqa: F401 (fixtures)


def test_a_compressed_body_is_read_decompressed():
    """RFC 3261 §20.12: a body in Content-Encoding gzip is what the UA shows once inflated (it was judged as the
    compressed bytes: any text passed)."""
    assert message_content("text/plain", gzip.compress(b"WIN BIG now"), "gzip") == Content("WIN BIG now")
    assert message_content("text/plain", zlib.compress(b"WIN BIG now"), "Deflate").text == "WIN BIG now"
    assert message_content("text/plain", gzip.compress(gzip.compress(b"win")), "gzip, gzip").text == "win"
    assert message_content("text/plain", b"plain", "identity").text == "plain"


def test_a_compressed_body_that_does_not_inflate_or_inflates_too_far_is_refused():
    from engine.sip_screen.msgbody import MAX_DECODED
    with pytest.raises(BodyError, match="gzip"):
        message_content("text/plain", b"not gzip at all", "gzip")
    with pytest.raises(BodyError, match="more than"):
        message_content("text/plain", gzip.compress(bytes(MAX_DECODED + 1)), "gzip")
    with pytest.raises(BodyError) as e:
        message_content("text/plain", b"x", "br")
    assert e.value.status == 415 and ("Accept-Encoding", "identity, gzip, deflate") in e.value.headers


def test_the_screen_judges_a_gzip_message_and_answers_an_unknown_coding_415(screen):
    scr = screen()
    scr.on_datagram(message(gzip.compress(b"WIN BIG now"), "text/plain", extra=["Content-Encoding: gzip"]), UAC)
    scr.on_datagram(message(b"WIN BIG now", "text/plain", call_id="e2@x", extra=["e: compress"]), UAC)
    out = sent(scr)
    assert [r.status for r, _ in out] == [608, 415]
    assert out[1][0].get("accept-encoding") == "identity, gzip, deflate"
    assert [ln["action"] for ln in scr.lines()] == ["drop", "refuse"]


def test_cpim_content_without_a_content_type_is_text_plain():
    """RFC 3862 §3.1 / RFC 2045 §5.2: a content with no Content-Type is text/plain (it was relayed unjudged)."""
    cpim = b"From: <im:a@b>\r\nTo: <im:c@d>\r\n\r\nSubject: x\r\n\r\nWIN BIG"
    assert message_content("message/cpim", cpim) == Content("WIN BIG")
    assert message_content("multipart/mixed; boundary=b", b"--b\r\nContent-Type:\r\n\r\nWIN BIG\r\n--b--\r\n").text \
        == "WIN BIG"


def test_cpim_content_in_a_transfer_encoding_is_decoded():
    cpim = b"From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" \
        b"V0lOIEJJRyBub3c="
    assert message_content("message/cpim", cpim).text == "WIN BIG now"
    qp = b"From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n" \
        b"WIN=20BIG"
    assert message_content("message/cpim", qp).text == "WIN BIG"


@pytest.mark.parametrize("charset", ["idna", "punycode"])
def test_a_charset_whose_decoder_fails_is_a_400_not_a_500(charset):
    with pytest.raises(BodyError, match="charset"):
        message_content(f"text/plain; charset={charset}", b"WIN BIG \xff\xfe\xfd")


def test_a_charset_failure_is_answered_400_without_a_traceback(screen):
    scr = screen()
    scr.on_datagram(message(b"WIN BIG \xff", "text/plain;charset=idna"), UAC)
    assert [r.status for r, _ in sent(scr)] == [400]
    assert [(ln["action"], ln["status"]) for ln in scr.lines()] == [("refuse", 400)]


def _nested(depth: int, pad: bytes = b"") -> bytes:
    inner = b"--b%d\r\nContent-Type: text/plain\r\n\r\nWIN%s\r\n--b%d--\r\n" % (depth, pad, depth)
    for i in range(depth - 1, -1, -1):
        inner = b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n%s\r\n--b%d--\r\n" % (i, i + 1, inner, i)
    return inner


def test_a_body_of_many_parts_or_deep_nesting_is_refused_before_it_is_parsed():
    """A multipart body is counted (its delimiter lines) before the MIME parser reads it: 3,000 parts took 70 ms and
    200 levels 230 ms of CPU (a MESSAGE, judged, ~45 us), 2,000 levels a RecursionError (a 500 and a traceback)."""
    many = b"".join(b"--b\r\n\r\nx\r\n" for _ in range(3000)) + b"--b--\r\n"
    for body, ctype in ((many, "multipart/mixed; boundary=b"), (_nested(200), "multipart/mixed; boundary=b0"),
                        (_nested(2000), "multipart/mixed; boundary=b0")):
        with pytest.raises(BodyError, match="delimiter lines"):      # (counted, not parsed: no timing claimed)
            message_content(ctype, body)
    assert message_content("multipart/mixed; boundary=b0", _nested(2)).text == "WIN"


@pytest.mark.parametrize("encoded", ["WIN BIG".encode("utf-16"), "WIN BIG".encode("utf-16-be").join([b"\xfe\xff", b""]),
                                     b"\xef\xbb\xbfWIN BIG"])
def test_a_byte_order_mark_names_the_encoding_whatever_the_charset_says(encoded):
    """The WHATWG decode (what a UA that renders text does): a BOM overrides the declared or default charset. A UTF-16
    text with its BOM and no charset was read as UTF-8 (NULs between the letters): any text passed."""
    for ctype in ("text/plain", "text/plain; charset=utf-8", "text/plain; charset=iso-8859-1"):
        assert message_content(ctype, encoded).text == "WIN BIG"


def test_html_is_judged_as_written_and_as_shown():
    """A text/html body is judged as written (its links, in href too) and as a UA shows it: tags gone, character
    references read. 'W&#73;N B<b></b>IG' shows 'WIN BIG' and passed."""
    got = message_content("text/html", b'<p>W&#73;N B<b></b>IG <a href="http://spam.example/x">here</a>&amp;</p>').text
    assert "WIN BIG here&" in got and "http://spam.example/x" in got
    assert message_content("text/plain", b"W&#73;N").text == "W&#73;N"             # plain text is shown as written


def test_the_screen_drops_an_html_message_that_shows_the_spam(screen):
    scr = screen()
    scr.on_datagram(message(b"<p>W&#73;N B<i></i>IG now</p>", "text/html; charset=utf-8"), UAC)
    assert [r.status for r, _ in sent(scr)] == [608]


def test_an_inflated_body_is_bounded_near_what_a_message_may_carry():
    """RFC 3428 §7: a MESSAGE is 1300 bytes unless its UAC knows better. A 10 KB text behind a ~100-byte gzip body (its
    judging ~0.6 ms for each 8 KB: a small datagram buying 64 KB of judging, 4 ms, was the bound) is refused."""
    assert len(gzip.compress(b"WIN BIG " * 1250)) < 200
    with pytest.raises(BodyError, match="more than 8192"):
        message_content("text/plain", gzip.compress(b"WIN BIG " * 1250), "gzip")
    assert message_content("text/plain", gzip.compress(b"x" * 8192), "gzip").text == "x" * 8192


@pytest.mark.parametrize("ctype", ["text", "text;charset=utf-8", "text/", "/plain", "text/plain/x", "te xt/plain"])
def test_a_content_type_with_no_subtype_is_refused_400_never_relayed(screen, ctype):
    """RFC 3261 §20.15 / §25.1: a media type is type/subtype. One that is not named no type read (neither text nor
    SMS), and was relayed unjudged as a body that carries no text: now 400 with the reason (§21.4.1, malformed syntax;
    415 answers a well-formed type not supported), with its refusal line."""
    scr = screen()
    scr.on_datagram(message(b"WIN BIG now", ctype), UAC)
    (r, _), = sent(scr)
    assert r.status == 400 and "Content-Type" in r.reason
    (ln,) = scr.lines()
    assert (ln["action"], ln["status"]) == ("refuse", 400)


def test_a_content_type_with_spaces_around_its_slash_is_read(screen):
    """RFC 3261 §25.1: m-type SLASH m-subtype, SLASH = SWS "/" SWS: `text / plain` is text/plain (it was no type
    read: relayed unjudged)."""
    scr = screen()
    scr.on_datagram(message(b"WIN BIG now", "Text / Plain ; charset=utf-8"), UAC)
    assert [r.status for r, _ in sent(scr)] == [608]
