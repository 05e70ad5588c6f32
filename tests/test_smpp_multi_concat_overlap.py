"""KNOWN OPEN (review37): parts of one concatenated message sent in PDUs with different but overlapping
destinations are grouped apart and each judged on its own fragment, while the handset they share joins them (it
goes by originator, reference and total): a submit_sm part 1/2 to A and a submit_multi part 2/2 to A and B, or
submit_multi parts to {A, B} and {A, C}, put 'Click phish.exa' + 'mple/verify ...' on A's screen whole, both
forwarded (0f07f1c joins a submit_multi part with a submit_sm's only when it has one destination). Strict xfail:
it starts failing (passing) when it is fixed."""
import time

import pytest

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_multi_concat import SPAM, TWO, _multi, _udh
from tests.test_smpp_proxy import pipe, raw_session, read_raw  # noqa: F401  (pipe: fixture)
from tests.test_smpp_text_evasion import _statuses


@pytest.mark.xfail(strict=True, reason="parts to overlapping destination sets are grouped apart (review37)")
def test_a_submit_sm_part_and_a_submit_multi_part_to_it_and_another_are_one_message_for_it(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=1.0)) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=31, source_addr="84901234567", destination_addr=TWO[0][3],
                                    esm_class=0x40, short_message=_udh(0x55, 2, 1) + SPAM[:15].encode())))
        s.sendall(_multi(32, _udh(0x55, 2, 2) + SPAM[15:].encode(), dests=TWO))
        assert all(st != 0 for st in _statuses(s, [31, 32]))


@pytest.mark.xfail(strict=True, reason="parts to overlapping destination sets are grouped apart (review37)")
def test_submit_multi_parts_to_overlapping_destinations_are_one_message_for_the_shared_one(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=1.0)) as h:
        s, _ = raw_session(h)
        other = (TWO[0], (1, 1, 1, "84912345670"))
        s.sendall(_multi(41, _udh(0x56, 2, 1) + SPAM[:15].encode(), dests=TWO))
        s.sendall(_multi(42, _udh(0x56, 2, 2) + SPAM[15:].encode(), dests=other))
        assert all(st != 0 for st in _statuses(s, [41, 42]))
        time.sleep(0.1)
