"""AD_TO_UNREADABLE_RECIPIENT (Decree 91 pack) drops an ad to an address no number can be read from (+0912…,
0912…#). A submit_multi's distribution list is no such address: with `[submit_multi] distribution_lists = "judge"`
it is judged without a recipient (multi_dests: ""), and the rule dropped every ad to one with ESME_RINVDSTADR (the
whole PDU when it had SME destinations too) -- found by review39."""
import io
from datetime import datetime, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.test_smpp_inline_safety_verdict import lines
from tests.test_smpp_proxy import raw_session, read_raw

AD = b"QC: Giam gia 50%. TC gui 5656"
CLOCK = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)     # noqa: E731 -- 10:00 in Hanoi: ad hours


@pytest.fixture
def pipe(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,,,\n")
    return build(data_dir=d, with_model=False)


@pytest.mark.parametrize("dests", [((2, "customers"),), ((1, 1, 1, "84912345678"), (2, "customers"))],
                         ids=["list-only", "number-and-list"])
def test_an_ad_to_a_distribution_list_is_judged_without_a_recipient(pipe, dests):
    buf = io.StringIO()
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=SmppSettings(distribution_lists="judge"),
                      verdict_log=VerdictLog(buf), clock=CLOCK) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitMulti(sequence_number=9, source_addr="SHOPABC", source_addr_ton=5,
                                       dest_addresses=dests, short_message=AD)))
        assert read_raw(s).command_status == 0
        assert len(h.sim.submits()) == 1
    assert {l["action"] for l in lines(buf)} == {"allow"}


@pytest.mark.parametrize("recipient", ["+0912000001", "0912000001#"])
def test_an_ad_to_an_unreadable_address_is_still_dropped(pipe, recipient):
    buf = io.StringIO()
    with ProxyHarness(pipe, accounts=("esme1:secret",), verdict_log=VerdictLog(buf), clock=CLOCK) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=3, source_addr="SHOPABC", source_addr_ton=5,
                                    destination_addr=recipient, short_message=AD)))
        assert read_raw(s).command_status == 0x0B          # ESME_RINVDSTADR
        assert h.sim.submits() == []
    assert [h["symbol"] for h in lines(buf)[0]["hits"]] == ["AD_TO_UNREADABLE_RECIPIENT"]
