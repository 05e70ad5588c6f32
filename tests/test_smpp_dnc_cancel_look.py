"""Review of the sliced DNC look (engine/smpp_proxy/dnc_look.py, dnc_cancel.py): a change made while a full look
walks, the queue's slots over a look that never ends, ... Counts, never times."""
from engine.app import build
from engine.lists import ListStore
from engine.lists.edits import remove as remove_row
from engine.smpp_proxy import dnc_cancel
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


def _index(n, first=FIRST):
    from engine.smpp_proxy.scheduled import PendingAd, ScheduledAds
    index = ScheduledAds()
    for i in range(n):
        index.add(PendingAd(f"k{first + i}", "smsc", f"M{i}", "esme1", DUE + i, first + i, "", 5, 0, "SHOPABC",
                            1, 1, str(first + i)))
    return index


def test_the_queues_slots_stay_as_many_as_its_keys_when_a_look_never_ends():
    # a full change every tick on a loop too busy to end the look between two (the case the rounds are for): the
    # queue is never empty. Was, `keys` (slot -> key) grew by every key queued, never reset: ~100,000 slots a second
    # at 200,000 ads, memory without bound, and past 2**32 slots `slot` ran into `due` (and `round << 32 | slot`)
    from pyroaring import BitMap64

    from engine.smpp_proxy.dnc_look import DncLook
    index, look = _index(500), DncLook()
    for tick in range(200):
        look.every(BitMap64(index.dests))
        while look.gathering:
            look.gather_some(index, GATHER)
        for _ in range(150):                # (fewer than the round holds: never empty)
            assert look.pop() is not None
        look.add(DUE, f"k{FIRST + tick % 500}")       # (a change known by number: may move a key up)
        assert look
    assert len(look) <= 500 and len(look.keys) <= 3 * 500 and len(look.heap) <= 3 * 500, \
        (len(look), len(look.keys), len(look.heap))


def test_no_cancel_is_sent_once_the_proxy_is_stopping(tmp_path):
    # the drain sends its unbinds (stopping: server.py) while a look's slices still come a loop turn apart: was, they
    # went on sending cancel_sm on links being unbound (bound until their unbind_resp), which an SMSC refuses
    # (ESME_RINVBNDSTS: the entry dropped as "refused", the barred ad delivered). Now the look waits: its ads stay
    # indexed (journalled), judged by the next start's full look
    p = _walked(tmp_path, 3 * STEP, consent=lambda i: i % 2 == 0)     # (every other: barred once looked at)
    assert p.cancelled == [FIRST + i for i in range(1, 3 * STEP, 2)]    # (all barred, cancelled at the first look)
    p.cancelled.clear()
    for i in range(0, 3 * STEP, 2):         # (in place: a full look, every one barred now)
        remove_row(p.pipeline.lists, "consent", str(FIRST + i), None, ["Shop ABC"])
    p.tick(turns=0)
    assert 0 < len(p.cancelled) < 3 * STEP // 2 and p.soon
    sent, p.stopping = len(p.cancelled), True
    while p.soon:
        p.soon.pop(0)()
    p.tick()
    assert len(p.cancelled) == sent and len(p.scheduled) == 3 * STEP // 2 - sent


class _Unbound(_Proxy):
    """The real cancel path; its SMSC links (of id space "smsc") bound or not as the test says."""

    def __init__(self, pipeline):
        from collections import Counter
        from types import SimpleNamespace as NS
        super().__init__(pipeline)
        self.stats, self.links, self.sent = Counter(), [], []
        self.link = NS(bound=True, id_space="smsc", kind="transceiver",
                       request=lambda pdu, on_resp: self.sent.append(pdu.message_id))

    def id_spaces(self):
        return {"smsc"}

    def _pick_link(self, space=None, account=None):
        return self.link if self.link in self.links and len(self._cancelling) < 10 ** 6 else None

    def _cancel_scheduled(self, ad, why):
        from engine.smpp_proxy.dnc_cancel import DncCancel
        DncCancel._cancel_scheduled(self, ad, why)


