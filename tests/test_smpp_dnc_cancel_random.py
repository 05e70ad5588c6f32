"""Randomized sequences of what happens to scheduled ads and the lists (DK DNC, removals, consent given and withdrawn
in place, reloads, deliveries, ESME cancels, new ads), a look's slices a few loop turns apart, checked against the
reference (Pipeline.dnc_barred, engine/smpp_proxy/dnc_cancel.py): no ad cancelled that it lets go at the cancel, and
once the changes stop and the look ends, no ad left indexed that it bars. STEP and GATHER made small, so that every
look spans ticks."""
import os
import random
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.lists.edits import remove as remove_row
from engine.numbers import format_number
from engine.smpp_proxy import dnc_cancel
from engine.verdict import Message
from tests.test_smpp_dnc_cancel_incremental import DUE, NOW, SENDERS, _ad, _Proxy
from tests.test_smpp_dnc_cancel_sliced import _reloaded

FIRST = 84912700000
NUMBERS = 40



def _start(rnd, lists, new_ad):
    """The random runs' start: some numbers on the DNC list, some with consent to the advertiser, 80 ads."""
    for _ in range(60):
        n = FIRST + rnd.randrange(NUMBERS)
        if rnd.random() < 0.5:
            lists.add_dnc(n, "S")
        if rnd.random() < 0.6:
            lists.add_consent("Shop ABC", n)
    for _ in range(80):
        new_ad()

def _seeds(n: int, failed: tuple) -> list:
    """range(n) (SEEDS=... in the environment for more), and the seeds that failed before the fix of a change made
    while a full look walks (dnc_look.DncLook.again)."""
    return sorted(set(range(int(os.environ.get("SEEDS", n)))) | set(failed))


class _Checked(_Proxy):
    """Each cancel checked against dnc_barred at its moment."""

    def _cancel_scheduled(self, ad, why):
        ts = self.clock().timestamp()
        assert ad.due > ts, (ad, "delivered already")
        assert self.barred(ad) is not None, (ad, why, "not barred")
        super()._cancel_scheduled(ad, why)

    def barred(self, ad):
        return self.pipeline.dnc_barred(Message(ad.source, format_number(ad.recipient), "",
                                                datetime.fromtimestamp(ad.due, timezone.utc), ad.account, "mt",
                                                sender_ton=ad.source_ton))


def _turns(p, k):
    for _ in range(k):
        if not p.soon:
            return
        p.soon.pop(0)()


