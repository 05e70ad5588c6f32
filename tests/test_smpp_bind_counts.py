"""Every bind is counted in the SMPP proxy's stats (telfilter_smpp_events): an ESME that connects, binds and closes
in a loop (72,659 binds in 20 s in a probe) moved no counter before, and a bind refused for its account's
`max_binds` or bind type was answered ESME_RBINDFAIL with no count either, where a wrong password counts as
`binds_refused`."""
from dataclasses import replace

import pytest
import smpplib.client
import smpplib.exceptions

from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe  # noqa: F401  (pipe: fixture)


def _bind(port, kind="transmitter", password="secret"):
    c = smpplib.client.Client("127.0.0.1", port, timeout=5)
    c.connect()
    getattr(c, f"bind_{kind}")(system_id="esme1", password=password)
    return c


def test_binds_accepted_and_refused_for_max_binds_or_bind_type_are_counted(pipe):  # noqa: F811
    with ProxyHarness(pipe) as h:
        h.proxy.accounts["esme1"] = replace(h.proxy.accounts["esme1"], max_binds=1, bind_types=["transmitter"])
        first = _bind(h.port)
        for kind in ("transmitter", "receiver"):        # over max_binds; a bind type the account may not use
            with pytest.raises(smpplib.exceptions.PDUError):
                _bind(h.port, kind)
        first.unbind()
        first.disconnect()
        again = _bind(h.port)                            # a bind after an unbind is a bind again
        again.unbind()
        again.disconnect()
        with pytest.raises(smpplib.exceptions.PDUError):
            _bind(h.port, password="wrong")
        stats = dict(h.proxy.stats)
    assert stats.get("binds_accepted") == 2
    assert stats.get("binds_refused_max_binds") == 1
    assert stats.get("binds_refused_bind_type") == 1
    assert stats.get("binds_refused") == 1              # the wrong password, as before