def test_barred_ads_wait_for_a_link_of_their_id_space_unjudged_until_one_is_bound(tmp_path, monkeypatch):
    # no SMSC link bound (a start before its bind, a lost link binding again): was, each barred ad's cancel was put
    # among the retries for the next tick, and each tick pulled every one into the look and judged it again (~100,000
    # ads: every second the whole look again, ~0.4 s of CPU). Now they wait by id space until one of its links is
    # bound: judged again then (with the lists then), and cancelled
    n = 2 * STEP
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Unbound(build(data_dir=d, with_model=False))
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)      # (the tick's clock)
    L = p.pipeline.lists
    for i in range(n):
        L.add_dnc(FIRST + i, "S")
        _ad(p, FIRST + i, due=DUE + i)      # (no consent: every one barred)
    assert len(p.tick()) == n and p.sent == []
    for _ in range(3):
        assert p.tick() == []               # no link bound: not judged again
    remove_row(L, "dnc", str(FIRST), "S", [])       # (meanwhile off the list: let go)
    p.links.append(p.link)                  # bound
    judged = []
    for _ in range(n):
        judged += p.tick()
        for k in list(p._cancelling):       # (answered: cancelled)
            p._cancelling.discard(k)
            p.scheduled.discard(k)
        if not p._look and not p._scheduled_retry:
            break
    assert sorted(judged) == list(range(FIRST + 1, FIRST + n))
    assert sorted(p.sent) == sorted(f"M{FIRST + i}" for i in range(1, n)) and p._cancel_held == {}


