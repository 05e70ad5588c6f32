"""An SMSC's alert_notification (SMPP 3.4 §4.12) has no response PDU: the proxy answers nothing (it sent a
generic_nack ESME_RINVCMDID, telling the SMSC its PDU was invalid), counts it, and the link goes on."""
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.simulator import SmscSimulator
from tests.test_smpp_mo_concat import deliver
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)


class _Recording(SmscSimulator):
    """The simulator, keeping every response the proxy sends it."""

    def on_pdu(self, s, ev):
        if P.is_response(ev.command_id):
            self.responses = getattr(self, "responses", []) + [ev]
        return super().on_pdu(s, ev)


def test_an_alert_notification_is_not_answered_and_the_link_goes_on(pipe):
    with ProxyHarness(pipe, simulator=_Recording) as h:
        assert wait(lambda: any(s.bound for s in h.sim.sessions))
        alert = deliver(h, P.AlertNotification(source_addr_ton=1, source_addr_npi=1, source_addr="84912345678",
                                               esme_addr_ton=1, esme_addr_npi=1, esme_addr="84900000001"))
        probe = deliver(h, P.EnquireLink())
        assert wait(lambda: any(r.sequence_number == probe for r in getattr(h.sim, "responses", [])))
        assert [r for r in h.sim.responses if r.sequence_number == alert] == []
        assert h.proxy.stats["smsc_alert_notifications"] == 1
        assert all(r.command_id != C.GENERIC_NACK for r in h.sim.responses)
