"""The compiled counts at delivery (engine/rules/_slotat.h in _slotsfast) and the Python reference
(counters_at.py) take the same steps: random operation sequences of count_at / add_at, run once with each, give
the same answer to every count and leave the same rows, through stamps scheduled ahead, `without` (a replacement's
left-out second, present or not), rows with no room, windows None and fractional, a limit lowered and raised by
reloads, rows laid out again from a count at submission, expiry, eviction at max_keys and growth."""
import random

import pytest

from engine.rules import slots
from engine.rules.counters import MemoryCounters

pytestmark = pytest.mark.skipif(slots._FAST is None, reason="engine.rules._slotsfast is not built")

T0 = 1_790_000_000
DAY = 86400


def ops(seed: int, n: int) -> list:
    rnd = random.Random(seed)
    t, out, seen = float(T0), [], []
    limits = {"CAP": 3, "SMALL": 1}
    for _ in range(n):
        t += rnd.choice((0, 0, 0.5, 1, 7, 60, 600, 3600, 5 * 3600))
        r = rnd.random()
        if r < 0.05:                            # a reload: the cap's limit lowered or raised
            limits["CAP"] = rnd.choice((1, 2, 3, 5, 40))
        ns = rnd.choice(("CAP", "CAP", "CAP", "SMALL", "NOWIN", "FRAC", "SUB"))
        key = (f"o:{rnd.randrange(2)}", rnd.randrange(3)) if rnd.random() < 0.7 else rnd.randrange(60)
        when = t if rnd.random() < 0.6 else t + rnd.randrange(1, 3 * DAY)
        if rnd.random() < 0.3:
            when = float(int(when)) + rnd.choice((0.0, 0.25, 0.999))
        window, limit = {"CAP": (DAY, limits["CAP"]), "SMALL": (3600, 1), "NOWIN": (None, 2),
                         "FRAC": (1800.5, 2), "SUB": (DAY, 3)}[ns]
        if rnd.random() < 0.25 and seen:
            without = rnd.choice(seen)          # a stamp counted before (or already gone)
        else:
            without = rnd.choice((0, 0, int(when)))
        a = (ns, key, when, t, window, limit, without)
        if ns == "SUB" and rnd.random() < 0.2:
            out.append(("add", (ns, key, t, window, limit)))    # counted at submission: laid out again
        out.append(("count_at", a))
        if rnd.random() < 0.7:
            out.append(("add_at", a))
            seen.append(int(when))
    return out


def run(seq, fast: bool, max_keys: int = 120) -> tuple:
    answers = []
    with slots.use_fast(fast):
        c = MemoryCounters(max_keys=max_keys)
        for name, a in seq:
            answers.append(getattr(c, name)(*a))
        rows = {ns: (sp.limit, sp.width, bytes(sp.table.rows), bytes(sp.table.hk), bytes(sp.table.ix),
                     sp.table.used, sp.table.top, sp.table.free, sp.table.evicted)
                for ns, sp in c.spaces.items()}
    return answers, rows


@pytest.mark.parametrize("seed", range(8))
def test_count_at_and_add_at_compiled_match_python(seed):
    seq = ops(seed, 4000)
    fast, pure = run(seq, True), run(seq, False)
    assert fast[0] == pure[0]
    assert fast[1] == pure[1]
    counts = [x for x in fast[0] if x is not None]
    assert len(set(counts)) > 3                 # counts of every kind were asked, not only 0


def test_full_rows_and_without_are_read_alike():
    """A row with no room (every stamp in the window) answers the limit, a lowered limit the rows' own; `without`
    leaves out one stamp of its second, and a second the row does not hold leaves out nothing."""
    for fast in (True, False):
        with slots.use_fast(fast):
            c = MemoryCounters()
            for k in range(6):                          # 6 = 2 * limit stamps ahead: the row is full
                c.add_at("ns", 1, T0 + 3600 * (k + 1), T0, DAY, 3)
            assert c.count_at("ns", 1, T0, T0, DAY, 3) == 3
            assert c.count_at("ns", 1, T0, T0, DAY, 2) == 3       # a lowered limit: the rows' own, 3
            c.add_at("ns", 2, T0 + 10, T0, DAY, 3)
            c.add_at("ns", 2, T0 + 10, T0, DAY, 3)
            assert c.count_at("ns", 2, T0 + 10, T0, DAY, 3) == 2
            assert c.count_at("ns", 2, T0 + 10, T0, DAY, 3, without=T0 + 10) == 1
            assert c.count_at("ns", 2, T0 + 10, T0, DAY, 3, without=T0 + 11) == 2
            assert c.count_at("ns", 3, T0, T0, DAY, 3) == 0       # no row


def test_a_stamp_past_32_bits_is_refused_alike():
    rows = []
    for fast in (True, False):
        with slots.use_fast(fast):
            c = MemoryCounters()
            c.add_at("ns", 1, T0 + 5, T0, DAY, 3)
            with pytest.raises(ValueError, match="invalid value"):
                c.add_at("ns", 1, 1 << 32, T0, DAY, 3)
            rows.append(bytes(c.spaces["ns"].table.rows))
    assert rows[0] == rows[1]
