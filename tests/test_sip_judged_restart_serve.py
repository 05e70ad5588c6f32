"""INVITEs judged just before a clean restart of `telfilter serve` (a rolling upgrade: a few seconds, within RFC 3261
Timer B's 32 s) and retransmitted after it, with the test's own UDP peers as caller and next hop on 127.0.0.1: an
advertiser's call (one a day to a callee: AD_CALL_FREQUENCY_CAP) let through and a second one refused; serve stopped
with SIGTERM and started again on the same data dir and ports; both INVITEs sent again byte for byte. Before, the
new process judged them again: the first was refused 608 by its own count, each had a second verdict line. Now the
judged-INVITE memory is saved with the answered calls (engine/sip_screen/judgedstore.py): the first is forwarded
again (the same branch: the next hop absorbs it), the second gets the same 608, no verdict line, and the count
stays the call's one (a third ad call is still refused). tests/test_sip_judged_restart.py covers the file itself."""
import socket

from .sip_helpers import invite
from .test_serve import free_port, wait_for
from .test_sipp_dialog_restart import AD_CALLER, CALLEE, configure, serve, stop, verdicts
from .test_sipp_ims_flows import free_port as free_sip_port


def _udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


def _recv(s):
    data, _ = s.recvfrom(65535)
    return data


def _top_via(data: bytes) -> bytes:
    return next(l for l in data.split(b"\r\n") if l.lower().startswith(b"via:"))


def _reason(data: bytes) -> bytes:
    return next(l for l in data.split(b"\r\n") if l.lower().startswith(b"reason:"))


def test_invites_judged_before_a_clean_restart_are_answered_as_before_after_it(tmp_path):
    cfg, data = configure(tmp_path)
    sip_port, smpp_port = free_sip_port(), free_port()
    uac, uas = _udp(), _udp()
    uas_port, uac_port = uas.getsockname()[1], uac.getsockname()[1]
    first = invite(caller=AD_CALLER, callee=CALLEE, call_id="ad-1@uac", via_port=uac_port)
    second = invite(caller=AD_CALLER, callee=CALLEE, call_id="ad-2@uac", via_port=uac_port)
    p = serve(tmp_path, cfg, data, sip_port, uas_port, smpp_port, 1)
    try:
        uac.sendto(first, ("127.0.0.1", sip_port))
        fwd = _recv(uas)
        assert fwd.startswith(b"INVITE ")
        uac.sendto(second, ("127.0.0.1", sip_port))
        refused = _recv(uac)
        assert refused.startswith(b"SIP/2.0 608 ")
        assert wait_for(lambda: len(verdicts(tmp_path)) == 2, 10)
        assert stop(p) == 0, (tmp_path / "serve1.log").read_text()
        assert "SIP: 1 calls in progress saved to" in (tmp_path / "serve1.log").read_text()
        p = serve(tmp_path, cfg, data, sip_port, uas_port, smpp_port, 2)
        assert ", and 2 INVITEs judged in the last 32 s" in (tmp_path / "serve2.log").read_text()
        uac.sendto(first, ("127.0.0.1", sip_port))      # their retransmissions (Timer A), after the restart
        again = _recv(uas)
        assert again.startswith(b"INVITE ") and _top_via(again) == _top_via(fwd)
        uac.sendto(second, ("127.0.0.1", sip_port))
        refused2 = _recv(uac)
        assert refused2.startswith(b"SIP/2.0 608 ") and _reason(refused2) == _reason(refused)
        third = invite(caller=AD_CALLER, callee=CALLEE, call_id="ad-3@uac", via_port=uac_port)
        uac.sendto(third, ("127.0.0.1", sip_port))      # the count is still the first call's one: refused
        assert _recv(uac).startswith(b"SIP/2.0 608 ")
        assert wait_for(lambda: len(verdicts(tmp_path)) >= 3, 10)
    finally:
        code = stop(p)
        uac.close()
        uas.close()
    assert code == 0
    # one line for each call judged: the copies after the restart have none
    lines = verdicts(tmp_path)
    assert [v["action"] for v in lines] == ["allow", "drop", "drop"], lines
