"""Short-code MO over SMPP (engine/smpp_proxy/mo.py, routing.py): a message the pipeline takes as a
5656 command is answered and confirmed as one, whatever form its destination is written in; and
its confirmation reaches the SMSC even when the link's window is full (it waits for room, never
silently dropped)."""
import time

import pytest

from engine.lists import ListStore
from engine.smpp_proxy.accounts import DEFAULT_REPLIES
from tests.test_smpp_mo_concat import answers, confirmations, deliver, mo, proxy, verdicts  # noqa: F401 (proxy: fixture)
from tests.test_smpp_proxy import pipe, wait  # noqa: F401 (pipe: fixture)


@pytest.mark.parametrize("dest", ["05656", "5656 ", "+5656"])
def test_a_command_to_the_short_code_written_otherwise_is_answered_and_confirmed_once(proxy, pipe, dest):
    h, buf = proxy()
    src = "84911000077"
    seq = deliver(h, mo(b"DK DNC", dst=dest, src=src, dc=0, esm_class=0))
    assert wait(lambda: confirmations(h, src))
    time.sleep(0.3)
    assert answers(h) == {seq: [0]}                  # acknowledged, never ESME_RX_T_APPN (redelivered for ever)
    assert confirmations(h, src) == [DEFAULT_REPLIES["DNC_REGISTERED"]]
    assert ListStore(pipe.store.dir).load().in_dnc(84911000077, "S")
    [line] = verdicts(buf)
    assert [x["symbol"] for x in line["hits"]] == ["DNC_REGISTERED"]


def test_a_binary_message_to_the_short_code_is_answered_as_a_syntax_error(proxy, pipe):
    h, buf = proxy()
    src = "84911000078"
    seq = deliver(h, mo(b"\x01\x02DK DNC", src=src, dc=4, esm_class=0))
    assert wait(lambda: confirmations(h, src))
    time.sleep(0.3)
    assert answers(h) == {seq: [0]}
    assert confirmations(h, src) == [DEFAULT_REPLIES["SHORTCODE_SYNTAX_ERROR"]]
    [line] = verdicts(buf)
    assert [x["symbol"] for x in line["hits"]] == ["SHORTCODE_SYNTAX_ERROR"]


def test_confirmations_wait_for_room_upstream_instead_of_being_dropped(proxy, pipe):
    """A slow SMSC (answers 1 s late) and a window of 5 towards it: 25 DNC registrations in a burst
    each get their confirmation, sent as the window frees."""
    h, buf = proxy(smsc_window=5)
    h.sim.answer_delay = 1.0
    n = 25
    for i in range(n):
        deliver(h, mo(b"DK DNC", src=f"8491200{i:04d}", dc=0, esm_class=0))
    assert wait(lambda: len(h.sim.mo_responses) == n)
    assert wait(lambda: len(h.sim.submits()) == n, 15), len(h.sim.submits())
    assert sorted(p.destination_addr for p in h.sim.submits()) == [f"8491200{i:04d}" for i in range(n)]
    assert wait(lambda: h.proxy.stats["shortcode_replies_sent"] == n, 5)
    assert not h.proxy.stats["shortcode_replies_dropped"] and not h.proxy.stats["shortcode_replies_failed"]


def test_a_confirmation_answered_late_is_not_sent_again(proxy, pipe):
    """The SMSC answers the reply after the response timeout: it may well be delivered, so it is not
    sent a second time (a second SMS to the subscriber); the late answer is counted as late."""
    h, buf = proxy(smsc_response_timeout=0.5)
    h.sim.answer_delay = 1.0
    src = "84911000099"
    deliver(h, mo(b"DK DNC", src=src, dc=0, esm_class=0))
    assert wait(lambda: h.proxy.stats["shortcode_replies_late"] == 1, 5)
    time.sleep(0.5)
    st = h.proxy.stats
    assert len(confirmations(h, src)) == 1
    assert st["shortcode_replies_unanswered"] == 1 and not st["shortcode_replies_failed"]
