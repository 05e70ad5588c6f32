"""A tag parameter written with LWS before its "=" (RFC 3261 §25.1: EQUAL = SWS "=" SWS; RFC 4475's wsinv writes
`;   tag    = 1918181833n`) is the tag. The screen looked for the text "tag=" before reading a To or From's
parameters, so `;tag = u1` read as no tag at all: an answered call's re-INVITE writing its tags so was judged as a
new call (an ad call's refused 608 by its own count, a second verdict line) and its BYE, taken for an initial
request, went to the configured next hop and recorded no end of the call."""
from datetime import datetime, timezone

import pytest

from engine.sip_screen.codec import make_response, parse_datagram
from engine.sip_screen.grammar import tag_of
from tests.sip_helpers import AD_CALLER, UAC, UAS, CallLines, ad_pipe, offline_screen, sent

SPELLINGS = ["<sip:b@h> ; tag = u1", "<sip:b@h>;tag =u1", "<sip:b@h>;TAG = u1", "sip:b@h ;tag\t= u1"]


@pytest.mark.parametrize("to", SPELLINGS)
def test_a_tag_with_whitespace_before_its_equals_is_read(to):
    m = parse_datagram(b"OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h:5;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\n"
                       b"To: " + to.encode() + b"\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    assert m.tag_in(m.get("to")) == "u1"
    assert tag_of(to) == "u1"


def _request(method: bytes, branch: bytes, to_tag: bytes, from_tag=b";tag=f1", cseq=b"1", host=b"127.0.0.1") -> bytes:
    extra = b"Contact: <sip:x@127.0.0.1:5080>\r\n" if method == b"INVITE" else b""
    return (method + b" sip:0912345678@" + host + b" SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=" + branch +
            b";rport\r\nMax-Forwards: 70\r\nFrom: <sip:" + AD_CALLER.encode() + b"@127.0.0.1>" + from_tag +
            b"\r\nTo: <sip:0912345678@127.0.0.1>" + to_tag + b"\r\nCall-ID: ws1@127.0.0.1\r\nCSeq: " + cseq + b" " +
            method + b"\r\n" + extra + b"Content-Length: 0\r\n\r\n")


def _answered_call(tmp_path):
    vlog = CallLines()
    scr = offline_screen(ad_pipe(tmp_path), vlog)
    scr.clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)        # 10:00 in Hanoi: ads allowed
    scr.on_datagram(_request(b"INVITE", b"z9hG4bK-i1", b""), UAC)
    (fwd, dest), = sent(scr)
    assert dest == UAS
    scr.on_datagram(make_response(fwd, 200, None, to_tag="u1").to_bytes(), UAS)
    assert [m.status for m, _ in sent(scr)] == [200]
    assert len(scr.answered) == 1
    return scr, vlog


def test_a_reinvite_writing_its_tags_with_whitespace_stays_in_its_dialog(tmp_path):
    scr, vlog = _answered_call(tmp_path)
    scr.on_datagram(_request(b"INVITE", b"z9hG4bK-i2", b" ; tag = u1", b" ;tag= f1", b"2"), UAC)
    (re, dest), = sent(scr)
    assert re.method == "INVITE" and dest == UAS
    assert len(vlog.calls) == 1 and scr.stats["reinvite_unknown_dialog"] == 0


def test_a_bye_writing_its_to_tag_with_whitespace_ends_the_call(tmp_path):
    scr, _ = _answered_call(tmp_path)
    # to the callee's Contact (the dialog's remote target, §12.2.1.1), not to the configured next hop
    scr.on_datagram(_request(b"BYE", b"z9hG4bK-b1", b";tag = u1", cseq=b"3", host=b"127.0.0.1:5090"), UAC)
    (bye, dest), = sent(scr)
    assert bye.method == "BYE" and dest == ("127.0.0.1", 5090)
    assert len(scr.answered) == 0


def test_an_overloaded_screen_still_lets_such_a_reinvite_through(tmp_path):
    """While behind, an INVITE over its source's share is parsed only if it has two tags (overload._reinvite): one
    writing them with whitespace is a re-INVITE of the answered call too, not dropped unread."""
    scr, _ = _answered_call(tmp_path)
    msg = scr._reinvite(_request(b"INVITE", b"z9hG4bK-i3", b";tag = u1", b";tag = f1", b"4"), UAC)
    assert msg is not None and msg.method == "INVITE"
