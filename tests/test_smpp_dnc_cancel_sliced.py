"""A full DNC look at the scheduled ads (engine/smpp_proxy/dnc_cancel.py, dnc_look.py) judges them a slice per turn of
the event loop: was, a lists or rules reload, an import or a consent withdrawn judged every ad to a DNC number in the
tick's one turn (~0.6 s for 100,000 ads with consent: no submit_sm, no INVITE served meanwhile). Counts of ads
judged per turn, never times."""
from datetime import timedelta

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.lists.edits import remove as remove_row
from engine.smpp_proxy.dnc_cancel import GATHER, IN_FLIGHT, STEP
from tests.test_smpp_dnc_cancel_incremental import DUE, NOW, SENDERS, _ad, _Proxy

FIRST = 84912400000
MANY = 3 * STEP + 40            # a few slices' worth


def _reloaded(p):
    """Another Lists object in force, as a reload puts (every ad to a DNC number judged again)."""
    L = p.pipeline.lists
    p.pipeline.lists = L.__class__(**{f: getattr(L, f) for f in ("dnc_s", "dnc_v", "senders", "consent",
                                                                  "owner_names")})


@pytest.fixture
def many(tmp_path):
    """MANY ads to DNC numbers with consent to Shop ABC, due a second apart (the last soonest), looked at once."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Proxy(build(data_dir=d, with_model=False))
    L = p.pipeline.lists
    for i in range(MANY):
        L.add_dnc(FIRST + i, "S")
        L.add_consent("Shop ABC", FIRST + i)
        _ad(p, FIRST + i, due=DUE + MANY - i)
    assert len(p.tick()) == MANY and p.cancelled == []
    return p


def test_a_full_look_judges_at_most_step_ads_a_loop_turn_each_once(many):
    # was: all MANY in the tick's one turn
    L = many.pipeline.lists
    remove_row(L, "consent", str(FIRST + 5), None, ["Shop ABC"])        # (in place: a full look)
    assert many.tick() == list(range(FIRST, FIRST + MANY))
    assert len(many.steps) > MANY // STEP and max(many.steps) <= STEP, many.steps
    assert many.cancelled == [FIRST + 5]
    _reloaded(many)
    queued = []
    many.asked.clear()
    many.now += 1.0
    many._scheduled_tick(many.now)          # the tick's turn: a full look walks GATHER recipients at most, judges none
    while many.soon:
        queued.append(len(many._look))
        many.soon.pop(0)()
    assert len(many.asked) == MANY - 1 and len(set(many.asked)) == MANY - 1
    assert all(b - a <= GATHER for a, b in zip(queued, queued[1:]))


def test_the_look_judges_the_soonest_due_first(many):
    _reloaded(many)
    many.tick()
    assert [int(r) for r in many.asked] == list(range(FIRST + MANY - 1, FIRST - 1, -1))


def test_a_look_running_at_the_next_tick_goes_on_judging_each_ad_once(many):
    _reloaded(many)
    first = many.tick(turns=2)              # (the gather, a slice judged; the rest left for later turns)
    assert 0 < len(first) < MANY and many.soon
    rest = many.tick()                      # no change since: the look goes on where it was
    assert sorted(first + rest) == list(range(FIRST, FIRST + MANY))


def test_a_dk_dnc_during_a_sliced_look_is_judged_at_the_next_tick(many):
    _ad(many, 84900000101, due=DUE + 10 * MANY)     # no consent, not on the list yet; due last
    assert many.tick() == []
    _reloaded(many)
    many.tick(turns=2)
    many.pipeline.lists.add_dnc(84900000101, "S")       # its DK DNC while the look runs
    got = many.tick()
    assert 84900000101 in got and many.cancelled == [84900000101]
    assert len(got) == len(set(got))


def test_a_consent_withdrawn_during_a_sliced_look_starts_it_again(many):
    _reloaded(many)
    first = many.tick(turns=3)
    done = int(many.asked[0])               # judged already in this look, with its consent
    assert many.cancelled == [] and done in first
    remove_row(many.pipeline.lists, "consent", str(done), None, ["Shop ABC"])   # (in place: not known by number)
    again = many.tick()
    assert done in again and many.cancelled == [done]
    assert len(again) == len(set(again))


def test_an_ad_due_during_a_sliced_look_is_not_cancelled(many):
    # delivered by the SMSC while its turn in the look had not come (the look's ads all due by then): let go
    _ad(many, 84900000102, due=DUE + 10 * MANY)     # no consent: barred; due last, judged last
    many.pipeline.lists.add_dnc(84900000102, "S")
    _reloaded(many)
    many.tick(turns=2)
    assert many.soon and many.cancelled == []
    many.asked.clear()
    many.clock = lambda: NOW + timedelta(seconds=DUE + 10 * MANY - NOW.timestamp())    # it is due now
    while many.soon:                        # (the loop's next turns, before the next tick)
        many.soon.pop(0)()
    assert many.asked == [] and many.cancelled == [] and not many._look


class _Waiting(_Proxy):
    """Its cancels sent and never answered: in flight until the test says."""

    def _cancel_scheduled(self, ad, why):
        self.cancelled.append(ad.recipient)
        self._cancelling.add(ad.key)


def test_at_most_in_flight_cancels_wait_and_the_look_waits_for_a_slot(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Waiting(build(data_dir=d, with_model=False))
    n = IN_FLIGHT + 50
    for i in range(n):
        _ad(p, FIRST + i, due=DUE + i)
    assert p.tick() == []
    for i in range(n):
        p.pipeline.lists.add_dnc(FIRST + i, "S")
    assert p.tick() == list(range(FIRST, FIRST + IN_FLIGHT)) and not p.soon     # (paused: no turn wasted)
    assert len(p._cancelling) == IN_FLIGHT and len(p._look) == n - IN_FLIGHT
    assert p.tick() == []                   # no slot: not judged again
    for k in list(p._cancelling)[:10]:      # ten answered (cancelled: their entries gone)
        p._cancelling.discard(k)
        p.scheduled.discard(k)
    assert p.tick() == list(range(FIRST + IN_FLIGHT, FIRST + IN_FLIGHT + 10))


REGISTRY = (b"sender,owner,category,valid_from,valid_to,accounts\n"
            b"SHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\n"
            b"MOVING,Old Owner,QC,2020-01-01,2026-03-03,\n"
            b"MOVING,New Owner,QC,2026-03-04,2099-12-31,\n"
            b"ONLYTWO,Shop Two,QC,2020-01-01,2099-12-31,esme2\n"
            b"84987654321,Shop Num,QC,2020-01-01,2099-12-31,\n")


def test_a_turns_judge_says_what_dnc_barred_says(tmp_path):
    # the registry read once per sender, account and local day (Pipeline.dnc_judge), not once an ad: the same
    # answers, across an owner's change at local midnight, an account the registration refuses, odd recipients
    from datetime import datetime, timezone

    from engine.numbers import format_number
    from engine.verdict import Message
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", REGISTRY, "senders.csv")
    pipe = build(data_dir=d, with_model=False)
    L = pipe.lists
    people = [84912500001, 84912500002, 84912500003, 84912500004, 5656, 841900123456, 840123456789, 12025550123]
    for n in people:
        L.add_dnc(n, "S")
    for owner, n in (("Shop ABC", 84912500001), ("Old Owner", 84912500002), ("New Owner", 84912500003),
                     ("Shop Two", 84912500004), ("Shop Num", 84912500001), ("Shop ABC", 5656)):
        L.add_consent(owner, n)
    people += [84912500099, 1900123456, 8400123456789]      # (not on the list; read otherwise than as written)
    midnight = int(datetime(2026, 3, 4, tzinfo=pipe.tz).timestamp())        # MOVING's owner changes
    dues = [midnight + h * 1800 for h in range(-3, 4)] + [midnight - 1, midnight]
    senders = [("SHOPABC", 5), ("MOVING", 5), ("ONLYTWO", 5), ("84987654321", 1), ("UNKNOWN", 5)]
    judge, said, barred = pipe.dnc_judge(), [], 0
    for sender, ton in senders:
        for acct in ("esme1", "esme2"):
            for due in dues:
                for n in people:
                    want = pipe.dnc_barred(Message(sender, format_number(n), "",
                                                   datetime.fromtimestamp(due, timezone.utc), acct, "mt",
                                                   sender_ton=ton))
                    said.append((sender, acct, due, n, want, judge(sender, ton, acct, n, due)))
                    barred += want is not None
    assert [s for s in said if s[4] != s[5]] == []
    assert 0 < barred < len(said)


def test_on_a_real_loop_other_callbacks_run_between_the_looks_slices(many):
    # what the slices are for: a submit_sm or INVITE ready meanwhile is served before the look ends
    import asyncio
    loop = asyncio.new_event_loop()
    many.loop, served = loop, []
    _reloaded(many)
    many.asked.clear()

    async def go():
        many.now += 1.0
        many._scheduled_tick(many.now)
        for _ in range(3):                  # (another protocol's work, ready at the next turns)
            await asyncio.sleep(0)
            served.append(len(many.asked))
        while many._look_soon:
            await asyncio.sleep(0)
    try:
        loop.run_until_complete(go())
    finally:
        loop.close()
    assert len(many.asked) == MANY and served[0] < MANY and not many._look, served


def test_a_reload_at_every_tick_does_not_start_the_walk_again(tmp_path):
    # a full look walks its recipients a few turns; a reload each second (rules, lists, a consent changed in place)
    # goes on with that walk, or walks again behind the ads still to judge: with the loop busy (one turn of the look
    # between two ticks) each ad is judged (was, in the first version of the sliced look: the walk started again at
    # each tick and judging waited for its end, so no ad was judged, the barred one never cancelled)
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Proxy(build(data_dir=d, with_model=False))
    L, n = p.pipeline.lists, 2 * GATHER + 100
    for i in range(n):
        L.add_dnc(FIRST + i, "S")
        if i != n - 1:
            L.add_consent("Shop ABC", FIRST + i)        # (the last: none, barred)
        _ad(p, FIRST + i, due=DUE + i)
    p.tick()
    assert p.cancelled == [FIRST + n - 1]
    p.cancelled.clear()
    remove_row(p.pipeline.lists, "consent", str(FIRST + n - 7), None, ["Shop ABC"])     # (due late)
    judged = []
    for _ in range(2 + n // STEP):
        _reloaded(p)
        judged += p.tick(turns=1)           # (one turn of the look between two ticks: the loop busy)
    assert p.cancelled == [FIRST + n - 7] and set(judged) == set(range(FIRST, FIRST + n - 1))


def test_the_looks_queue_judges_a_round_before_the_next_and_a_key_once():
    from pyroaring import BitMap64

    from engine.smpp_proxy.dnc_look import DncLook
    from engine.smpp_proxy.scheduled import PendingAd, ScheduledAds
    index, look = ScheduledAds(), DncLook()
    for n, due in ((84900000201, 30), (84900000202, 20), (84900000203, 10)):
        index.add(PendingAd(f"k{n}", "smsc", f"M{n}", "esme1", due, n, "", 5, 0, "SHOPABC", 1, 1, str(n)))
    a, b, c = "k84900000201", "k84900000202", "k84900000203"
    look.every(BitMap64(index.dests))
    look.every(BitMap64(index.dests))           # (walking: goes on, nothing new)
    assert look.gather_some(index, 10) == 3 and not look.gathering and len(look) == 3
    assert look.pop() == c                      # soonest due first
    look.every(BitMap64(index.dests))           # a full change: c (judged) walked again, behind a and b
    look.gather_some(index, 10)
    assert len(look) == 3 and [look.pop() for _ in range(3)] == [b, a, c]
    look.every(BitMap64(index.dests))
    look.gather_some(index, 10)
    assert look.pop() == c
    look.every(BitMap64(index.dests))
    look.gather_some(index, 10)                 # (c queued for the next round)
    look.add(10, c)                             # its number added to the list: moves up to this round
    assert [look.pop() for _ in range(3)] == [c, b, a] and look.pop() is None and not look
