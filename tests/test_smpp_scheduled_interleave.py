"""Random interleavings of the scheduled ads' sliced structures against plain reference models: the index
(scheduled.ScheduledAds: adds, re-timings, discards while an expiry slice or a heap rebuild is under way), the look's
queue (dnc_look.DncLook: add, retime, pop) and the retries (dnc_retry.Retries). Counts and keys, never times."""
import heapq
import random

from engine.smpp_proxy import scheduled
from engine.smpp_proxy.dnc_look import DncLook
from engine.smpp_proxy.dnc_retry import Retries
from engine.smpp_proxy.scheduled import PendingAd, ScheduledAds


def _ad(i: int, due: int) -> PendingAd:
    return PendingAd(f"s\x1fM{i}", "s", f"M{i}", "esme1", due, 4520000000 + i % 50, "", 5, 0, "SHOP", 1, 1, "")


def test_index_random_interleavings_match_a_dict(monkeypatch):
    # (a small COMPACT_STEP: rebuilds of many slices, and frees of the old heap, among the adds and discards)
    monkeypatch.setattr(scheduled, "COMPACT_STEP", 8)
    rebuilt = 0
    for seed in range(24):
        rnd = random.Random(seed)
        keys, ahead, leap = (3000, 40, 5) if seed % 4 == 0 else (300 * (seed % 4), 3000, 5)
        ads, model, now = ScheduledAds(), {}, 1000

        def on_due(a):      # (each entry due given once, as it was indexed last, and gone)
            assert model.pop(a.key) == a.due and a.due <= now and a.key not in ads.entries
        for step in range(6000 if keys == 3000 else 15000):
            op = rnd.random()
            i = rnd.randrange(keys)
            if op < 0.45:
                due = now + rnd.randrange(0, ahead)
                ads.add(_ad(i, due))
                model[_ad(i, due).key] = due
            elif op < 0.75:
                k = _ad(i, 0).key
                assert (ads.discard(k) is not None) == (k in model)
                model.pop(k, None)
            else:
                if rnd.random() < 0.3:
                    now += rnd.randrange(1, leap)
                most = rnd.choice((1, 7, 64, None))
                rebuilt += ads.fresh is not None
                ads.expire(now, on_due, most)
                if most is None or not ads.due_left(now):
                    assert all(d > now for d in model.values()), seed
            assert {k: a.due for k, a in ads.entries.items()} == model, seed
        # drained: every entry due at `now` gone, each once, none left on any heap path
        while ads.due_left(now) or ads.rebuilding:
            ads.expire(now, on_due, 64)
        assert {k: a.due for k, a in ads.entries.items()} == model, seed
        live = {(a.due, k) for k, a in ads.entries.items()}
        assert live <= set(ads.heap), seed       # every live entry on the heap in force
        assert len(ads.heap) <= 3 * len(ads.entries) + 1024 + 8
        now = 10 ** 9
        ads.expire(now, on_due)
        assert not ads.entries and not model, seed
    assert rebuilt > 100        # (the test's point: slices of a rebuild among the changes)


def test_look_queue_random_add_retime_pop_matches_a_model():
    for seed in range(60):
        rnd = random.Random(seed)
        look, model = DncLook(), {}     # key -> due (one round: keys judged soonest due first)
        for _ in range(3000):
            op, k = rnd.random(), f"k{rnd.randrange(200)}"
            if op < 0.4:
                due = rnd.randrange(1, 10 ** 6)
                look.add(due, k)
                model.setdefault(k, due)
            elif op < 0.7:
                due = rnd.randrange(1, 10 ** 6)
                look.retime(due, k)
                if k in model:
                    model[k] = due
            else:
                key = look.pop()
                if not model:
                    assert key is None
                    continue
                assert model[key] == min(model.values()), seed
                del model[key]
            assert len(look) == len(model)
        while model:
            key = look.pop()
            assert model.pop(key) is not None
        assert look.pop() is None and not look.heap and not look.keys


