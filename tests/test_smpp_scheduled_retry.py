"""The scheduled ads whose cancel is to be tried again (dnc_retry.py) and those held for a link (dnc_held.py): what a
tick looks at is what is due, and a held ad keeps its back-off. Counts, never times."""
import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy import dnc_cancel
from engine.smpp_proxy.dnc_retry import Retries
from tests.test_smpp_dnc_cancel_incremental import DUE, SENDERS, _ad
from tests.test_smpp_dnc_cancel_look import FIRST, _Unbound


class _When(float):
    """A retry time that counts how often it is compared."""
    seen = 0

    def __le__(self, other):
        _When.seen += 1
        return float.__le__(self, other)

    def __lt__(self, other):
        _When.seen += 1
        return float.__lt__(self, other)

    def __eq__(self, other):
        _When.seen += 1
        return float.__eq__(self, other)

    __hash__ = float.__hash__


def test_a_tick_looks_at_the_retries_due_not_at_every_one(proxy_with_retries):
    # 20,000 ads backing off (an SMSC that answers no cancel_sm), none due: was, every tick compared each one's time
    # with the clock (a scan of the whole dict each second); now the heap's head only
    p, keys = proxy_with_retries
    _When.seen = 0
    assert p.tick() == []
    assert _When.seen < 50, _When.seen
    assert len(p._scheduled_retry) == len(keys)


def test_the_retries_due_are_taken_and_the_others_stay(proxy_with_retries):
    p, keys = proxy_with_retries
    p._scheduled_retry[keys[5]] = p.now + 1.0       # (its cancel to try again at the next tick)
    assert p.tick() == [FIRST + 5]
    assert keys[5] not in p._scheduled_retry and len(p._scheduled_retry) == len(keys) - 1


def test_retries_pop_due_soonest_first_and_a_new_time_stands():
    r = Retries()
    r["a"], r["b"], r["c"] = 5.0, 1.0, 3.0
    r["a"] = 2.0                    # (a new time: its old item is stale)
    r.setdefault("b", 9.0)          # (one waiting keeps its time)
    assert r.pop_due(2.5) == ["b", "a"] and dict(r) == {"c": 3.0}
    r["c"] = 10.0
    assert r.pop_due(5.0) == [] and r.pop_due(10.0) == ["c"] and r.heap == []
    for i in range(5000):           # a key given new times again and again: its stale items stay bounded
        r["x"] = float(i)
    assert len(r.heap) <= 2 + 1024 + 1


def test_an_ad_held_for_a_link_keeps_its_back_off(tmp_path, monkeypatch):
    # its cancel unanswered twice (backing off 1, 2 s), then its link lost: held until one is bound again. Was, its
    # count of tries was forgotten when it was held (`_judge_some`: "let go, or settled"), and the next unanswered
    # cancel backed off 1 s again -- an SMSC that answers nothing asked every few seconds again after each re-bind
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Unbound(build(data_dir=d, with_model=False))
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)
    answers = []
    p.link.request = lambda pdu, on_resp: (p.sent.append(pdu.message_id), answers.append(on_resp))
    p.links.append(p.link)
    key = f"smsc\x1fM{FIRST}"
    p.pipeline.lists.add_dnc(FIRST, "S")
    _ad(p, FIRST, due=DUE)                  # (no consent: barred)
    p.tick()
    for n in (1, 2):
        assert len(answers) == n
        answers[-1](None, None)             # (no answer: a timeout)
        assert p._cancel_tries[key] == n and p._scheduled_retry[key] == p.now + 2.0 ** (n - 1)
        while len(answers) == n:
            p.tick()
    p.links.remove(p.link)                  # (lost: its cancel's answer with it)
    answers[-1](None, None)
    assert p._cancel_tries[key] == 3
    while key in p._scheduled_retry:
        p.tick()
    assert p._cancel_held == {"smsc": {key}} and p._cancel_tries[key] == 3
    p.links.append(p.link)                  # bound again
    p.tick()
    assert len(answers) == 4 and p._cancel_held == {}
    answers[-1](None, None)
    assert p._cancel_tries[key] == 4 and p._scheduled_retry[key] == p.now + 8.0


def test_a_held_ads_count_of_tries_goes_with_it(tmp_path, monkeypatch):
    # kept while held, the count must not outlive the ad: delivered while held, or gone and released
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Unbound(build(data_dir=d, with_model=False))
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)
    for i in range(3):
        p.pipeline.lists.add_dnc(FIRST + i, "S")
        _ad(p, FIRST + i, due=DUE + i)
    p.tick()
    keys = [f"smsc\x1fM{FIRST + i}" for i in range(3)]
    assert p._cancel_held == {"smsc": set(keys)}
    for k in keys:
        p._cancel_tries[k] = 3              # (backed off before its link was lost)
    p.scheduled.discard(keys[0])            # (its receipt)
    p.links.append(p.link)
    p.tick()
    assert keys[0] not in p._cancel_tries and p._cancel_held == {}


@pytest.fixture
def proxy_with_retries(tmp_path, monkeypatch):
    """20,000 ads indexed, one barred and cancelled; every one backing off, the soonest 100 s ahead."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Unbound(build(data_dir=d, with_model=False))
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)
    p.links.append(p.link)
    keys = []
    for i in range(20_000):
        _ad(p, FIRST + i, due=DUE)          # (to numbers off the list: never barred)
        keys.append(f"smsc\x1fM{FIRST + i}")
    p.pipeline.lists.add_dnc(FIRST + 5, "S")
    p.tick()
    assert p.sent == [f"M{FIRST + 5}"]
    p._cancelling.clear()
    for i, k in enumerate(keys):            # backing off, the soonest 100 s ahead
        p._scheduled_retry[k] = _When(p.now + 100.0 + i)
    return p, keys
