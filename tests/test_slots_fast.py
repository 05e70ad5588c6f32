"""The compiled table paths (engine/rules/_slotsfast.c) and the pure-Python ones take the same
steps: the same operation sequences, run once with each, give the same answer to every read and
byte-identical dumps, through growth, expiry, eviction at max_keys, a longer index tail and a
snapshot loaded in the middle."""
import random

import pytest

from engine.rules import slots
from engine.rules.counters import MemoryCounters
from engine.rules.history import RecipientHistory
from engine.rules.slots import SlotTable, key_hash
from engine.state.embedded import dump_state, load_state

pytestmark = pytest.mark.skipif(slots._FAST is None, reason="engine.rules._slotsfast is not built")

T0 = 1_790_000_000.0


def ops(seed: int, n: int) -> list:
    """A mix of every counter mode and the recipient history, keys recurring and new, time
    moving in small and large steps (so rows expire), some keys that are not ints."""
    rnd = random.Random(seed)
    t, out = T0, []
    for _ in range(n):
        t += rnd.choice((0, 0, 0.25, 1, 3, 30, 200, 700))
        s = rnd.randrange(400)
        r = rnd.randrange(30) if rnd.random() < 0.5 else rnd.randrange(10 ** 6)
        k = rnd.random()
        if k < 0.2:
            a = ("VOL|sender|1h", s, t, 3600.0, 30)                     # a short count row
            out += [("count", a), ("add", a)]
        elif k < 0.35:
            a = ("FLOOD|s+r|5m", (s, r % 7), t, 300.0, 3)              # plain stamps, tuple keys
            out += [("count", a), ("add", a)]
        elif k < 0.45:
            a = ("CAP|o+r|24h", (f"o:{s % 9}", r), t, 86400.0, 3)      # str in the key, long keep
            out += [("count", a), ("add", a)]
        elif k < 0.55:
            a = ("ONCE|x|forever", rnd.randrange(300), t, None, 1)     # no expiry
            out += [("count", a), ("add", a)]
        elif k < 0.75:
            a = ("TPL|template|1h|sender", rnd.randrange(60), s if rnd.random() < 0.7 else f"S{s}",
                 t, 3600.0, 10)
            out += [("distinct", a), ("add_distinct", a)]
        else:
            a = (s, r, t, 3600.0)
            out += [("share", a), ("hadd", a)]
    return out


def run(seq, fast: bool, snapshot_at: int | None = None, max_keys: int = 1500, senders: int = 300):
    answers = []
    with slots.use_fast(fast):
        c, h = MemoryCounters(max_keys=max_keys), RecipientHistory(max_senders=senders)
        for n, (name, a) in enumerate(seq):
            if n == snapshot_at:                                  # a snapshot taken and loaded
                from engine.rules.history import CallDurations
                c, h, _ = load_state(dump_state(c, h, CallDurations()))
            f = {"count": c.count, "add": c.add, "distinct": c.distinct, "add_distinct": c.add_distinct,
                 "share": h.share, "hadd": h.add}[name]
            answers.append(f(*a))
        from engine.rules.history import CallDurations
        return answers, dump_state(c, h, CallDurations())


@pytest.mark.parametrize("seed,snapshot_at,max_keys,senders", [
    (1, None, 2_000_000, 500_000),      # growth and expiry, no bound reached
    (2, 20_000, 1500, 300),             # eviction at max_keys in every table, a snapshot midway
    (3, 7_001, 400, 100),               # tight bounds
])
def test_compiled_and_python_tables_agree(seed, snapshot_at, max_keys, senders):
    seq = ops(seed, 30_000)
    fast = run(seq, True, snapshot_at, max_keys, senders)
    slow = run(seq, False, snapshot_at, max_keys, senders)
    for n, (x, y) in enumerate(zip(fast[0], slow[0])):
        assert x == y, (n, seq[n], x, y)
    assert fast[1] == slow[1]
    assert any(v and v > 1 for v in fast[0] if isinstance(v, int))      # the limits were reached


