"""An account's bind limits (`max_binds`, `bind_types`) as an ESME meets them.

An ESME's unbind, once answered, frees its place in its account's `max_binds`: SMPP 3.4 §4.2 ends the session
with the unbind_resp. Before, the place was freed only when the connection was gone (the proxy closes it 0.05 s
after the unbind_resp, the ESME may close it later still), so an ESME allowed one bind that unbound and bound
again on a new connection at once was refused ESME_RBINDFAIL ("bind type or max_binds")."""
import socket
import time

from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.accounts import SmppSettings
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


def test_an_idle_bind_is_probed_one_interval_after_it_last_spoke(pipe):
    """Found by the ESME engineer's walkthrough: idle ESMEs were probed on one tick of `enquire_link_interval` for all
    binds, so one quiet since just after a tick got its first enquire_link up to twice the interval later (40 s at
    30 s). Each bind now has its own clock, as each SMSC link has: probed one interval after it last spoke, then one
    interval after that probe while it stays quiet."""
    st = SmppSettings(enquire_link_interval=30.0, idle_timeout=3600.0)
    with ProxyHarness(pipe, settings=st) as h:
        s, r = raw_session(h)
        assert r.command_status == 0
        (sess,) = [x for x in h.proxy.sessions if x.account is not None]
        probes = []
        send = h.proxy._send_to_esme

        def counted(x, pdu, cb):
            if x is sess and pdu.command_id == C.ENQUIRE_LINK:
                probes.append(pdu)
            return send(x, pdu, cb)
        h.proxy._send_to_esme = counted
        base = sess.last_rx = sess.probed_at = h.run(time.monotonic)

        def probes_at(dt):
            h.run(lambda: h.proxy._housekeeping_tick(base + dt))
            return len(probes)
        assert [probes_at(dt) for dt in (29.0, 30.0, 45.0, 59.5, 60.5)] == [0, 1, 1, 1, 2]
        s.close()
