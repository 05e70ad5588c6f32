"""Giving an ad's count back (Pipeline.refund) in the counter stores themselves: a remove takes back
a stamp of exactly its second; a refund is journalled in the embedded store and replayed after a kill -9, even
after a re-layout; a cap lowered and raised again by a reload has forgotten nothing; a count out of its window is
not looked for, and a refusal in the window's last second gives nothing back; only drop rules' caps are given
back. The end-to-end refusals are in test_smpp_refund_smsc_answers.py."""
import asyncio
import os

import pytest

from engine.rules.counters import MemoryCounters
from engine.rules import slots
from tests.test_smpp_refund_smsc_answers import NOON, TEXT, _rules_with_cap, pipe  # noqa: F401,F811  (pipe: fixture)


# ------------------------------------------------------------------ the counter stores

@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("limit,window", [(3, 86400), (30, 3600), (1, None)])       # long, short (16-bit), forever
def test_remove_takes_back_a_stamp_of_exactly_its_second(fast, limit, window):
    if fast and slots._load_fast() is None:
        pytest.skip("compiled tables not built")
    with slots.use_fast(fast):
        c = MemoryCounters()
        ns, key, t0 = "AD_FREQUENCY_CAP|owner+recipient|24h|None", (11, 22), 1_700_000_000
        k = min(limit, 3)
        for i in range(k):                                          # t0, t0 + 10, t0 + 20
            c.add(ns, key, t0 + 10 * i, window, limit)
        assert c.count(ns, key, t0 + 25, window, limit) == k
        assert c.remove(ns, key, t0 + 5, window, limit) is False   # no stamp of that second: never another's
        assert c.remove(ns, key, t0 + 10 * (k - 1), window, limit)
        assert c.count(ns, key, t0 + 25, window, limit) == k - 1
        if window is not None and k == 3:
            assert c.remove(ns, key, t0 + 10, window, limit)       # the middle one: t0 stays, oldest first
            assert c.count(ns, key, t0 + window - 1, window, limit) == 1
            assert c.count(ns, key, t0 + window, window, limit) == 0
        assert c.remove(ns, (99,), t0, window, limit) is False      # unknown key
        while c.remove(ns, key, t0, window, limit):
            pass
        assert c.count(ns, key, t0 + 25, window, limit) == 0
        c.add(ns, key, t0 + 30, window, limit)                     # the row is usable after
        assert c.count(ns, key, t0 + 31, window, limit) == 1


def _live_and_replayed(tmp_path, after_adds):
    """Three stamps of a cap of 3, then `after_adds(counters, ns, key, t0, w)`; (live count, count replayed
    from the journal after a kill -9) at limit `after_adds` returns."""
    from engine.state.embedded import EmbeddedStore
    ns, key, t0, w = "AD_FREQUENCY_CAP|owner+recipient|24h|None", ("shop abc", 84912777008), 1_700_000_000, 86400

    async def main():
        s = EmbeddedStore(tmp_path)
        for i in range(3):
            s.counters.add(ns, key, t0 + i, w, 3)
        limit = after_adds(s.counters, ns, key, t0, w)
        live = s.counters.count(ns, key, t0 + 10, w, limit)
        await s.flush()
        os.close(s._lockfd)                                         # kill -9: replayed from the journal
        return live, EmbeddedStore(tmp_path).counters.count(ns, key, t0 + 10, w, limit)
    return asyncio.run(main())


def test_a_refund_is_journalled_and_replayed(tmp_path):
    def refund(c, ns, key, t0, w):
        c.remove(ns, key, t0 + 1, w, 3)
        return 3
    assert _live_and_replayed(tmp_path, refund) == (2, 2)


def test_a_refund_after_a_relayout_replays_as_it_ran(tmp_path):
    def reload_then_refund(c, ns, key, t0, w):
        c.count(ns, key, t0 + 5, w, 4)          # a reload raised the limit: the read lays the rows out again, wider
        c.remove(ns, key, t0, w, 3)             # a message judged before it refused
        return 4
    assert _live_and_replayed(tmp_path, reload_then_refund) == (2, 2)


