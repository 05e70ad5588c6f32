"""The CANCEL of an INVITE the screen answered itself with a final before judging it -- 483 (Max-Forwards 0), 420
(Proxy-Require), 400 (a §16.3 check, or the parser's) -- is answered 200 by the screen (RFC 3261 §9.2: its INVITE has
its final already) and the ACK of such an answer is absorbed whatever To tag it carries, as for the screen's own
603/608 refusals (tests/test_sip_refused_transaction.py, whose fixture and messages these reuse: the C pump, the
Python fast path, the full parse); and so for a refusal replayed on a new branch (a fork's refused sibling tried again
after its let-through sibling was challenged) and one carried over a restart. Before, all of them went on to the next
hop, which never saw the INVITE (it answered the CANCEL 481)."""
import re

import pytest

from engine.sip_screen.codec import make_response, parse_datagram

from .sip_helpers import AD_CALLER, UAC, UAS, ad_pipe, invite, sent
from .sip_transport_helpers import cancel_of
from .test_sip_refused_transaction import _next_hop_gets_only, _request, screen  # noqa: F401,F811  (screen: fixture)
from .test_sip_dialog_restart import answered_call, screen as restart_screen
from .test_sip_judged_restart import _ad_invite, _restart
from .test_sip_retry_caller import _screen as retry_screen

CALLER = "0901234567"
DNC = "0912000111"              # on the DNC list for calls: an ad call to it is refused


def _spoilt(data: bytes, how: str) -> bytes:
    if how == "483":
        return data.replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    if how == "420":
        return data.replace(b"Content-Length: 0", b"Proxy-Require: x-nothing\r\nContent-Length: 0")
    if how == "400":                                    # a Contact that does not parse (§16.3 step 1)
        return re.sub(rb"Contact: <[^>]*>", b"Contact: <sip:a@127.0.0.1", data)
    return data.replace(b"Content-Length: 0", b"Not a header line\r\nContent-Length: 0")   # the parser's 400


@pytest.mark.parametrize("how, code", [("483", 483), ("420", 420), ("400", 400), ("parser", 400)])
def test_the_cancel_of_an_invite_the_screen_answered_itself_is_answered_here(screen, how, code):
    h, cli, uas = screen
    cli.sendto(_spoilt(_request("INVITE", cli, f"s{how}", f"spoilt-{how}", CALLER), how), ("127.0.0.1", h.port))
    r = parse_datagram(cli.recv(65535))
    assert r.status == code
    cli.sendto(_request("CANCEL", cli, f"s{how}", f"spoilt-{how}", CALLER), ("127.0.0.1", h.port))
    c = parse_datagram(cli.recv(65535))
    assert (c.status, c.get("cseq")) == (200, "1 CANCEL")
    assert _next_hop_gets_only(h, cli, uas, f"m{how}").method == "OPTIONS"     # the CANCEL was not sent on


def test_the_ack_of_a_483_to_an_invite_with_a_to_tag_is_absorbed(screen):
    h, cli, uas = screen
    inv = _request("INVITE", cli, "t483", "tag483", CALLER, to_tag="theirs", screen_port=h.port)
    cli.sendto(_spoilt(inv, "483"), ("127.0.0.1", h.port))
    r = parse_datagram(cli.recv(65535))
    assert r.status == 483 and r.get("to").endswith(";tag=theirs")      # §8.2.6.2: the tag it came with
    cli.sendto(_request("ACK", cli, "t483", "tag483", CALLER, to_tag="theirs", screen_port=h.port),
               ("127.0.0.1", h.port))
    assert _next_hop_gets_only(h, cli, uas, "mt").method == "OPTIONS"   # the ACK was not sent on


