"""/healthz (metrics.py `Metrics.health`) against an SMSC whose transmitter binds are refused while its receiver bind
is taken: found by an adversarial probe of the SMSC side (a scripted SMSC behind `serve`: /healthz answered 200 "ok"
while every submit_sm got ESME_RTHROTTLED, so a load balancer kept sending ESMEs to that node)."""
from engine.metrics import Metrics
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_inline_safety_verdict import send_submit
from tests.test_smpp_proxy import pipe, raw_session, wait  # noqa: F401  (pipe: fixture)


def test_healthz_is_503_while_only_a_receiver_link_is_bound(pipe, monkeypatch):
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=SmppSettings(reconnect_min=0.05)) as h:
        sim, metrics = h.sim, Metrics(pipe, proxy=h.proxy)
        assert metrics.health() == (True, "ok")
        on_pdu = sim.on_pdu

        def no_transmitters(s, ev):
            if ev.command_id == C.BIND_TRANSMITTER:         # its transmitter sessions all taken
                return s.send(P.BindTransmitterResp(sequence_number=ev.sequence_number,
                                                    command_status=C.ESME_RBINDFAIL))
            return on_pdu(s, ev)
        sim.on_pdu, sim.refuse_transceiver = no_transmitters, True
        for s in list(sim.sessions):
            h.loop.call_soon_threadsafe(s.transport.close)
        assert wait(lambda: [l.kind for l in h.proxy.links if l.bound] == ["receiver"], 5)
        sock, _ = raw_session(h)
        assert send_submit(sock, 1).command_status == C.ESME_RTHROTTLED     # no link takes a submit
        ok, why = metrics.health()
        assert not ok and "receiver" in why