def test_a_cap_lowered_and_raised_again_has_forgotten_nothing(pipe, tmp_path):
    from engine.verdict import Message
    m = lambda: Message("SHOPABC", "84912777026", TEXT.decode(), NOON, "esme1", "mt")      # noqa: E731
    for _ in range(3):
        pipe.judge(m())
    assert pipe.reload_rules(_rules_with_cap(tmp_path, 2)) == []
    assert "AD_FREQUENCY_CAP" in pipe.judge(m()).symbols
    assert pipe.reload_rules(_rules_with_cap(tmp_path, 3)) == []
    assert "AD_FREQUENCY_CAP" in pipe.judge(m()).symbols, "a 4th ad after the cap went 3 -> 2 -> 3"


def test_a_reload_lowering_the_cap_keeps_every_count(pipe, tmp_path):
    """A, B, C sent under a cap of 3; the cap is lowered to 2 (the rows keep all three stamps) and A is refused
    after all: A's own stamp goes, B and C still fill the cap of 2."""
    from engine.verdict import Message
    d = _rules_with_cap(tmp_path, 2)
    m = lambda: Message("SHOPABC", "84912777020", TEXT.decode(), NOON, "esme1", "mt")      # noqa: E731
    a = pipe.judge(m())
    pipe.judge(m())
    pipe.judge(m())
    assert pipe.reload_rules(d) == []
    assert "AD_FREQUENCY_CAP" in pipe.judge(m()).symbols
    pipe.refund(a, NOON.timestamp())
    assert "AD_FREQUENCY_CAP" in pipe.judge(m()).symbols


def test_a_count_out_of_its_window_is_not_looked_for(pipe):
    """A refusal that comes after the message's 24 h (a very late answer) gives nothing back: its stamp has
    left the window, and the oldest one after its second is another message's."""
    from datetime import timedelta
    from engine.verdict import Message
    m = lambda t: Message("SHOPABC", "84912777021", TEXT.decode(), t, "esme1", "mt")     # noqa: E731
    a = pipe.judge(m(NOON))
    later = NOON + timedelta(hours=25)
    for _ in range(3):
        pipe.judge(m(later))
    pipe.refund(a, later.timestamp())
    assert "AD_FREQUENCY_CAP" in pipe.judge(m(later), commit=False).symbols


def test_a_refusal_in_the_windows_last_second_gives_nothing_back(pipe):
    """A judged at 10:00:00.9 (stamp 10:00:00); 24 h later at .02 its stamp has left the window (counters count in
    whole seconds) and D's commit pushed it out of the row; A's refusal at .03 must not take B's stamp."""
    from datetime import timedelta
    from engine.verdict import Message
    m = lambda t: Message("SHOPABC", "84912777025", TEXT.decode(), t, "esme1", "mt")      # noqa: E731
    t0 = NOON + timedelta(seconds=0.9)
    a = pipe.judge(m(t0))
    pipe.judge(m(t0 + timedelta(seconds=1)))
    pipe.judge(m(t0 + timedelta(seconds=2)))
    edge = NOON + timedelta(hours=24, seconds=0.02)
    assert "AD_FREQUENCY_CAP" not in pipe.judge(m(edge)).symbols       # D: A is out of the window
    pipe.refund(a, (edge + timedelta(seconds=0.01)).timestamp())
    assert "AD_FREQUENCY_CAP" in pipe.judge(m(edge + timedelta(seconds=0.02)), commit=False).symbols


def test_only_drop_rules_caps_are_given_back(tmp_path):
    """A tag rule keyed by owner keeps counting past its limit (its row can push a refused message's stamp
    out): not given back."""
    from engine.rules.loader import load_rules
    d = tmp_path / "rules"
    d.mkdir()
    (d / "r.toml").write_text("".join(f"""
[[rule]]
symbol = "OWNER_{action.upper()}"
action = "{action}"
score = 1.0
applies_to = ["sms-mt"]
[rule.when]
counter = {{ key = ["owner", "recipient"], window = "1h", limit = 2 }}
""" for action in ("tag", "drop")))
    rs = load_rules(d)
    got = {r.symbol: [st.refundable for st in r.stateful] for r in rs.rules}
    assert got == {"OWNER_TAG": [False], "OWNER_DROP": [True]}
