"""Review of the soon lane of a full look (dnc_cancel._look_changed, scheduled.ScheduledAds.due_before): the ads due
within SOON seconds judged first. Counts, never times."""
from engine.lists.edits import remove as remove_row
from engine.smpp_proxy.dnc_cancel import GATHER, SOON
from tests.test_smpp_dnc_cancel_incremental import _ad
from tests.test_smpp_dnc_cancel_look import FIRST, _walked

OTHERS = 84933300000


def test_the_soon_lane_takes_the_ads_to_dnc_numbers_past_the_soonest_to_others(tmp_path):
    # GATHER ads to numbers not on the list due in the next seconds, and one to a DNC number due in SOON / 2 s, walked
    # last (its number the highest of 3 * GATHER), its consent withdrawn in place (a full look). Was, the soon lane
    # took the GATHER soonest ads of all, then kept those to DNC numbers: none; the ad waited for the walk's third turn
    p = _walked(tmp_path, 3 * GATHER)
    now = int(p.clock().timestamp())
    for j in range(GATHER):
        _ad(p, OTHERS + j, due=now + 1 + j % 20)
    last = FIRST + 3 * GATHER - 1
    p.scheduled.discard(f"smsc\x1fM{last}")
    _ad(p, last, due=now + SOON // 2)
    p.tick()
    remove_row(p.pipeline.lists, "consent", str(last), None, ["Shop ABC"])    # (in place: a full look)
    assert last in p.tick(turns=0) and p.cancelled == [last]     # the tick's first slice