@pytest.mark.parametrize("way", ["full", "fast", "pump"])
def test_the_cancel_of_a_refusal_replayed_on_a_new_branch_is_answered_here(tmp_path, way):
    """An advertiser's INVITE forked upstream on one Call-ID to two callees: one let through, one to a DNC number
    refused 608. The next hop challenges the first 407; the caller tries both again (CSeq 2, new branches): the
    refused one gets its refusal replayed, and its CANCEL is the screen's to answer."""
    scr, feed = retry_screen(ad_pipe(tmp_path / "data", dnc_v=[DNC]), None, 10, way)     # 10:00: advertising hours
    ok, refused = invite(caller=AD_CALLER, call_id="fork-1"), invite(caller=AD_CALLER, callee=DNC, call_id="fork-1")
    refused = refused.replace(b"z9hG4bK-", b"z9hG4bK-dnc-")
    feed(ok, UAC)
    ((fwd, to),) = sent(scr)
    assert fwd.method == "INVITE" and to == UAS
    feed(refused, UAC)
    ((r, _),) = sent(scr)
    assert r.status == 608
    feed(make_response(fwd, 407, None, to_tag="uas1").to_bytes(), UAS)
    assert [m.status for m, _ in sent(scr)] == [407]
    retry = refused.replace(b"z9hG4bK-dnc-", b"z9hG4bK-dnc2-").replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE")
    feed(retry, UAC)
    ((r2, to),) = sent(scr)
    assert r2.status == 608 and to == UAC and scr.stats["replayed"] == 1
    feed(cancel_of(retry).replace(b"CSeq: 1 CANCEL", b"CSeq: 2 CANCEL"), UAC)
    ((c, to),) = sent(scr)
    assert (c.status, c.get("cseq"), to) == (200, "2 CANCEL", UAC)


def test_the_cancel_of_a_refusal_carried_over_a_restart_is_answered_here(tmp_path):
    pipe = ad_pipe(tmp_path / "data")
    scr, _ = restart_screen(pipe, [60.0], [1000.0])
    answered_call(scr)                                  # the callee's ad call of the day
    scr.on_datagram(_ad_invite("ad-2"), UAC)            # a second one: refused by the cap
    ((r, _),) = sent(scr)
    assert r.status == 608
    new, _ = _restart(pipe, scr, tmp_path)
    new.on_datagram(cancel_of(_ad_invite("ad-2")), UAC)
    ((c, to),) = sent(new)
    assert (c.status, c.get("cseq"), to) == (200, "1 CANCEL", UAC)
    assert c.get("to") == r.get("to")                   # the refusal's tag (§9.2)


def test_the_cancel_of_a_busy_refused_invite_tried_again_while_judged_is_applied_not_absorbed(monkeypatch, tmp_path):
    """An INVITE answered 503 (too many INVITEs waiting on its call's verdict) whose 503 was lost: its retransmission
    is judged (the store slow), and the caller, having no final, CANCELs it. That INVITE has no final of ours now:
    the CANCEL must reach the judging (the INVITE answered 487, never forwarded), not be taken for the CANCEL of our
    503 and answered 200 while the INVITE goes on to ring the callee."""
    from engine.sip_screen import screening
    from .test_sip_transactions_cancel_waiting import _slow_store
    from .test_sip_transactions_routing import screen as plain_screen
    from engine.app import build
    monkeypatch.setattr(screening, "MAX_WAITING", 0)
    scr = plain_screen(build(data_dir=tmp_path / "data", with_model=False, persist=False))
    held, release = _slow_store(scr)
    first = invite(call_id="busy-1")
    other = first.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE").replace(b"z9hG4bK-", b"z9hG4bK-2-")
    scr.on_datagram(first, UAC)                         # being judged
    scr.on_datagram(other, UAC)                         # no room to wait: 503 (lost on its way)
    assert [m.status for m, _ in sent(scr)] == [503]
    release()                                           # the first: allowed, forwarded
    assert [m.method for m, _ in sent(scr)] == ["INVITE"]
    scr.on_datagram(other, UAC)                         # the other's retransmission: judged now (slowly)
    assert sent(scr) == [] and len(held) == 1
    scr.on_datagram(cancel_of(other).replace(b"CSeq: 1 CANCEL", b"CSeq: 2 CANCEL"), UAC)
    assert [(m.status, m.get("cseq")) for m, _ in sent(scr)] == [(200, "2 CANCEL")]
    release()
    assert [(m.status, m.get("cseq")) for m, _ in sent(scr)] == [(487, "2 INVITE")]   # not forwarded after its CANCEL
