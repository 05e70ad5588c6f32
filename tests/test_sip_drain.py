"""The SIP screen's drain (engine/sip_screen/draining.py), part of serve's graceful stop: from its start a new call is
answered 503 with a Retry-After (the softswitch tries its next route at once), unjudged, with a verdict-log line
naming the drain; its CANCEL is answered 200 here. What is in flight goes on: a retransmission of an INVITE forwarded
before, the responses to it, its ACK; the drain ends once the calls in flight have their finals (plus a moment for the
ACK), at once when nothing is in flight, at the latest at its timeout. Before, the screen judged and forwarded new
calls until the SMPP drain ended, then closed its ports under them. tests/test_sip_drain_serve.py: through serve."""
import asyncio

import pytest

from engine.app import build
from engine.sip_screen import transport
from engine.sip_screen.codec import make_response, parse_datagram
from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings

from .sip_transport_helpers import cancel_of, udp_sock
from .test_sip_refused_transaction import _request

CALLER = "0901234567"


class Lines:
    """A verdict log that keeps what is written to it."""

    def __init__(self):
        self.calls, self.refusals = [], []

    def write_call(self, *a):
        self.calls.append(a)

    def write_call_refusal(self, *a):
        self.refusals.append(a)


@pytest.fixture(params=["pump", "python_reader"])
def screen(tmp_path, request, monkeypatch):
    if request.param == "pump" and transport.Pump is None:
        pytest.skip("C extension not built")
    if request.param != "pump":
        monkeypatch.setattr(transport, "Pump", None)
    cli, uas = udp_sock(), udp_sock()
    s = SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{uas.getsockname()[1]}", allow_networks=["127.0.0.0/8"])
    h = SipHarness(build(data_dir=tmp_path / "data", with_model=False, persist=False), s, Lines()).start()
    yield h, cli, uas
    h.stop()
    cli.close()
    uas.close()


def _drain(h, timeout):
    """The drain started in the screen's loop; its task (h.call(_ended(task)) waits for it)."""
    async def start():
        return asyncio.ensure_future(h.screen.drain(timeout))
    return h.call(start())


async def _ended(task, within=20.0):
    return await asyncio.wait_for(asyncio.shield(task), within)


def _ringing(h, cli, uas, b="r1"):
    """A call let through before the drain and ringing at the next hop: (its INVITE as sent, as forwarded)."""
    inv = _request("INVITE", cli, b, f"call-{b}", CALLER)
    cli.sendto(inv, ("127.0.0.1", h.port))
    fwd = parse_datagram(uas.recv(65535))
    assert fwd.method == "INVITE"
    return inv, fwd


def _answer(h, uas, fwd, code):
    uas.sendto(make_response(fwd, code, None, to_tag="callee1").to_bytes(), ("127.0.0.1", h.port))


def test_with_nothing_in_flight_the_drain_ends_at_once(screen):
    h, cli, uas = screen
    stats = h.call(_ended(_drain(h, 60.0), within=5.0))     # not its 60 s: nothing to wait for
    assert stats == {"in_flight": 0, "unanswered": 0, "refused": 0}


def test_a_new_call_while_draining_is_answered_503_and_logged(screen):
    h, cli, uas = screen
    task = _drain(h, 7.5)
    inv = _request("INVITE", cli, "n1", "new-1", CALLER)
    cli.sendto(inv, ("127.0.0.1", h.port))
    r = parse_datagram(cli.recv(65535))
    assert (r.status, r.get("retry-after")) == (503, "8")           # the drain's timeout, whole seconds up
    assert "draining" in r.get("warning")
    assert h.screen.stats["refused_draining"] == 1 and h.screen.stats["screened"] == 0
    ((_, call_id, caller, callee, ingress, status, reason),) = h.vlog.refusals
    assert (call_id, caller, callee, status) == ("new-1", CALLER, "0912345678", 503) and "draining" in reason
    assert h.vlog.calls == []
    cli.sendto(inv, ("127.0.0.1", h.port))                          # its retransmission: the same answer, no line
    r2 = parse_datagram(cli.recv(65535))
    assert (r2.status, r2.get("to")) == (503, r.get("to"))
    assert h.screen.stats["refused_draining"] == 1 and len(h.vlog.refusals) == 1
    cli.sendto(cancel_of(inv), ("127.0.0.1", h.port))               # its CANCEL: the screen's, as for any refusal
    c = parse_datagram(cli.recv(65535))
    assert (c.status, c.get("cseq"), c.get("to")) == (200, "1 CANCEL", r.get("to"))
    assert h.call(_ended(task))["in_flight"] == 0                   # (it may have ended before the INVITE came)
    cli.settimeout(0.3)
    uas.settimeout(0.3)
    with pytest.raises(TimeoutError):
        uas.recv(65535)                                             # nothing of it reached the next hop


def test_an_options_to_the_screen_while_draining_is_answered_503(screen):
    """RFC 3261 §11.2: the code an INVITE would get; a softswitch's health check takes the node out at once."""
    h, cli, uas = screen
    task = _drain(h, 3.0)
    cli.sendto(_request("OPTIONS", cli, "ping", "ping-1", CALLER).replace(b"sip:0912345678@127.0.0.1",
                                                                             b"sip:127.0.0.1:%d" % h.port),
               ("127.0.0.1", h.port))
    r = parse_datagram(cli.recv(65535))
    assert (r.status, r.get("retry-after"), r.get("call-id")) == (503, "3", "ping-1")
    assert h.screen.stats["options_answered"] == 1 and h.vlog.refusals == []
    h.call(_ended(task))


