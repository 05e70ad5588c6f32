"""Review of the sliced DNC look (engine/smpp_proxy/dnc_look.py, dnc_cancel.py): a change made while a full look
walks, the queue's slots over a look that never ends, ... Counts, never times."""
from engine.app import build
from engine.lists import ListStore
from engine.lists.edits import remove as remove_row
from engine.smpp_proxy.dnc_cancel import GATHER, STEP
from tests.test_smpp_dnc_cancel_incremental import DUE, SENDERS, _ad, _Proxy
from tests.test_smpp_dnc_cancel_sliced import _reloaded

FIRST = 84912600000


def _walked(tmp_path, n, consent=lambda i: True):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Proxy(build(data_dir=d, with_model=False))
    L = p.pipeline.lists
    for i in range(n):
        L.add_dnc(FIRST + i, "S")
        if consent(i):
            L.add_consent("Shop ABC", FIRST + i)
        _ad(p, FIRST + i, due=DUE + i)              # (the walk's first numbers due soonest: judged first)
    p.tick()
    return p


def test_a_consent_withdrawn_while_the_walk_runs_judges_again_an_ad_judged_before_it(tmp_path):
    # a full look walks 3 * GATHER recipients over 3 turns; the soonest ads, walked first, are judged in its first
    # turn with their consent. The consent withdrawn then (in place: a full change) while the walk runs: was, the
    # walk went on with the numbers new to it only, the ad judged before the change never again: delivered, barred
    p = _walked(tmp_path, 3 * GATHER)
    _reloaded(p)
    first = p.tick(turns=0)                 # (the tick's turn: GATHER walked, STEP judged)
    assert FIRST in first and p._look.gathering and p.cancelled == []
    remove_row(p.pipeline.lists, "consent", str(FIRST), None, ["Shop ABC"])
    p.tick()
    p.tick()
    assert p.cancelled == [FIRST]