def test_find_and_slot_agree_through_growth_and_eviction():
    """The table's own calls, with keys homing at the very end (a longer tail) and a growth under
    way when a snapshot is loaded."""
    dumps = []
    for fast in (True, False):
        with slots.use_fast(fast):
            t = SlotTable(3, 2, keep=5000, max_keys=3000)
            rnd2 = random.Random(8)
            now = int(T0)
            res = []
            for step in range(40_000):
                now += rnd2.choice((0, 0, 1, 2))
                k = rnd2.randrange(6000)
                h = key_hash(k) if k % 50 else (0xFFFFFFFF << 32) | (k + 1)     # some home in the last slot
                if rnd2.random() < 0.3:
                    res.append(t.find(h))
                    continue
                i = t.slot(h, now)
                t.rows[i * 3], t.rows[i * 3 + 1], t.rows[i * 3 + 2] = k, step, now
                res.append(i)
                if step == 25_000:
                    t = SlotTable.load(t.dump())
            dumps.append((res, t.dump(), t.memory_bytes()))
            assert t.rebuilds >= 3 and len(t) == 3000          # grown, and at the bound
    assert dumps[0] == dumps[1]


def test_compiled_key_hash_is_keyhash_key_hash():
    # counters_at.py hashes an ad's advertiser-recipient key with the compiled twin when built: a row of a count at
    # delivery written by one is found by the other (snapshots, journals, a shared store read back elsewhere)
    from engine.rules import keyhash
    keys = [("o:shop abc", 84912345678), ("o:" + "x" * 300, 0), ("o:chữ", 84912000001), ("a", "b", 3), (1, 2),
            0, 1, -1, 2 ** 64 + 5, "SHOPABC", b"raw", None, True, (), ("t",) * 9, (("nested", 1), 2), 7.0]
    keyhash._STR_HASHES.clear()             # strings not in the digest cache yet, then cached
    for k in keys + keys:
        assert slots._FAST.key_hash(k) == key_hash(k), k
    with pytest.raises(TypeError):
        slots._FAST.key_hash(1.5)


def test_call_durations_add_compiled_and_python_agree():
    """CallDurations.add through the compiled cadd and through the Python path: the same rows (dumped byte for byte),
    the same answers to share_short and recent, and the same error for what the Python path refuses, on callers
    recurring and new (ints, names, tuples) past max_callers, durations rounded half to even at the millisecond
    (0.0125 s), negative, past 2^32 ms, and end seconds from 0 to 2^32 as floats and ints; a NaN or infinite duration
    and an end second a row cannot hold raise as they do in Python."""
    from engine.rules.history import CallDurations
    rnd = random.Random(4916)
    seq, t = [], T0
    for _ in range(6000):
        t += rnd.choice((0, 0, 0.5, 1, 7, 90, 4000))
        caller = rnd.choice((rnd.randrange(300), f"N{rnd.randrange(40)}", (rnd.randrange(5), "x")))
        ts = rnd.choice((t, t, int(t), float(rnd.randrange(2 ** 32)), 0.0, 4294967295.5, True))
        dur = rnd.choice((rnd.uniform(0, 600), rnd.randrange(0, 60000) / 1000 + 0.0005, 0.0125, 0.0135, -3.0,
                          5e6, 4294967.2955, 4294967.2954, float(rnd.randrange(100)), 2.5e-4))
        seq.append((caller, ts, dur))
    seq += [(1, T0, float("nan")), (1, T0, float("inf")), (2, -1.0, 1.0), (2, 2.0 ** 32, 1.0), (3, -5, 1.0),
            (3, 2 ** 40, 1.0), (4, T0, 3), (5, float("nan"), 1.0)]

    def run(fast):
        out = []
        with slots.use_fast(fast):
            c = CallDurations(max_callers=150)
            for caller, ts, dur in seq:
                try:
                    out.append(c.add(caller, ts, dur))
                except Exception as e:                  # (the Python path's own errors, kept as they were)
                    out.append(type(e))
                out.append(c.share_short(caller, T0 + 3600, 7200.0, 10.0))
            out.append([c.recent(k) for k in range(300)])
            from engine.rules.counters import MemoryCounters
            return out, dump_state(MemoryCounters(), RecipientHistory(), c)
    fast, slow = run(True), run(False)
    for n, (x, y) in enumerate(zip(fast[0], slow[0])):
        assert x == y, (n, x, y)
    assert fast[1] == slow[1]
    assert ValueError in fast[0] and OverflowError in fast[0]
