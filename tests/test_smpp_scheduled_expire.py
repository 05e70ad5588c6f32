"""The scheduled ads' expiry (scheduled.ScheduledAds.expire, dnc_cancel `_expire_some`) a slice per loop turn: many
due in the same second (ads held until 07:00), the index heap rebuilt. Counts, never times."""
from datetime import datetime, timedelta

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy import dnc_cancel
from engine.smpp_proxy.dnc_cancel import EXPIRE_STEP
from engine.smpp_proxy.scheduled import COMPACT_STEP, PendingAd, ScheduledAds
from tests.test_smpp_dnc_cancel import pipe  # noqa: F401 (the fixture)
from tests.test_smpp_dnc_cancel_incremental import DUE, NOW, SENDERS, _ad, _Proxy
from tests.test_smpp_dnc_cancel_look import FIRST, _Unbound

NOW_DUE = NOW + timedelta(seconds=DUE - int(NOW.timestamp()))       # (the ads' delivery)


def _pending(i: int, due: int) -> PendingAd:
    return PendingAd(f"smsc\x1fM{i}", "smsc", f"M{i}", "esme1", due, FIRST + i, "", 5, 0, "SHOPABC", 1, 1, "")


def test_expire_with_most_stops_short_and_goes_on():
    ads = ScheduledAds()
    for i in range(5000):
        ads.add(_pending(i, 1000 + i % 7))
    ads.add(_pending(9999, 2000))
    gone, turns = [], 0
    while True:
        assert ads.expire(1010, gone.append, 1024) <= 1024
        turns += 1
        if not ads.due_left(1010):
            break
    assert turns >= 5 and len(gone) == 5000 and list(ads.entries) == ["smsc\x1fM9999"]
    assert [a.due for a in gone] == sorted(a.due for a in gone)       # (soonest first, as in one go)


def test_the_heap_is_rebuilt_a_slice_at_a_time_and_answers_the_same():
    # stale items outnumbering the entries (receipts, cancels): was, the heap rebuilt in the expiry's turn (~65 ms at
    # 200,000 entries); now COMPACT_STEP entries a call, the old heap in force until the new one is whole
    ads = ScheduledAds()
    n = 4 * COMPACT_STEP
    for i in range(n):
        ads.add(_pending(i, 5000 + i))
    for i in range(0, n, 4):
        ads.add(_pending(i, 5000 + i))          # (given again: its old item stale)
    for i in range(1, n, 4):
        ads.discard(f"smsc\x1fM{i}")            # (receipts)
    for i in range(2, n, 4):
        ads.discard(f"smsc\x1fM{i}")
    stale = len(ads.heap)
    assert ads.expire(0, None, 64) == 0 and ads.rebuilding and len(ads.heap) == stale
    ads.add(_pending(n + 1, 4000))              # (meanwhile: one indexed, one re-timed earlier, one gone)
    ads.add(_pending(3, 4500))
    ads.discard(f"smsc\x1fM{n - 1}")
    calls, freed = 1, []
    while ads.rebuilding:
        ads.expire(0, None, 64)
        calls += 1
        freed.append(len(ads.old or ()))
    assert calls >= 3 and len(ads.heap) <= len(ads) + 2
    # (the old heap freed a slice a call too: all of it at once was ~20 ms at 200,000 items)
    assert max(freed) > 4 * COMPACT_STEP and freed[-1] == 0
    gone = []
    ads.expire(10 ** 9, gone.append)
    assert [a.key for a in gone[:2]] == [f"smsc\x1fM{n + 1}", "smsc\x1fM3"]
    assert len(gone) == n // 2 and len(ads) == 0


def test_many_due_at_once_go_a_slice_per_loop_turn(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Proxy(build(data_dir=d, with_model=False))
    n = 3 * EXPIRE_STEP + 5
    for i in range(n):
        _ad(p, FIRST + i, due=DUE)
    _ad(p, FIRST + n, due=DUE + 3600)
    p.clock = lambda: NOW_DUE
    p.now += 1.0
    p._scheduled_tick(p.now)
    assert len(p.scheduled) == n + 1 - EXPIRE_STEP and len(p.soon) == 1
    turns = 1
    while p.soon:
        p.soon.pop(0)()
        turns += 1
        assert p._scheduled_tick(p.now + 1.0) is None       # (a tick meanwhile: the slices go on, not twice)
        assert len(p.soon) <= 1
    assert turns == 4 and list(p.scheduled.entries) == [f"smsc\x1fM{FIRST + n}"]


def test_held_ads_due_in_slices_are_all_counted_as_delivered(tmp_path, monkeypatch):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Unbound(build(data_dir=d, with_model=False))
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)
    n = 2 * EXPIRE_STEP + 1
    for i in range(n):
        p.pipeline.lists.add_dnc(FIRST + i, "S")
        _ad(p, FIRST + i, due=DUE)      # (no consent: barred, held: no link)
    p.tick()
    assert len(p._cancel_held["smsc"]) == n
    p.clock = lambda: NOW_DUE
    p.tick()
    assert len(p.scheduled) == 0 and p.stats["scheduled_ads_cancel_failed"] == n and p._cancel_held == {}