@pytest.mark.parametrize("seed", _seeds(30, (94, 171, 172, 175)))
def test_random_changes_against_dnc_barred(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(dnc_cancel, "STEP", 3)
    monkeypatch.setattr(dnc_cancel, "GATHER", 2)
    rnd = random.Random(seed)
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Checked(build(data_dir=d, with_model=False))
    L = lambda: p.pipeline.lists        # noqa: E731 (a reload puts another)
    clock = [NOW]
    p.clock = lambda: clock[0]
    serial = [0]

    def new_ad():
        n = FIRST + rnd.randrange(NUMBERS)
        serial[0] += 1
        _ad(p, n, key=f"smsc\x1fM{serial[0]}", due=DUE + rnd.randrange(0, 600))

    _start(rnd, L(), new_ad)
    for step in range(120):
        n = FIRST + rnd.randrange(NUMBERS)
        op = rnd.random()
        if op < 0.15:
            L().add_dnc(n, "S")
        elif op < 0.22:
            remove_row(L(), "dnc", str(n), "S", [])
        elif op < 0.32:
            L().add_consent("Shop ABC", n)
        elif op < 0.45:
            remove_row(L(), "consent", str(n), None, ["Shop ABC"])
        elif op < 0.52:
            _reloaded(p)
        elif op < 0.6:
            new_ad()
        elif op < 0.66 and p.scheduled.entries:
            p._scheduled_gone(rnd.choice(sorted(p.scheduled.entries)))      # (its ESME's cancel, a receipt)
        elif op < 0.72:
            clock[0] += timedelta(seconds=rnd.randrange(1, 20))             # (some delivered)
        if rnd.random() < 0.5:
            p.now += 1.0
            p._scheduled_tick(p.now)
        _turns(p, rnd.randrange(0, 4))
    for _ in range(1000):               # the changes stop: the look ends
        p.now += 1.0
        p._scheduled_tick(p.now)
        _turns(p, 10 ** 6)
        if not p._look and not p._scheduled_retry:
            break
    ts = clock[0].timestamp()
    left = [(a.key, a.recipient) for a in p.scheduled.entries.values() if a.due > ts and p.barred(a) is not None]
    assert left == [], (seed, left)


class _Answered(_Checked):
    """The real cancel path (DncCancel._cancel_scheduled) over a link the test answers when it likes: taken,
    "not now", or no answer; at times no link free."""

    def __init__(self, pipeline, rnd):
        from collections import Counter
        from types import SimpleNamespace as NS
        super().__init__(pipeline)
        self.rnd, self.pending, self.stats = rnd, [], Counter()
        self.vlog = NS(write_cancel=lambda *a: None)
        self.link = NS(bound=True, id_space="smsc", kind="transceiver",
                       request=lambda pdu, on_resp: self.pending.append(on_resp))
        self.up = True

    @property
    def links(self):
        return [self.link] if self.up else []

    def id_spaces(self):
        return {"smsc"}

    def _pick_link(self, space=None, account=None):
        return self.link if self.up else None

    def _cancel_taken(self, *a):
        pass

    def _cancel_scheduled(self, ad, why):
        assert ad.due > self.clock().timestamp(), (ad, "delivered already")
        assert self.barred(ad) is not None, (ad, why, "not barred")
        self.cancelled.append(ad.recipient)
        dnc_cancel.DncCancel._cancel_scheduled(self, ad, why)

    def answer(self, k, settle=False):
        from engine.smpp_proxy.codec import constants as C
        from engine.smpp_proxy.codec import pdu as P
        for _ in range(min(k, len(self.pending))):
            on_resp = self.pending.pop(self.rnd.randrange(len(self.pending)))
            what = 0 if settle else self.rnd.choice((0, 0, C.ESME_RTHROTTLED, None))
            on_resp(None if what is None else P.CancelSmResp(command_status=what), what)


@pytest.mark.parametrize("seed", _seeds(20, (17, 90, 180)))
def test_random_changes_with_cancels_answered_late_against_dnc_barred(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(dnc_cancel, "STEP", 3)
    monkeypatch.setattr(dnc_cancel, "GATHER", 2)
    monkeypatch.setattr(dnc_cancel, "IN_FLIGHT", 4)
    rnd = random.Random(seed)
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Answered(build(data_dir=d, with_model=False), rnd)
    L = lambda: p.pipeline.lists        # noqa: E731
    clock = [NOW]
    p.clock = lambda: clock[0]
    mono = [1000.0]
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: mono[0])
    serial = [0]

    def new_ad():
        serial[0] += 1
        _ad(p, FIRST + rnd.randrange(NUMBERS), key=f"smsc\x1fM{serial[0]}", due=DUE + rnd.randrange(0, 600))

    _start(rnd, L(), new_ad)
    for step in range(150):
        n = FIRST + rnd.randrange(NUMBERS)
        op = rnd.random()
        if op < 0.15:
            L().add_dnc(n, "S")
        elif op < 0.22:
            remove_row(L(), "dnc", str(n), "S", [])
        elif op < 0.32:
            L().add_consent("Shop ABC", n)
        elif op < 0.45:
            remove_row(L(), "consent", str(n), None, ["Shop ABC"])
        elif op < 0.5:
            _reloaded(p)
        elif op < 0.58:
            new_ad()
        elif op < 0.63 and p.scheduled.entries:
            p._scheduled_gone(rnd.choice(sorted(p.scheduled.entries)))
        elif op < 0.68:
            clock[0] += timedelta(seconds=rnd.randrange(1, 20))
        elif op < 0.74:
            p.up = not p.up
        p.answer(rnd.randrange(0, 4))
        if rnd.random() < 0.5:
            p.now += 1.0
            mono[0] += 1.0
            p._scheduled_tick(p.now)
        _turns(p, rnd.randrange(0, 4))
    p.up = True
    for _ in range(3000):               # the changes stop, the link is up, answers come: the look ends
        p.now += 1.0
        mono[0] += 1.0
        p._scheduled_tick(p.now)
        _turns(p, 10 ** 6)
        p.answer(10 ** 6, settle=True)
        if not p._look and not p._scheduled_retry and not p._cancelling and not p.pending and not p._cancel_held:
            break
    ts = clock[0].timestamp()
    left = [(a.key, a.recipient) for a in p.scheduled.entries.values() if a.due > ts and p.barred(a) is not None]
    assert left == [], (seed, left)