def test_retries_random_matches_a_dict_and_stays_bounded():
    for seed in range(30):
        rnd = random.Random(seed)
        r, model, now = Retries(), {}, 0.0
        for _ in range(20000):
            op, k = rnd.random(), f"k{rnd.randrange(500)}"
            if op < 0.4:
                t = now + rnd.choice((float("-inf"), 0.0, 1.0, 2.0, 300.0))
                r[k] = t
                model[k] = t
            elif op < 0.6:
                t = now + rnd.random()
                assert r.setdefault(k, t) == model.setdefault(k, t)
            elif op < 0.62:
                r.clear()
                model.clear()
            else:
                now += rnd.random()
                due = r.pop_due(now)
                want = sorted((t, k) for k, t in model.items() if t <= now)
                assert due == [k for _, k in want], seed
                for k in due:
                    del model[k]
            assert dict(r) == model
            assert len(r.heap) <= 2 * len(r) + 1024 + 1


def test_an_id_given_again_with_another_delivery_takes_its_new_place_in_a_look(tmp_path):
    # an SMSC's message_id given again (ids wrap) to an ad of another delivery while the old one's key is queued for
    # a look: the entry is replaced (ScheduledAds.add), and its place in the look's queue goes with it, as a
    # replace_sm's re-timing does (was: the old delivery's place kept -- due in a minute, judged behind ads due in
    # a month)
    from engine.app import build
    from engine.lists import ListStore
    from tests.test_smpp_dnc_cancel_incremental import DUE, FIRST, SENDERS, _ad as _index, _Proxy
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Proxy(build(data_dir=d, with_model=False))
    look = p._look
    for i in range(3):
        _index(p, FIRST + i, due=DUE + 1000 * i)
        look.add(DUE + 1000 * i, f"smsc\x1fM{FIRST + i}")
    _index(p, FIRST + 2, due=DUE - 10)          # (the same key, sooner)
    assert p.scheduled.entries[f"smsc\x1fM{FIRST + 2}"].due == DUE - 10
    assert [look.pop() for _ in range(4)] == [f"smsc\x1fM{FIRST + 2}", f"smsc\x1fM{FIRST}", f"smsc\x1fM{FIRST + 1}",
                                              None]


def test_an_ad_let_go_as_delivered_then_re_timed_later_is_judged_again(tmp_path):
    # found by a random interleaving of the proxy's paths: a look's slice takes an ad to a number just registered
    # DK DNC as its delivery second passes (the tick's expiry, a turn earlier, had not dropped it): let go as
    # delivered. The SMSC had not sent it yet and takes a replace_sm moving it an hour later: it stayed indexed,
    # to a DNC number, and no look judged it again (no DNC change names it again): delivered, barred. Now a
    # re-timed ad to a DNC number is judged at the next tick, once, as one indexed to a DNC number is
    from datetime import timedelta

    from engine.app import build
    from engine.lists import ListStore
    from tests.test_smpp_dnc_cancel_incremental import DUE, FIRST, NOW, SENDERS, _ad as _index, _Proxy
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Proxy(build(data_dir=d, with_model=False))
    at_due = NOW + timedelta(seconds=DUE - int(NOW.timestamp()))
    _index(p, FIRST, due=DUE)
    p.tick()                                    # (the first look: nothing on the list)
    p.pipeline.lists.add_dnc(FIRST, "S")        # (no consent: barred)
    times = iter([at_due - timedelta(seconds=1)])
    p.clock = lambda: next(times, at_due)       # (the tick's expiry a second before its delivery, the look at it)
    p.tick()
    key = f"smsc\x1fM{FIRST}"
    assert p.cancelled == [] and key in p.scheduled.entries      # (let go as delivered, not dropped yet)
    p._index_retimed(p.scheduled.discard(key)._replace(due=DUE + 3600))      # (relay.py: a replace_sm taken)
    p.tick()
    assert p.cancelled == [FIRST] and key not in p.scheduled.entries


