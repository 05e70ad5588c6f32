"""Review of the barred ads held while no SMSC link of their id space is bound (dnc_held.py, `_cancel_held`):
one delivered while held, the held set's bound, none with room; a cancel whose sending raises. Counts, never times."""
from datetime import timedelta

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy import dnc_cancel
from engine.smpp_proxy.dnc_cancel import STEP
from engine.smpp_proxy.dnc_held import SLACK
from tests.test_smpp_dnc_cancel_incremental import DUE, SENDERS, _ad
from tests.test_smpp_dnc_cancel_look import FIRST, _Unbound


def _held(tmp_path, monkeypatch, n, due=lambda i: DUE + i):
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Unbound(build(data_dir=d, with_model=False))
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)
    for i in range(n):
        p.pipeline.lists.add_dnc(FIRST + i, "S")
        _ad(p, FIRST + i, due=due(i))       # (no consent: every one barred)
    assert len(p.tick()) == n and p.sent == [] and len(p._cancel_held["smsc"]) == n
    return p


def test_a_barred_ad_delivered_while_held_for_a_link_is_counted_and_said(tmp_path, monkeypatch, caplog):
    # no link of its id space bound until its delivery: the SMSC delivers it, barred. Was, its key went from the
    # held set at the next release or pruning, silently: no count, no line (a refused cancel, or one whose SMSC is no
    # longer configured, counts `scheduled_ads_cancel_failed` and is said)
    p = _held(tmp_path, monkeypatch, 4, due=lambda i: DUE + 10 * i)
    p.pipeline.lists.add_consent("Shop ABC", FIRST + 2)     # (given meanwhile: it may go, not counted)
    clock = p.clock
    p.clock = lambda: clock() + timedelta(seconds=DUE + 25 - int(clock().timestamp()))
    caplog.set_level("WARNING", logger="telfilter.smpp")
    p.tick()
    assert len(p.scheduled) == 1 and p.stats["scheduled_ads_cancel_failed"] == 2
    assert "no SMSC link of id space 'smsc' was bound" in caplog.text
    assert p._cancel_held["smsc"] == {f"smsc\x1fM{FIRST + 3}"}     # (still ahead: held)


def test_the_held_keys_of_ads_gone_stay_fewer_than_the_index_and_more(tmp_path, monkeypatch):
    # the held keys of ads gone meanwhile (their receipts, ESME cancels) are dropped "once they outnumber the index":
    # was, once they were twice the index and MORE (at the bound, 400,000 keys held for 200,000 ads)
    n = SLACK + 300
    p = _held(tmp_path, monkeypatch, n)
    for i in range(n - 200):
        p.scheduled.discard(f"smsc\x1fM{FIRST + i}")          # (gone: their receipts, ESME cancels)
    p.tick()
    assert len(p.scheduled) == 200
    assert len(p._cancel_held["smsc"]) <= len(p.scheduled) + SLACK


def test_barred_ads_with_no_window_free_wait_unjudged_until_one_is(tmp_path, monkeypatch):
    # a link of their id space bound but no window with room for their account (submits filling them, the account
    # kept out of the reserve): was, each barred ad was put among the retries for the next tick, and each tick pulled
    # every one into the look and judged it again (1,000 ads: 1,000 judgements a tick, as long as the windows stay
    # full -- under load). Now they wait by id space and account, unjudged, until a window has room for it
    n = 2 * STEP
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Unbound(build(data_dir=d, with_model=False))
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)
    p.links.append(p.link)
    room = []
    p._pick_link = lambda space=None, account=None: p.link if room else None
    for i in range(n):
        p.pipeline.lists.add_dnc(FIRST + i, "S")
        _ad(p, FIRST + i, due=DUE + i)      # (no consent: every one barred)
    assert len(p.tick()) == n and p.sent == []
    for _ in range(3):
        assert p.tick() == []               # no room: not judged again
    room.append(1)
    for _ in range(n):
        p.tick()
        for k in list(p._cancelling):       # (answered: cancelled)
            p._cancelling.discard(k)
            p.scheduled.discard(k)
        if not p._look and not p._scheduled_retry:
            break
    assert sorted(p.sent) == sorted(f"M{FIRST + i}" for i in range(n)) and p._cancel_held == {}


def test_a_cancel_whose_sending_raises_is_not_counted_as_sent(tmp_path, monkeypatch):
    # the link's request raising (a bug): nothing went to the SMSC. Was, counted in scheduled_ads_cancel_sent before
    # the request, and so counted as sent
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Unbound(build(data_dir=d, with_model=False))
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)
    p.links.append(p.link)
    send = p.link.request

    def request(pdu, on_resp):
        if pdu.message_id == f"M{FIRST + 1}":
            raise RuntimeError("a bug")
        send(pdu, on_resp)
    p.link.request = request
    for i in range(3):
        p.pipeline.lists.add_dnc(FIRST + i, "S")
        _ad(p, FIRST + i, due=DUE + i)
    p.tick()
    assert len(p.sent) == 2 and p.stats["scheduled_ads_cancel_sent"] == 2
