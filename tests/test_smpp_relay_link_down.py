"""query_sm / cancel_sm / replace_sm while the SMSC link that issued the id binds again (smsc.py keeps only the links
bound now in `links`): the ESME is told to retry (ESME_RTHROTTLED), not that its message_id is unknown. Before, the id
spaces were read from the bound links: with none bound, the ESME's own message was "not forwarded by this process"
(ESME_RINVMSGID for a cancel_sm, ESME_RREPLACEFAIL for a replace_sm), and an ad scheduled ahead could not be
cancelled by its own ESME for as long as the link was down."""
import pytest

from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_dnc_cancel import NOW, _answer, _submit, _wait, with_senders
from tests.test_smpp_proxy import raw_session

pipe = pytest.fixture(with_senders, name="pipe")


def test_a_cancel_while_the_link_binds_again_is_throttled_not_unknown(pipe):
    with ProxyHarness(pipe, clock=lambda: NOW) as h:
        s, _ = raw_session(h)
        mid = _submit(s, 2, "84912777651")

        def link_down():
            h.sim.down = True                       # binds refused from now on
            for x in list(h.sim.sessions):
                x.transport.close()
        h.run(link_down)
        assert _wait(lambda: not h.proxy.links)
        s.sendall(encode(P.CancelSm(sequence_number=3, message_id=mid, source_addr_ton=5, source_addr="SHOPABC",
                                    dest_addr_ton=1, destination_addr="")))
        r = _answer(s)
        assert r.command_id == C.CANCEL_SM_RESP and r.command_status == C.ESME_RTHROTTLED, hex(r.command_status)
        s.sendall(encode(P.QuerySm(sequence_number=4, message_id=mid, source_addr_ton=5, source_addr="SHOPABC")))
        r = _answer(s)
        assert r.command_id == C.QUERY_SM_RESP and r.command_status == C.ESME_RTHROTTLED, hex(r.command_status)


def test_an_ad_barred_while_no_link_is_bound_waits_and_is_cancelled_once_one_binds(pipe):
    # its DK DNC while the SMSC link binds again: the cancel waits for a link of its id space (dnc_cancel.py
    # `_cancel_held`), unjudged meanwhile, and goes once one is bound
    from tests.test_smpp_dnc_cancel import _cancels
    with ProxyHarness(pipe, clock=lambda: NOW) as h:
        s, _ = raw_session(h)
        mid = _submit(s, 2, "84912777652")

        def link_down():
            h.sim.down = True
            for x in list(h.sim.sessions):
                x.transport.close()
        h.run(link_down)
        assert _wait(lambda: not h.proxy.links)
        h.run(lambda: pipe.lists.add_dnc(84912777652, "S"))
        assert _wait(lambda: h.proxy._cancel_held), "not waiting for a link"
        assert not _cancels(h) and not h.proxy._scheduled_retry

        def link_up():
            h.sim.down = False
        h.run(link_up)
        assert _wait(lambda: [c for c in _cancels(h) if c.message_id == mid], timeout=15.0), "not cancelled"
        assert _wait(lambda: not h.proxy.scheduled.entries) and not h.proxy._cancel_held
