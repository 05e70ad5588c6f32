"""A call let through whose forward failed is answered 503 by the screen and has its verdict line and a
`call_unsent` line (the report counts it refused, out of its owner's volume). That 503 is its INVITE transaction's
final (RFC 3261 §17.2.1): the caller's retransmission (the 503 lost over UDP) gets it again. It was forwarded as a
copy of the call -- a plain call's retransmission reached the next hop once it was up again, the call rang though its
log said it never left -- or, an advertiser's (its counts given back), judged again as a new call: a second verdict
line for one transaction. Through the screen on loopback (the C pump and the Python reader), the next hop a port
nothing listens on (ICMP port unreachable), then listening."""
import socket
from datetime import datetime, timezone

import pytest

from engine.sip_screen.harness import SipHarness
from engine.sip_screen.server import SipSettings
from engine.sip_screen.transport import Pump

from .sip_helpers import AD_CALLER, ad_pipe, invite
from .test_sip_every_invite_logged import Lines
from .test_sip_unreachable_hop import _dead_port, _udp


@pytest.mark.parametrize("caller", ["0901234567", AD_CALLER])
@pytest.mark.parametrize("reader", ["pump", "python"])
def test_the_retransmission_of_an_invite_whose_forward_failed_gets_the_503_again(tmp_path, reader, caller):
    if reader == "pump" and Pump is None:
        pytest.skip("C extension not built")
    hop, vlog = _dead_port(), Lines()
    h = SipHarness(ad_pipe(tmp_path), SipSettings(listen="127.0.0.1:0", next_hop=f"127.0.0.1:{hop}",
                                                  allow_networks=["127.0.0.0/8"]), vlog,
                   lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)).start()     # 10:00 +07: ad hours
    if reader == "python":
        def python_reader():
            h.screen.fast_path = False
            h.screen.udp.refresh()
        h.run(python_reader)
    uac, callee = _udp(), None
    try:
        inv = invite(caller=caller, call_id="unsent-retransmitted", via_port=uac.getsockname()[1])
        uac.sendto(inv, ("127.0.0.1", h.port))
        assert uac.recv(65535).startswith(b"SIP/2.0 503")
        callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        callee.bind(("127.0.0.1", hop))                 # the next hop is up again
        uac.sendto(inv, ("127.0.0.1", h.port))          # Timer A: the 503 was lost
        assert uac.recv(65535).startswith(b"SIP/2.0 503")
        callee.setblocking(False)
        with pytest.raises(BlockingIOError):            # (it is forwarded before that answer, or not at all)
            callee.recv(65535)
        assert (len(vlog.calls), len(vlog.unsent), vlog.refusals) == (1, 1, [])
        assert h.screen.stats["next_hop_unreachable"] == 1
    finally:
        uac.close()
        if callee is not None:
            callee.close()
        h.stop()
