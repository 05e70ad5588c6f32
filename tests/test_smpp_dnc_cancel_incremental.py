"""The scheduled ads' look at a DNC change (engine/smpp_proxy/dnc_cancel.py `_scheduled_tick`) judges again the ads
to the numbers added since, not every ad to a DNC number: was, each 5656 `DK DNC` of anyone made the next tick ask
the registry about every ad with its recipient's consent (100,000 of them: ~1 s of the event loop, each second a
command came). What it cannot know so (a reload, a bulk change, a consent withdrawn) still takes every ad."""
import copy
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace as NS

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.lists.edits import remove as remove_row
from engine.lists.sets import DNC_RING, Lists
from engine.smpp_proxy.dnc_cancel import MORE, DncCancel
from engine.smpp_proxy.dnc_look import DncLook
from engine.smpp_proxy.dnc_retry import Retries
from engine.smpp_proxy.scheduled import PendingAd, ScheduledAds, member_key
from tests.test_smpp_dnc_cancel import counting

SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\n"
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone(timedelta(hours=7)))
DUE = int(NOW.timestamp()) + 86400
FIRST = 84912300000
N = 200


class _Proxy(DncCancel):
    """What `_scheduled_tick` reads of SmppProxy (server.py); the cancels it would send, kept."""

    def __init__(self, pipeline):
        self.pipeline, self.settings, self.clock = pipeline, NS(cancel_scheduled_on_dnc=True), lambda: NOW
        self.scheduled = ScheduledAds()
        self._scheduled_at = self._scheduled_said = float("-inf")
        self._scheduled_lists = self._scheduled_seen = self._scheduled_rules = None
        self._scheduled_more = set()
        self._scheduled_retry, self._cancel_tries, self._cancelling = Retries(), {}, set()
        self._look, self._look_soon, self._expire_soon = DncLook(), False, False
        self.stopping = False                       # (SmppProxy's: the drain's unbinds sent, or the stop)
        self._cancel_held = {}
        self.soon = []                              # the loop's next turn: the look's next slice
        self.loop = NS(call_soon=self.soon.append)
        self.cancelled, self.asked, self.now, self.steps = [], [], 1000.0, []
        pipeline.dnc_judge = counting(pipeline.dnc_judge, self.asked)

    def _cancel_scheduled(self, ad, why):
        self.cancelled.append(ad.recipient)
        self.scheduled.discard(ad.key)

    def tick(self, turns=None):
        """The next tick, then the loop's turns until the look is done (at most `turns`): the recipients judged.
        `steps`: how many were judged in each turn, the tick's first."""
        self.asked.clear()
        self.now += 1.0
        self._scheduled_tick(self.now)
        self.steps = [len(self.asked)]
        while self.soon and (turns is None or len(self.steps) <= turns):
            before = len(self.asked)
            self.soon.pop(0)()
            self.steps.append(len(self.asked) - before)
        return sorted(int(r) for r in self.asked)


def _ad(p, n, key=None, due=DUE):
    p._index_ad(PendingAd(key or f"smsc\x1fM{n}", "smsc", f"M{n}", "esme1", due, n, "", 5, 0, "SHOPABC", 1, 1,
                          str(n)))