def test_a_replace_sm_moving_an_ad_earlier_or_later_makes_it_due_then():
    # the index (a guard: passes before and after): its new delivery in force, its old heap item stale
    ads = ScheduledAds()
    ads.add(_pending(1, 5000))
    ads.add(_pending(2, 6000))
    ads.add(_pending(1, 3000))          # (moved earlier)
    ads.add(_pending(2, 9000))          # (moved later)
    assert ads.expire(3000) == 1 and list(ads.entries) == ["smsc\x1fM2"]
    assert ads.expire(8999) == 0 and ads.due_before(9001, 10) == ["smsc\x1fM2"]
    assert ads.expire(9000) == 1 and not ads.entries


def test_an_ad_re_timed_takes_its_new_place_in_a_look(tmp_path):
    # queued for a look (soonest due first), then a replace_sm moves it: was, it kept the place of its old delivery
    # (one moved to the next minute judged behind ads due in a month: delivered unjudged while IN_FLIGHT cancels
    # waited; one moved later judged ahead of ads due sooner)
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Proxy(build(data_dir=d, with_model=False))
    look = p._look
    for i in range(4):
        _ad(p, FIRST + i, due=DUE + 1000 * i)
        look.add(DUE + 1000 * i, f"smsc\x1fM{FIRST + i}")
    early, late = p.scheduled.entries[f"smsc\x1fM{FIRST + 3}"], p.scheduled.entries[f"smsc\x1fM{FIRST}"]
    p._index_retimed(early._replace(due=DUE - 10))
    p._index_retimed(late._replace(due=DUE + 5000))
    assert p.scheduled.entries[early.key].due == DUE - 10
    assert [look.pop() for _ in range(5)] == [early.key, f"smsc\x1fM{FIRST + 1}", f"smsc\x1fM{FIRST + 2}", late.key,
                                              None]
    assert len(look) == 0 and look.heap == [] and look.keys == []


def test_a_replace_sm_re_times_the_ads_entry_and_its_place_in_a_look(pipe):
    # through the proxy: an ad for 09:00 tomorrow queued for a look, replaced for 08:00, then 10:00; its entry due
    # then, and the look's queue with it (was: the index re-timed, the look's place kept; a guard of the relay's
    # call: passes before for the entry)
    from engine.smpp_proxy.codec import encode
    from engine.smpp_proxy.codec import pdu as P
    from engine.smpp_proxy.harness import ProxyHarness
    from tests.test_smpp_dnc_cancel import NOW as AT, TOMORROW_9, _answer, _submit, _wait
    from tests.test_smpp_proxy import raw_session
    nine = int(datetime(2026, 3, 3, 9, 0, tzinfo=AT.tzinfo).timestamp())
    with ProxyHarness(pipe, clock=lambda: AT) as h:
        s, _ = raw_session(h)
        mid = _submit(s, 2, "84912777801", sched=TOMORROW_9)
        assert _wait(lambda: len(h.proxy.scheduled) == 1)
        key, = h.proxy.scheduled.entries
        h.run(h.proxy._look.add, nine, key)       # (queued, as a look would: by its delivery)
        h.run(setattr, h.proxy, "_look_soon", True)     # (its next slice "pending": no tick takes it meanwhile)
        for seq, sched, due in ((3, "260303080000028+", nine - 3600), (4, "260303100000028+", nine + 3600)):
            s.sendall(encode(P.ReplaceSm(sequence_number=seq, message_id=mid, source_addr_ton=5,
                                         source_addr="SHOPABC", schedule_delivery_time=sched,
                                         short_message=b"[QC] Giam gia 40%. TC gui 5656")))
            assert _answer(s).command_status == 0
            assert _wait(lambda: h.proxy.scheduled.entries[key].due == due)
            assert h.run(lambda: h.proxy._look.queued[hash(key) % 8][key] >> 32 & 0xFFFFFFFF) == due


def test_no_rebuild_starts_while_the_last_ones_heap_is_being_freed():
    # (a rebuild's swap while the heap before it was still being freed would free what is left of it at once)
    ads = ScheduledAds()
    n = 4 * COMPACT_STEP
    for i in range(n):
        ads.add(_pending(i, 5000 + i))
    for i in range(n // 2):
        ads.discard(f"smsc\x1fM{i}")
        ads.add(_pending(i, 6000 + i))          # (re-timed: stale items)
    for i in range(n // 2, n - 100):
        ads.discard(f"smsc\x1fM{i}")
    while ads.old is None:
        ads.expire(0, None, 64)
    for i in range(n // 2):
        ads.discard(f"smsc\x1fM{i}")            # (stale again, past twice the entries)
    assert len(ads.heap) > 2 * len(ads) + 1024
    ads.expire(0, None, 64)
    assert ads.fresh is None and ads.old is not None
    while ads.old is not None:
        ads.expire(0, None, 64)
    ads.expire(0, None, 64)
    assert ads.fresh is not None                # (then it starts)