def test_a_call_in_flight_is_relayed_to_its_end_and_then_the_drain_ends(screen):
    h, cli, uas = screen
    inv, fwd = _ringing(h, cli, uas)
    _answer(h, uas, fwd, 180)
    assert parse_datagram(cli.recv(65535)).status == 180
    task = _drain(h, 30.0)
    cli.sendto(inv, ("127.0.0.1", h.port))                          # its retransmission: on its way as before
    again = parse_datagram(uas.recv(65535))
    assert again.method == "INVITE" and again.values("via")[0] == fwd.values("via")[0]
    assert not h.call(asyncio.sleep(0.3, task.done()))              # the call rings: the drain waits
    _answer(h, uas, fwd, 200)
    assert parse_datagram(cli.recv(65535)).status == 200
    ack = _request("ACK", cli, "r1-ack", "call-r1", CALLER, to_tag="callee1", screen_port=h.port)
    cli.sendto(ack, ("127.0.0.1", h.port))
    assert parse_datagram(uas.recv(65535)).method == "ACK"          # the ACK of the 2xx, relayed
    assert h.call(_ended(task)) == {"in_flight": 1, "unanswered": 0, "refused": 0}
    assert h.screen.stats["screened"] == 1 and h.screen.stats["refused_draining"] == 0


def test_a_call_that_never_gets_its_final_holds_the_drain_only_to_its_timeout(screen):
    h, cli, uas = screen
    _ringing(h, cli, uas, "bh")
    assert h.call(_ended(_drain(h, 0.3))) == {"in_flight": 1, "unanswered": 1, "refused": 0}


def test_a_failed_call_ends_its_flight_too(screen):
    h, cli, uas = screen
    _, fwd = _ringing(h, cli, uas, "busy")
    task = _drain(h, 30.0)
    _answer(h, uas, fwd, 486)
    assert parse_datagram(cli.recv(65535)).status == 486
    assert h.call(_ended(task)) == {"in_flight": 1, "unanswered": 0, "refused": 0}


def test_an_invite_retransmission_crossing_its_final_does_not_hold_the_drain(screen):
    """The caller's INVITE retransmission crossed the callee's 200 (it left before the 200 reached the caller): the
    screen sends it on where the INVITE went, and the callee absorbs it (RFC 6026 §7.1, the Accepted state: no
    answer). That call has its final: nothing of it is in flight, and the drain does not wait for it to its end."""
    h, cli, uas = screen
    inv, fwd = _ringing(h, cli, uas, "x1")
    _answer(h, uas, fwd, 200)
    assert parse_datagram(cli.recv(65535)).status == 200
    cli.sendto(inv, ("127.0.0.1", h.port))                          # sent before the 200 came: forwarded
    assert parse_datagram(uas.recv(65535)).method == "INVITE"       # (absorbed by the callee, never answered)
    assert h.call(_ended(_drain(h, 60.0), within=5.0)) == {"in_flight": 0, "unanswered": 0, "refused": 0}


@pytest.mark.parametrize("way", ["full", "pump"])
def test_a_forked_call_one_leg_refused_by_the_screen_still_holds_the_drain_for_the_other(tmp_path, way):
    """An advertiser's INVITE forked upstream to two callees (one Call-ID and CSeq, two branches): one let through,
    one to a DNC number refused 608 by the screen. That 608 answers the refused leg, never sent on; the other rings at
    the next hop, in flight, and the drain waits for its final (it ended at once: the 608 had ended the flight of
    the transaction "Call-ID CSeq" both legs share)."""
    from .sip_helpers import AD_CALLER, UAC, UAS, ad_pipe, invite, sent
    from .test_sip_retry_caller import _screen as retry_screen
    scr, feed = retry_screen(ad_pipe(tmp_path / "data", dnc_v=["0912000111"]), None, 10, way)    # 10:00: ad hours
    ok = invite(caller=AD_CALLER, call_id="fork-d")
    refused = invite(caller=AD_CALLER, callee="0912000111", call_id="fork-d").replace(b"z9hG4bK-", b"z9hG4bK-dnc-")
    feed(ok, UAC)
    ((fwd, to),) = sent(scr)
    assert fwd.method == "INVITE" and to == UAS
    feed(refused, UAC)
    assert [m.status for m, _ in sent(scr)] == [608]
    assert asyncio.run(scr.drain(0.3)) == {"in_flight": 1, "unanswered": 1, "refused": 0}


def test_an_invite_that_could_not_leave_is_not_in_flight(tmp_path):
    """Its send failed: the screen answered it 503 itself, which is its final (forwarding._forward_failed)."""
    import errno
    from .sip_helpers import UAC, invite, offline_screen, sent
    scr = offline_screen(build(data_dir=tmp_path / "data", with_model=False, persist=False))
    real = scr.udp.sendto

    def refused(data, addr):
        if data.startswith(b"INVITE "):
            raise OSError(errno.EPERM, "Operation not permitted")
        real(data, addr)
    scr.udp.sendto = refused
    scr.on_datagram(invite(call_id="unsent-1"), UAC)
    assert [m.status for m, _ in sent(scr)] == [503]
    assert asyncio.run(scr.drain(5.0)) == {"in_flight": 0, "unanswered": 0, "refused": 0}
