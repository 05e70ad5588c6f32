"""SMSC link health (smsc.py, SmscLink / UpstreamMixin), against the simulator: a temporary ESME_RBINDFAIL does not
turn a transceiver link into a transmitter + receiver pair."""
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)


# ---------------------------------------------------------------- D7: ESME_RBINDFAIL is not "no transceiver"

def test_a_temporary_bindfail_is_retried_as_a_transceiver(pipe):
    st = SmppSettings(reconnect_min=0.05, reconnect_max=0.2)
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=st) as h:
        h.sim.down = True                               # binds refused ESME_RBINDFAIL
        h.run(lambda: [l.transport.close() for l in h.proxy.links])
        binds = lambda: sum(p.command_id == C.BIND_TRANSCEIVER for _, p in h.sim.received)   # noqa: E731
        assert wait(lambda: binds() >= 4, 5)
        h.sim.down = False
        assert wait(lambda: h.proxy.links and all(l.bound for l in h.proxy.links), 5)
        assert [l.kind for l in h.proxy.links] == ["transceiver"]
        assert not any(p.command_id in (C.BIND_TRANSMITTER, C.BIND_RECEIVER) for _, p in h.sim.received)