def test_proxy_paths_random_interleavings_leave_no_barred_ad_uncancelled(tmp_path, monkeypatch):
    # the proxy's paths in random order (_Unbound: the real cancel path, its link bound or not): ads indexed (an id
    # given again too), numbers registered DK DNC (none with consent: every ad to one barred), receipts, replace_sm
    # re-timings, ticks with the clock moving, the loop's turns run a few at a time, cancels answered in any order
    # (none, "not now", cancelled); small slices (EXPIRE_STEP 4, COMPACT_STEP 8, STEP 3). Then the link kept bound and
    # every cancel answered: no ad still ahead to a DNC number is left indexed, nothing queued, held or in flight,
    # no back-off count of an ad gone, the index heap bounded
    from types import SimpleNamespace as NS

    from engine.app import build
    from engine.lists import ListStore
    from engine.smpp_proxy import dnc_cancel
    from engine.smpp_proxy.codec import constants as C
    from tests.test_smpp_dnc_cancel_incremental import FIRST, NOW, SENDERS
    from tests.test_smpp_dnc_cancel_look import _Unbound
    from datetime import timedelta
    monkeypatch.setattr(dnc_cancel, "EXPIRE_STEP", 4)
    monkeypatch.setattr(dnc_cancel, "STEP", 3)
    monkeypatch.setattr(scheduled, "COMPACT_STEP", 8)
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    pipe, t0, cancelled = build(data_dir=d, with_model=False), int(NOW.timestamp()), 0
    for seed in range(40):
        rnd, clock, dnc, waiting = random.Random(seed), [0], set(), []
        p = _Unbound(pipe)
        monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)
        p.clock = lambda: NOW + timedelta(seconds=clock[0])
        p.link.request = lambda pdu, on_resp: waiting.append(on_resp)
        p.vlog, p._cancel_taken = NS(write_cancel=lambda *a: None), lambda *a: None

        def answer(final=False):
            rnd.shuffle(waiting)
            while waiting:
                r = 1.0 if final else rnd.random()
                if r < 0.3:
                    waiting.pop()(None, None)
                else:
                    waiting.pop()(NS(command_id=C.CANCEL_SM_RESP,
                                     command_status=C.ESME_RTHROTTLED if r < 0.45 else 0), None)
                if not final and rnd.random() < 0.5:
                    break
        for _ in range(3000):
            op, n, k = rnd.random(), FIRST + 1000 * seed + rnd.randrange(400), f"s{seed}\x1fM{rnd.randrange(600)}"
            if op < 0.4:
                p._index_ad(PendingAd(k, "smsc", k[4:], "esme1", t0 + clock[0] + rnd.randrange(1, 120), n, "", 5, 0,
                                      "SHOPABC", 1, 1, str(n)))
            elif op < 0.5:
                pipe.lists.add_dnc(n, "S")
                dnc.add(n)
            elif op < 0.6:
                p._scheduled_gone(k)
            elif op < 0.7:
                a = p.scheduled.discard(k)
                if a is not None:
                    p._index_retimed(a._replace(due=t0 + clock[0] + rnd.randrange(1, 120)))
            elif op < 0.85:
                clock[0] += rnd.choice((0, 0, 1, 2))
                p.now += 1.0
                p._scheduled_tick(p.now)
            elif op < 0.9:
                answer()
            elif op < 0.93:
                p.links = [] if p.links else [p.link]
            else:
                for _ in range(rnd.randrange(4)):
                    if p.soon:
                        p.soon.pop(0)()
        p.links = [p.link]
        for _ in range(400):            # (past BACKOFF_MAX: every back-off run out)
            answer(True)
            p.now += 1.0
            p._scheduled_tick(p.now)
            while p.soon:
                p.soon.pop(0)()
        now, s = t0 + clock[0], p.scheduled
        assert not [a for a in s.entries.values() if a.recipient in dnc and a.due > now], seed
        assert not p._look and not p._cancelling and not any(p._cancel_held.values()), seed
        assert set(p._cancel_tries) <= set(s.entries) | set(p._scheduled_retry), seed
        assert len(s.heap) <= 2 * len(s) + 1024 + 1, seed
        cancelled += p.stats["scheduled_ads_cancelled"]
    assert cancelled > 500          # (the test's point: cancels among the rest)
