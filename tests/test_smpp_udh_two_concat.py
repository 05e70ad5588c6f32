"""A UDH with two concatenation elements is refused (ESME_RINVESMCLASS): the proxy went by the last one (3GPP TS
23.040 §9.2.3.24) but a handset going by the first would put the part together with another message's parts, judged
apart: 'Click phish.exa' (ref 0x31 then 0x32) and 'mple/verify' (ref 0x31) were both forwarded (found by a probe)."""
import pytest

from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.errors import UdhError
from engine.smpp_proxy.codec.udh import parse_udh
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, raw_session  # noqa: F401  (pipe: fixture)
from tests.test_smpp_text_evasion import _statuses


@pytest.mark.parametrize("udh", [bytes([10, 0, 3, 0x31, 2, 1, 0, 3, 0x32, 2, 1]),
                                 bytes([11, 0, 3, 0x31, 2, 1, 8, 4, 0, 0x31, 2, 1])])
def test_two_concatenation_elements_are_refused(pipe, udh):
    with pytest.raises(UdhError) as e:
        parse_udh(udh + b"x")
    assert e.value.status == C.ESME_RINVESMCLASS
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=3, source_addr="84901234567", destination_addr="84912345678",
                                    esm_class=0x40, short_message=udh + b"Click phish.exa")))
        assert _statuses(s, [3]) == [C.ESME_RINVESMCLASS]
        assert h.sim.submits() == []
