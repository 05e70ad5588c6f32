"""Found by a SIP probe: an INVITE sent over TCP rings with nothing on its connection after the 180 (RFC 3261
§17.2.1; Timer C, §16.8, is over 3 minutes), and its 200 comes back on that connection (§18.2.2). The eviction order
kept such a connection (bounds.py), but the sweeper closed it as idle after `tcp_idle_timeout` (300 s by default)
whatever waited on it: a call ringing longer lost its connection, and the callee's 200 sent on it never reached the
caller (probed through serve with tcp_idle_timeout = 3: the outbound connection of a ringing call was aborted after
4 s). Now a connection with an INVITE waiting for its final is not idle; the wait itself ends at INVITE_WAIT_MAX."""
import time

import pytest

from engine.app import build
from engine.sip_screen import bounds

from .test_sip_tcp_outbound_caps import Peer, wait_for
from .test_sip_tcp_outbound_ringing import Hop, invite_via_tcp, response_to

IDLE = 1.0                      # tcp_idle_timeout here (the sweeper looks every IDLE / 2 s)


@pytest.fixture
def pipe(tmp_path):
    return build(data_dir=tmp_path, with_model=False, persist=False)


def test_a_ringing_invites_connection_is_not_closed_as_idle_and_its_200_comes_back_on_it(pipe):
    callee = Hop()
    p = Peer(pipe, tcp_idle_timeout=IDLE)
    try:
        p.send(invite_via_tcp("ring-idle", p.port, callee.port))
        head = callee.request()
        callee.conn.sendall(response_to(head, 180, "Ringing"))
        assert p.answers(1)[0].startswith(b"SIP/2.0 180")
        time.sleep(3 * IDLE)                                    # ringing, nothing on the connection
        assert p.scr.stats["tcp_timed_out"] == 0
        callee.conn.sendall(response_to(head, 200, "OK"))       # answered on the INVITE's connection
        (ok,) = p.answers(1)
        assert ok.startswith(b"SIP/2.0 200") and b"ring-idle" in ok
        # answered: nothing waits on it any more, idle is idle again
        assert wait_for(lambda: p.scr.stats["tcp_timed_out"] == 1, 4 * IDLE)
    finally:
        p.close()
        callee.close()


def test_an_invite_that_never_gets_a_final_keeps_its_connection_from_idling_out_for_invite_wait_max_only(pipe):
    callee = Hop()
    p = Peer(pipe, tcp_idle_timeout=IDLE)
    try:
        p.send(invite_via_tcp("ring-forever", p.port, callee.port))
        callee.request()
        time.sleep(2 * IDLE)
        assert p.scr.stats["tcp_timed_out"] == 0
        p.h.run(lambda: p.scr.tcp_out_expire(time.monotonic() + bounds.INVITE_WAIT_MAX + 1))
        assert wait_for(lambda: p.scr.stats["tcp_timed_out"] == 1, 4 * IDLE)
    finally:
        p.close()
        callee.close()
