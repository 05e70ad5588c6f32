"""Folded header fields (RFC 3261 §7.3.1: a line starting with whitespace continues the field above; the folding
is one SP between words). A field whose first line left its value empty ("Call-ID:" then " abc") is "abc", not
" abc": the screen read such a Call-ID with a leading space, so the call an INVITE folding it opened was not the call
its 200 answered (the callee writes the Call-ID plainly) -- its session refresh was judged as a new call (an ad
call's refused 608 by its own count, a second verdict line) and its BYE recorded no end."""
from datetime import datetime, timezone

from engine.sip_screen.codec import make_response, parse_datagram
from tests.sip_helpers import AD_CALLER, UAC, UAS, CallLines, ad_pipe, offline_screen, sent


def test_a_value_folded_onto_the_next_line_has_no_leading_space():
    m = parse_datagram(b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKf\r\n"
                       b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID:\r\n  abc@h\r\n"
                       b"Subject: first\r\n\tsecond\r\n third\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    assert m.get("call-id") == "abc@h"
    assert m.get("subject") == "first second third"


def _invite(call_id_field: bytes, branch: bytes, to_tag=b"", cseq=b"1") -> bytes:
    return (b"INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=" + branch +
            b";rport\r\nMax-Forwards: 70\r\nFrom: <sip:" + AD_CALLER.encode() + b"@127.0.0.1>;tag=f1\r\n"
            b"To: <sip:0912345678@127.0.0.1>" + to_tag + b"\r\n" + call_id_field + b"\r\nCSeq: " + cseq +
            b" INVITE\r\nContact: <sip:x@127.0.0.1:5080>\r\nContent-Length: 0\r\n\r\n")


def test_a_call_whose_invite_folds_its_call_id_keeps_its_dialog(tmp_path):
    vlog = CallLines()
    scr = offline_screen(ad_pipe(tmp_path), vlog)
    scr.clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)        # 10:00 in Hanoi: ads allowed
    scr.on_datagram(_invite(b"Call-ID:\r\n fold1@127.0.0.1", b"z9hG4bK-i1"), UAC)
    (fwd, dest), = sent(scr)
    assert dest == UAS and fwd.get("call-id") == "fold1@127.0.0.1"
    assert vlog.calls[0][1] == "fold1@127.0.0.1"         # the verdict line names the call as its callee sees it
    scr.on_datagram(make_response(fwd, 200, None, to_tag="u1").to_bytes(), UAS)        # written plainly
    assert [m.status for m, _ in sent(scr)] == [200]
    # the caller's session refresh (RFC 4028): the call's own dialog, not a second ad call to the same callee
    scr.on_datagram(_invite(b"Call-ID: fold1@127.0.0.1", b"z9hG4bK-i2", b";tag=u1", b"2"), UAC)
    (re, dest), = sent(scr)
    assert re.method == "INVITE" and dest == UAS
    assert len(vlog.calls) == 1 and scr.stats["reinvite_unknown_dialog"] == 0
