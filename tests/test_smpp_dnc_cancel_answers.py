"""Ads scheduled ahead cancelled at a DK DNC (engine/smpp_proxy/dnc_cancel.py, scheduled.py): what the SMSC says
on the way (an intermediate notification), how it answers our cancel_sm (throttled, late), and the index's heap."""
from engine.smpp_proxy.scheduled import ScheduledAds
from tests.test_smpp_dnc_cancel import _ad


def test_the_heap_does_not_keep_what_an_empty_index_dropped():
    ads = ScheduledAds()
    for i in range(5000):                   # scheduled, then cancelled by their ESME before a tick saw them
        ads.add(_ad(f"m{i}", 10_000 + i))
        ads.discard(f"m{i}")
    assert len(ads) == 0 and len(ads.heap) == 0
