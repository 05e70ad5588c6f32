"""An account's bind limits (`max_binds`, `bind_types`) as an ESME meets them.

An ESME's unbind, once answered, frees its place in its account's `max_binds`: SMPP 3.4 §4.2 ends the session
with the unbind_resp. Before, the place was freed only when the connection was gone (the proxy closes it 0.05 s
after the unbind_resp, the ESME may close it later still), so an ESME allowed one bind that unbound and bound
again on a new connection at once was refused ESME_RBINDFAIL ("bind type or max_binds")."""
import socket

from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, raw_session, read_raw  # noqa: F401  (pipe: fixture)


def test_a_bind_right_after_an_answered_unbind_takes_the_freed_place(pipe):
    with ProxyHarness(pipe) as h:
        h.run(lambda: setattr(h.proxy.accounts["esme1"], "max_binds", 1))
        old, r = raw_session(h)
        assert r.command_status == 0
        refused, r = raw_session(h)
        assert r.command_status == C.ESME_RBINDFAIL          # the one place is taken
        refused.close()
        old.sendall(encode(P.Unbind(sequence_number=2)))
        assert read_raw(old).command_id == C.UNBIND_RESP
        new, r = raw_session(h)                              # the old connection still open
        assert r.command_status == 0
        new.sendall(encode(P.EnquireLink(sequence_number=2)))
        assert read_raw(new).command_status == 0
        old.close()
        new.close()


def test_a_refused_bind_is_logged_with_its_one_reason(pipe, caplog):
    """ESME_RBINDFAIL for a bind type the account does not have and for max_binds reached: the log said "bind type
    or max_binds" for both, so the carrier could not tell the ESME which to change."""
    caplog.set_level("INFO", logger="telfilter.smpp")
    with ProxyHarness(pipe) as h:
        def limit(acct):
            acct.max_binds, acct.bind_types = 1, ("transmitter", "receiver")
        h.run(limit, h.proxy.accounts["esme1"])
        s, r = raw_session(h)                                # a transceiver
        assert r.command_status == C.ESME_RBINDFAIL
        assert "refused: bind type transceiver not allowed for this account (transmitter, receiver)" in caplog.text
        s.close()
        first, second = (socket.create_connection(("127.0.0.1", h.port), timeout=5) for _ in range(2))
        for c, status in ((first, 0), (second, C.ESME_RBINDFAIL)):
            c.sendall(encode(P.BindTransmitter(sequence_number=1, system_id="esme1", password="secret")))
            assert read_raw(c).command_status == status
        assert "refused: max_binds 1 reached" in caplog.text
        first.close()
        second.close()
