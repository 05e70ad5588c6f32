"""An ESME's unbind, once answered, frees its place in its account's `max_binds`: SMPP 3.4 §4.2 ends the session
with the unbind_resp. Before, the place was freed only when the connection was gone (the proxy closes it 0.05 s
after the unbind_resp, the ESME may close it later still), so an ESME allowed one bind that unbound and bound
again on a new connection at once was refused ESME_RBINDFAIL ("bind type or max_binds")."""
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