@pytest.fixture
def proxy(tmp_path):
    """N ads, each to a DNC number with its consent to Shop ABC, looked at once (every ad, the first look)."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    pipe = build(data_dir=d, with_model=False)
    p = _Proxy(pipe)
    for i in range(N):
        pipe.lists.add_dnc(FIRST + i, "S")
        pipe.lists.add_consent("Shop ABC", FIRST + i)
        _ad(p, FIRST + i)
    assert len(p.tick()) == N and p.cancelled == []
    return p


def test_a_dnc_add_judges_again_the_ads_to_its_number_only(proxy):
    # was: every ad with consent to a DNC number (N) judged again at each change, whoever registered
    L = proxy.pipeline.lists
    L.add_dnc(84900000001, "SV")                    # someone's DK DNC: no ad to that number
    assert proxy.tick() == []
    _ad(proxy, 84900000002)                         # an ad, no consent, its recipient registers after
    L.add_dnc(84900000002, "S")
    L.add_dnc(FIRST + 3, "V")                       # (voice: bars no SMS)
    L.remove_dnc(FIRST + 4, "S")                    # (a removal bars none)
    assert proxy.tick() == [84900000002] and proxy.cancelled == [84900000002]
    assert proxy.tick() == []                       # no change: nothing


def test_an_ad_indexed_to_a_dnc_number_is_judged_at_the_next_change(proxy):
    # judged at its submission before its recipient's DK DNC was in force, indexed after the look that saw it
    # (forward.py indexes at the SMSC's answer): the next change judges it, as the look at every ad did
    L = proxy.pipeline.lists
    L.add_dnc(84900000003, "S")
    assert proxy.tick() == []
    _ad(proxy, 84900000003)
    L.add_dnc(84900000004, "S")
    assert proxy.tick() == [84900000003] and proxy.cancelled == [84900000003]


def test_a_consent_withdrawn_still_cancels_the_ads_it_bars(proxy, tmp_path):
    L = proxy.pipeline.lists
    # in place (`lists remove consent` on a Lists: edits.remove), then a DNC change of someone else's
    assert remove_row(L, "consent", "84912300005", None, ["Shop ABC"])
    L.add_dnc(84900000005, "S")
    got = proxy.tick()
    assert len(got) == N and proxy.cancelled == [FIRST + 5]
    # by a reload (serve's `ctl lists remove consent`): another Lists object, with no DNC change at all
    new = Lists()
    new.keep_from(L, ("dnc", "senders"))
    new.consent = {k: b.copy() for k, b in L.consent.items()}
    new.owner_names = dict(L.owner_names)
    for bm in new.consent.values():
        bm.discard(FIRST + 6)
    proxy.pipeline.lists = new
    assert len(proxy.tick()) == N - 1 and proxy.cancelled == [FIRST + 5, FIRST + 6]


def test_what_is_not_known_one_by_one_takes_every_ad(proxy):
    L = proxy.pipeline.lists
    L.ads_may_be_barred()                           # a bulk change (an import, a clear)
    assert len(proxy.tick()) == N
    for i in range(DNC_RING + 1):                   # more changes than the ring holds
        L.add_dnc(84900100000 + i, "S")
    assert len(proxy.tick()) == N
    proxy.pipeline.rules = copy.copy(proxy.pipeline.rules)       # other rules in force since the last look
    L.add_dnc(84900000006, "S")
    assert len(proxy.tick()) == N
    for i in range(MORE):                           # MORE ads to DNC numbers indexed: judged at the next tick
        _ad(proxy, FIRST + i % N, key=f"smsc\x1fX{i}")
    assert len(proxy.tick()) == MORE
    L.add_dnc(84900000007, "S")
    assert proxy.tick() == []


def test_an_ad_whose_cancel_is_to_be_tried_again_at_a_change_is_judged(proxy):
    # its retry due at the tick a change of someone else's came: judged (was: the look at the change took every
    # ad to a DNC number, this one with them; taking the change's numbers only, it was dropped from the retries)
    L = proxy.pipeline.lists
    _ad(proxy, 84900000031)
    L.add_dnc(84900000031, "S")
    assert proxy.tick() == [84900000031]
    proxy.cancelled.clear()
    proxy.scheduled.add(PendingAd("smsc\x1fM84900000031", "smsc", "M84900000031", "esme1", DUE, 84900000031, "",
                                  5, 0, "SHOPABC", 1, 1, "84900000031"))      # (its cancel not taken: backing off)
    proxy._scheduled_retry["smsc\x1fM84900000031"] = proxy.now + 0.5
    L.add_dnc(84900000032, "S")
    assert proxy.tick() == [84900000031] and proxy.cancelled == [84900000031]


def test_an_ad_a_look_skipped_for_its_submit_multi_is_judged_at_the_next_change(proxy):
    # one recipient's copy was being cancelled when the other's number registered: the next change judges it
    L = proxy.pipeline.lists
    a, b = member_key("smsc\x1fMM", 84900000011), member_key("smsc\x1fMM", 84900000012)
    _ad(proxy, 84900000011, key=a)
    _ad(proxy, 84900000012, key=b)
    proxy._cancelling.add(a)
    L.add_dnc(84900000012, "S")
    assert proxy.tick() == []                       # (its sibling's cancel in flight)
    proxy._cancelling.discard(a)                    # (that cancel not taken: an error the SMSC gave)
    L.add_dnc(84900000013, "S")
    assert proxy.tick() == [84900000012] and proxy.cancelled == [84900000012]


def test_the_lists_remember_the_numbers_added_to_dnc_s_one_by_one():
    L = Lists()
    assert L.dnc_s_added_since(0) == set()
    L.add_dnc(84900000021, "S")
    L.add_dnc(84900000022, "V")
    L.remove_dnc(84900000021, "S")
    L.add_dnc(84900000023, "SV")
    assert L.dnc_s_added_since(0) == {84900000021, 84900000023} and L.dnc_s_added_since(3) == {84900000023}
    assert L.dnc_s_added_since(4) == set() and L.dnc_s_added_since(5) is None
    L.ads_may_be_barred()
    assert L.dnc_s_added_since(4) is None and L.dnc_s_added_since(5) == set()
    for i in range(DNC_RING):
        L.add_dnc(84900200000 + i, "S")
    assert L.dnc_s_added_since(4) is None and len(L.dnc_s_added_since(5)) == DNC_RING
    L.add_dnc(84900000024, "S")                     # one more than the ring holds since the 5th
    assert L.dnc_s_added_since(5) is None and len(L.dnc_s_added_since(6)) == DNC_RING
    assert len(L.dnc_ring) == 2 * DNC_RING          # (bounded: 64 KB)


def test_an_ad_indexed_after_the_look_at_its_recipients_dk_dnc_is_judged_with_no_later_change(proxy):
    # judged at its submission before its recipient's DK DNC, indexed at the SMSC's answer after the tick that took
    # that change: judged at the next tick though no other DNC change ever comes (was: left for the next change of
    # anyone's, never in a quiet hour, and delivered to a DNC number without consent)
    L = proxy.pipeline.lists
    L.add_dnc(84900000041, "S")
    assert proxy.tick() == []
    _ad(proxy, 84900000041)
    assert proxy.tick() == [84900000041] and proxy.cancelled == [84900000041]
    _ad(proxy, FIRST + 7, key="smsc\x1fY7")         # (with consent: judged once, let go)
    assert proxy.tick() == [FIRST + 7] and proxy.tick() == [] and proxy.cancelled == [84900000041]


def test_rules_that_bar_ads_they_let_go_take_every_ad_with_no_dnc_change(proxy):
    # AD_TO_DNC tagging only (no ad barred), then a rules reload makes it drop again: the ads to DNC numbers without
    # consent are cancelled at the next tick (was: only at the next DNC change of anyone's, the rules' swap seen
    # then; a rules reload is no list change)
    from dataclasses import replace

    from engine.verdict import Action
    pipe = proxy.pipeline
    barring = pipe.rules
    tagging = copy.copy(barring)
    tagging.rules = [replace(r, action=Action.TAG, score=1.0) if r.symbol == "AD_TO_DNC" else r for r in barring.rules]
    pipe.rules = tagging
    _ad(proxy, 84900000051)
    pipe.lists.add_dnc(84900000051, "S")
    assert len(proxy.tick()) == N + 1 and proxy.cancelled == []       # (other rules: every ad; none barred)
    pipe.rules = barring
    assert len(proxy.tick()) == N + 1 and proxy.cancelled == [84900000051]
    assert proxy.tick() == []


def test_an_ad_a_look_skipped_for_its_submit_multi_is_judged_once_that_cancel_settles_nothing(proxy):
    # one recipient's copy was being cancelled when the other's number registered; that copy then went (its receipt)
    # and its cancel had no answer: the other, barred, is judged at the next tick with no DNC change (was: left for
    # the next change of anyone's, never in a quiet hour)
    L = proxy.pipeline.lists
    a, b = member_key("smsc\x1fMN", 84900000061), member_key("smsc\x1fMN", 84900000062)
    _ad(proxy, 84900000061, key=a)
    _ad(proxy, 84900000062, key=b)
    assert proxy.tick() == []
    proxy._cancelling.add(a)
    L.add_dnc(84900000062, "S")
    assert proxy.tick() == [] and proxy.tick() == []        # (its sibling's cancel in flight: not judged)
    proxy.scheduled.discard(a)                      # (a's receipt; its cancel answered nothing: not tried again)
    proxy._cancelling.discard(a)
    assert proxy.tick() == [84900000062] and proxy.cancelled == [84900000062]


def test_an_id_indexed_again_keeps_its_cancels_back_off(proxy):
    # its cancel not taken, backing off; the same id indexed again (an SMSC giving an id again): judged at its retry,
    # not at the next tick as a new ad to a DNC number is
    key = "smsc\x1fM84900000071"
    proxy._scheduled_retry[key] = proxy.now + 100.0
    _ad(proxy, 84900000071)
    proxy.pipeline.lists.add_dnc(84900000071, "S")
    assert proxy.tick() == [] and key in proxy._scheduled_retry
    _ad(proxy, 84900000071)
    assert proxy.tick() == [] and proxy._scheduled_retry[key] == proxy.now + 98.0