def test_a_full_look_judges_first_the_ads_due_within_soon_whatever_their_number(tmp_path):
    # a full look walks the recipients in the order of their numbers (GATHER a turn, ~400 turns at 200,000), and a
    # change during a look queues the ads judged before it behind the round being judged (~1,560 turns): an ad due in
    # a few seconds waited for either (let go once due: delivered, barred). Now those due within SOON seconds are
    # queued first, in the round being judged
    from engine.smpp_proxy.dnc_cancel import SOON
    n = 3 * GATHER
    p = _walked(tmp_path, n)
    now = int(p.clock().timestamp())
    last, mid = FIRST + n - 1, FIRST + GATHER
    for k in (last, mid):                   # (walked last, or in the walk's second turn; due in a few seconds)
        p.scheduled.discard(f"smsc\x1fM{k}")
        _ad(p, k, due=now + SOON // 2)
    p.tick()
    remove_row(p.pipeline.lists, "consent", str(last), None, ["Shop ABC"])    # (in place: a full look)
    assert last in p.tick(turns=0) and p.cancelled == [last]     # the tick's first slice
    p.tick()
    _reloaded(p)
    assert mid in p.tick(turns=5)           # (judged with its consent early in a look of n ads, 12 slices: not done)
    assert p._look and not p._look.gathering and p.cancelled == [last]
    remove_row(p.pipeline.lists, "consent", str(mid), None, ["Shop ABC"])    # (in place: a full look)
    assert mid in p.tick(turns=1) and p.cancelled == [last, mid]     # (the next turn)


def test_due_before_says_what_a_scan_of_the_index_says():
    import random

    from engine.smpp_proxy.scheduled import PendingAd, ScheduledAds
    rnd, index = random.Random(7), ScheduledAds()
    for i in range(3000):
        k = f"k{rnd.randrange(1500)}"           # (an id given again: its entry replaced, a stale heap item left)
        index.add(PendingAd(k, "smsc", k, "esme1", DUE + rnd.randrange(600), FIRST + i, "", 5, 0, "S", 1, 1, ""))
        if rnd.random() < 0.2:
            index.discard(f"k{rnd.randrange(1500)}")
    for t in (DUE, DUE + 1, DUE + 60, DUE + 300, DUE + 601):
        want = sorted((a.due, k) for k, a in index.entries.items() if a.due < t)
        assert sorted((index.entries[k].due, k) for k in index.due_before(t, 10 ** 6)) == want
        got = [index.entries[k].due for k in index.due_before(t, 50)]
        assert got == sorted(got) == [d for d, _ in want[:50]]      # (the soonest, in order)


def test_the_queues_bookkeeping_holds_over_random_operations():
    # live == the keys queued; each queued key named by one heap item of its round and slot; every slot not free
    # named by exactly one heap item (a slot given again while an item names it would judge another ad)
    import random

    from pyroaring import BitMap64

    from engine.smpp_proxy.dnc_look import _SLOT, DncLook
    rnd = random.Random(3)
    index, look = _index(300), DncLook()
    everyone = sorted(index.entries)
    for _ in range(3000):
        op = rnd.random()
        if op < 0.05:
            look.every(BitMap64(rnd.sample(sorted(index.dests), rnd.randrange(1, 300))))
        elif op < 0.3:
            look.gather_some(index, rnd.randrange(1, 40))
        elif op < 0.6:
            k = rnd.choice(everyone)
            look.add(index.entries[k].due, k)
        elif op < 0.65:                 # (a replace_sm's new schedule)
            look.retime(index.entries[rnd.choice(everyone)].due + rnd.randrange(-5, 5), rnd.choice(everyone))
        else:
            look.pop()
        queued = {k: v for q in look.queued for k, v in q.items()}
        assert look.live == len(queued)
        named = [i & _SLOT for i in look.heap]
        assert len(named) == len(set(named)) and not set(named) & set(look.free)
        assert len(named) + len(look.free) == len(look.keys)
        items = set(look.heap)
        for k, v in queued.items():         # (its value: the heap item that names it)
            assert look.keys[v & _SLOT] == k and v in items


def test_a_cancel_that_raises_leaves_no_slot_taken_and_the_look_going(tmp_path, monkeypatch):
    # a bug in sending one cancel_sm (the link's request raising): was, the exception left the tick (the rest of
    # the housekeeping with it: session windows not expired that tick), its key among the cancels in flight for good
    # (an IN_FLIGHT slot lost each time), never judged again. Now it is the ad's: logged, judged again at the next
    # DNC change, as a judgement's bug
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = _Unbound(build(data_dir=d, with_model=False))
    monkeypatch.setattr(dnc_cancel.time, "monotonic", lambda: p.now)
    p.links.append(p.link)
    send, boom = p.link.request, [FIRST + 3]

    def request(pdu, on_resp):
        if boom and pdu.message_id == f"M{boom[0]}":
            boom.clear()
            raise RuntimeError("a bug")
        send(pdu, on_resp)
    p.link.request = request
    for i in range(10):
        p.pipeline.lists.add_dnc(FIRST + i, "S")
        _ad(p, FIRST + i, due=DUE + i)
    p.tick()                                # (does not raise)
    assert sorted(p.sent) == [f"M{FIRST + i}" for i in range(10) if i != 3]
    assert f"smsc\x1fM{FIRST + 3}" not in p._cancelling and len(p._cancelling) == 9
    p.pipeline.lists.add_dnc(84900000999, "S")      # the next DNC change: judged again, sent
    p.tick()
    assert f"M{FIRST + 3}" in p.sent


def test_a_full_change_while_the_walk_runs_and_judges_nothing_walks_once():
    # judging paused (IN_FLIGHT cancels wait) while a walk runs: a full change each tick has no ad judged before it
    # to judge again, and walks nothing again (the walk again after a change is for those only)
    from pyroaring import BitMap64

    from engine.smpp_proxy.dnc_look import DncLook
    index, look = _index(200), DncLook()
    look.every(BitMap64(index.dests))
    walked = look.gather_some(index, 10)
    for _ in range(10):
        look.every(BitMap64(index.dests))
        walked += look.gather_some(index, 10)
    while look.gathering:
        walked += look.gather_some(index, 10)
    assert walked == 200 and len(look) == 200
    look.every(BitMap64(index.dests))       # (the walk done: walked again, in the next round)
    walked += look.gather_some(index, 10)
    look.pop()                              # one judged while it walks, then a full change: walked again after
    look.every(BitMap64(index.dests))
    while look.gathering:
        walked += look.gather_some(index, 10)
    assert walked == 600 and len(look) == 200
