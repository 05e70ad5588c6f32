"""What a stateless screen must still get right about transactions (review of the SIP screen):
what makes a request part of a call already judged. A made-up To tag, a tag inside the To URI, a Call-ID alone or
an INVITE preloaded with our route is no dialog and is judged; a rejected or unanswered call cannot be re-INVITEd
past the screen; an INVITE in another case is refused, never forwarded unjudged; and a new call on a used Call-ID
(after a final that does not ask for a retry, or after a CANCEL) is judged again."""
import re

import pytest

from engine.sip_screen.codec import make_response, parse_datagram

from .sip_helpers import UAC, UAS, invite
from .test_sip_transactions_routing import AD_CALLER, Lines, pipe, screen, sent  # noqa: F401,F811  (pipe: fixture)


# ---------------------------------------------------------------- a To tag is no pass

def test_an_invite_with_a_made_up_to_tag_is_judged_a_real_reinvite_is_not(pipe):
    scr = screen(pipe)
    tagged = lambda b: b.replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=made-up")
    scr.on_datagram(tagged(invite(caller="0987000666", call_id="bl-1")), UAC)      # blacklisted caller
    ((r, to),) = sent(scr)
    assert r.status == 608 and to == UAC and scr.stats["reinvite_unknown_dialog"] == 1
    # a call let through and answered: its re-INVITE goes on without a second judgement
    scr.udp.out.clear()
    scr.on_datagram(invite(call_id="ok-1"), UAC)
    ((fwd, _),) = sent(scr)
    scr.on_datagram(make_response(fwd, 200, None, to_tag="uas1").to_bytes(), UAS)
    scr.udp.out.clear()
    screened = scr.stats["screened"]
    re_inv = invite(call_id="ok-1", cseq="2 INVITE").replace(
        b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=uas1").replace(b"z9hG4bK-", b"z9hG4bK-r-")
    scr.on_datagram(re_inv, UAC)
    ((f2, _),) = sent(scr)
    assert f2.method == "INVITE" and scr.stats["screened"] == screened


def test_a_tag_inside_the_to_uri_is_not_the_to_tag():
    from engine.sip_screen.codec import make_response
    m = parse_datagram(invite().replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1;tag=uri>"))
    r = make_response(m, 608, None, "tfabc")
    assert r.tag_in(r.get("to")) == "tfabc"                     # RFC 3261 §8.2.6.2: our answer carries a To tag


def test_a_rejected_or_unanswered_call_cannot_be_re_invited_past_the_screen(pipe):
    scr = screen(pipe)
    tagged = lambda b: b.replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=made-up") \
        .replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-r-")
    scr.on_datagram(invite(caller="0987000666", call_id="bl-2"), UAC)             # rejected: 608
    scr.udp.out.clear()
    scr.on_datagram(tagged(invite(caller="0987000666", call_id="bl-2")), UAC)    # its "re-INVITE"
    ((r, _),) = sent(scr)
    assert r.status == 608
    scr.udp.out.clear()
    scr.on_datagram(invite(call_id="never-answered"), UAC)                       # forwarded, never answered
    scr.udp.out.clear()
    scr.on_datagram(tagged(invite(caller="0987000666", call_id="never-answered")), UAC)
    ((r, _),) = sent(scr)
    assert r.status == 608


def test_a_call_id_alone_is_no_dialog(pipe):
    """After one real answered call, an INVITE on its Call-ID with a To tag but other parties is judged."""
    scr = screen(pipe)
    scr.on_datagram(invite(call_id="real-1"), UAC)
    ((fwd, _),) = sent(scr)
    scr.on_datagram(make_response(fwd, 200, None, to_tag="uas1").to_bytes(), UAS)
    scr.udp.out.clear()
    other = invite(caller="0987000666", callee="0913000000", call_id="real-1").replace(
        b"To: <sip:0913000000@127.0.0.1>", b"To: <sip:0913000000@127.0.0.1>;tag=uas1").replace(
        b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-x-")
    scr.on_datagram(other, UAC)
    ((r, _),) = sent(scr)
    assert r.status == 608                                       # the blacklisted caller was judged


def test_an_initial_invite_preloaded_with_our_route_alone_goes_to_the_next_hop(pipe):
    """Found by a SIP probe at stop 33: a UA that names the screen as its outbound proxy (a preloaded Route to us,
    RFC 3261 §8.1.2) had its INVITE sent to the Request-URI's host instead of the configured next hop (a host name
    there: 503). With the Route removed it is an initial request like any other; in a dialog the URI is followed."""
    scr = screen(pipe)
    data = invite(extra=[b"Route: <sip:127.0.0.1:5060;lr>"]).replace(b"INVITE sip:0912345678@127.0.0.1 ",
                                                                       b"INVITE sip:0912345678@carrier.example ")
    scr.on_datagram(data, UAC)
    (m, dest), = sent(scr)
    assert m.method == "INVITE" and dest == UAS and m.get("route") is None
    scr.udp.out.clear()
    bye = (b"BYE sip:0912345678@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-pl;rport\r\n"
           b"Max-Forwards: 70\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nFrom: <sip:0901234567@127.0.0.1>;tag=abc\r\n"
           b"To: <sip:0912345678@127.0.0.1>;tag=x\r\nCall-ID: pl1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
    scr.on_datagram(bye, UAC)
    (m, dest), = sent(scr)
    assert m.method == "BYE" and dest == ("127.0.0.1", 5090)


@pytest.mark.parametrize("method", [b"invite", b"Invite", b"iNVITE"])
def test_an_invite_written_in_another_case_is_refused_never_forwarded_unjudged(pipe, method):
    """Found by a SIP probe at stop 34: `invite` from a blacklisted caller went to the next hop unjudged (no verdict
    line, no count), and Kamailio routes it as an INVITE. A known method in another case is refused 400, by the full
    parse: the fast paths (Python and C) take only upper-case methods."""
    from engine.sip_screen import fastpath
    vlog = Lines()
    scr = screen(pipe, vlog)
    for to_tag in (b"", b";tag=made-up"):
        data = invite(caller="0987000666", cseq=method.decode() + " 1").replace(b"INVITE sip:", method + b" sip:", 1)
        data = data.replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>" + to_tag)
        assert fastpath.in_dialog(data, "127.0.0.1", 5080) is fastpath.FULL_PARSE
        assert fastpath.py_in_dialog(data, "127.0.0.1", 5080) is fastpath.FULL_PARSE
        scr.on_datagram(data, UAC)
        (m, dest), = sent(scr)
        assert m.status == 400 and dest == UAC and "upper case" in m.reason
        scr.udp.out.clear()
    assert vlog.calls == [] and scr.stats["screened"] == 0


def test_a_new_call_on_a_used_call_id_is_judged_a_retry_after_a_final_that_asks_for_it_is_not(pipe):
    """Found by a SIP probe at stop 34: an advertiser reusing one Call-ID and From tag made 4 complete calls to one
    callee within 10 s, all let through on the first call's verdict (one verdict line, one count): the 1-a-day cap
    did not apply. Only a retransmission (same branch) or a try after a 401/407/422/3xx/5xx replays the verdict."""
    vlog = Lines()
    scr = screen(pipe, vlog)

    def call(branch, cseq):
        data = invite(caller=AD_CALLER, call_id="reuse-1", cseq=f"{cseq} INVITE")
        scr.on_datagram(re.sub(rb"branch=[^;]+", b"branch=z9hG4bK-" + branch, data), UAC)
        (m, dest), = sent(scr)
        scr.udp.out.clear()
        return m, dest

    fwd, dest = call(b"a", 1)
    assert fwd.method == "INVITE" and dest == UAS
    for code in (503, 302):                     # failed over, redirected: the same call again, replayed
        scr.on_datagram(make_response(fwd, code, None, to_tag="u%d" % code).to_bytes(), UAS)
        scr.udp.out.clear()
        fwd, dest = call(b"r%d" % code, 1)
        assert fwd.method == "INVITE" and dest == UAS
    assert scr.stats["screened"] == 1 and scr.stats["replayed"] == 2
    scr.on_datagram(make_response(fwd, 200, None, to_tag="u200").to_bytes(), UAS)
    scr.udp.out.clear()
    m, _ = call(b"b", 2)                         # after the answer: a new call on the same Call-ID, judged
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in m.get("reason")
    m, _ = call(b"b", 2)                         # its retransmission: the same answer, not judged again
    assert m.status == 608 and scr.stats["screened"] == 2 and scr.stats["call_id_reused"] == 1
    assert len(vlog.calls) == 2


def test_a_call_rung_cancelled_and_rung_again_on_its_call_id_is_judged_again(pipe):
    vlog = Lines()
    scr = screen(pipe, vlog)
    inv = invite(caller=AD_CALLER, call_id="ring-1")
    scr.on_datagram(inv, UAC)
    ((fwd, _),) = sent(scr)
    scr.udp.out.clear()
    scr.on_datagram(make_response(fwd, 487, None, to_tag="u1").to_bytes(), UAS)
    scr.udp.out.clear()
    scr.on_datagram(inv.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-2-"), UAC)
    ((m, _),) = sent(scr)
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in m.get("reason") and len(vlog.calls) == 2
