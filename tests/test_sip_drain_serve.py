"""`telfilter serve` stopped with SIGTERM drains SIP beside SMPP (engine/sip_screen/draining.py): a call ringing at
the stop is relayed to its answer and its ACK, a new call meanwhile is answered 503 with a Retry-After of
--drain-timeout (the softswitch's next route takes it at once) and has its line in the verdict log, action refuse,
the reason naming the drain; serve then exits 0. Before, the screen kept judging and forwarding new calls during the
SMPP drain and closed its ports as soon as that ended, whatever was ringing."""
import signal

from engine.sip_screen.codec import make_response, parse_datagram

from .sip_transport_helpers import udp_sock
from .test_serve import free_port, wait_for
from .test_sip_refused_transaction import _request
from .test_sipp_dialog_restart import configure, serve, verdicts
from .test_sipp_ims_flows import free_port as free_sip_port

CALLER = "0901234567"


def test_sigterm_drains_sip_a_ringing_call_is_answered_and_a_new_one_refused_503(tmp_path):
    cfg, data = configure(tmp_path)
    sip_port, smpp_port = free_sip_port(), free_port()
    uas, cli = udp_sock(), udp_sock()
    uas.settimeout(10)
    cli.settimeout(10)
    p = serve(tmp_path, cfg, data, sip_port, uas.getsockname()[1], smpp_port, 1)
    log = tmp_path / "serve1.log"
    try:
        cli.sendto(_request("INVITE", cli, "s1", "serve-1", CALLER), ("127.0.0.1", sip_port))
        fwd = parse_datagram(uas.recv(65535))
        assert fwd.method == "INVITE"
        p.send_signal(signal.SIGTERM)
        assert wait_for(lambda: "SIP draining" in log.read_text()), log.read_text()
        cli.sendto(_request("INVITE", cli, "s2", "serve-2", CALLER), ("127.0.0.1", sip_port))
        r = parse_datagram(cli.recv(65535))
        assert (r.status, r.get("call-id"), r.get("retry-after")) == (503, "serve-2", "10")
        assert p.poll() is None                                     # the ringing call holds the drain
        uas.sendto(make_response(fwd, 200, None, to_tag="callee1").to_bytes(), ("127.0.0.1", sip_port))
        ok = parse_datagram(cli.recv(65535))
        assert (ok.status, ok.get("call-id")) == (200, "serve-1")
        cli.sendto(_request("ACK", cli, "s1-ack", "serve-1", CALLER, to_tag="callee1", screen_port=sip_port),
                   ("127.0.0.1", sip_port))
        assert parse_datagram(uas.recv(65535)).method == "ACK"
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        uas.close()
        cli.close()
    text = log.read_text()
    assert "SIP drained: 1 INVITEs in flight at the stop, 0 without a final at the deadline; 1 new calls answered 503" \
        in text, text
    lines = {v["call_id"]: v for v in verdicts(tmp_path) if v["kind"] == "call"}
    assert lines["serve-1"]["action"] == "allow"
    assert (lines["serve-2"]["action"], lines["serve-2"]["status"]) == ("refuse", 503)
    assert "draining" in lines["serve-2"]["reason"] and lines["serve-2"]["caller"] == CALLER
