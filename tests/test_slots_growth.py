"""The flat slot table grows without a stop-the-world rebuild: the previous arrays are moved
a few clusters per insert, every read sees one table, and a snapshot taken mid-growth loads."""
import random

from engine.rules.slots import SlotTable, key_hash

T0 = 1_790_000_000
KEEP = 5000


def test_growth_is_spread_over_inserts_and_matches_a_dict():
    rnd = random.Random(11)
    t = SlotTable(3, 2, keep=KEEP)
    model = {}
    now, growing, loaded = T0, 0, False
    for step in range(60_000):
        now += rnd.choice((0, 0, 0, 1))
        k = rnd.randrange(40_000) if step > 20_000 else step      # first a growing key set, then a mix
        h = key_hash(k)
        if rnd.random() < 0.3:                                    # reads during a growth see every live row
            i = t.find(h)
            prev = model.get(k)
            if prev is not None and prev[1] > now - KEEP:
                assert i >= 0 and t.rows[i * 3] == prev[0], step
            continue
        i = t.slot(h, now)
        prev = model.get(k)
        if prev is not None and prev[1] > now - KEEP:
            assert t.rows[i * 3] == prev[0], step
        elif prev is None:
            assert t.rows[i * 3] == 0, step
        v = rnd.randrange(1, 1 << 32)
        t.rows[i * 3], t.rows[i * 3 + 2] = v, now
        model[k] = (v, now)
        growing += t._old is not None
        if t._old is not None and not loaded and len(t) > 5000:   # a snapshot in the middle of a growth
            t = SlotTable.load(t.dump())
            assert t._old is not None
            loaded = True
    assert loaded and t.rebuilds >= 5
    assert growing > 1000          # the moves spanned many inserts, not one
    for k, (v, touched) in model.items():
        if touched > now - KEEP:
            i = t.find(key_hash(k))
            assert i >= 0 and t.rows[i * 3] == v


def test_a_cluster_at_the_end_lengthens_the_tail():
    t = SlotTable(1, 0, keep=None)
    hs = [(0xFFFFFFFF << 32) | (n + 1) for n in range(300)]       # all home in the last slot
    for n, h in enumerate(hs):
        i = t.slot(h, T0)              # (rows may be a new array after the call)
        t.rows[i] = n + 1
    for n, h in enumerate(hs):
        assert t.rows[t.find(h)] == n + 1
    assert t.ix[len(t.ix) - 1] == 0


def test_max_keys_evicts_the_least_recently_touched_of_a_sample():
    t = SlotTable(1, 0, keep=None, max_keys=2000)
    for n in range(20_000):
        i = t.slot(key_hash(n), T0 + n)
        t.rows[i] = T0 + n
        assert len(t) <= 2000
    recent = sum(t.find(key_hash(n)) >= 0 for n in range(19_900, 20_000))
    old = sum(t.find(key_hash(n)) >= 0 for n in range(0, 10_000))
    assert recent >= 95 and old == 0


def test_a_dump_with_rows_in_the_slots_loads():
    """Snapshots written before the index (rows kept in the slots, tests/vectors/
    slots_rows_in_slots.msgpack: one mid-growth, one settled) load with every live key's row."""
    from pathlib import Path

    import msgpack
    vec = msgpack.unpackb((Path(__file__).parent / "vectors" / "slots_rows_in_slots.msgpack").read_bytes())
    for name in ("growing", "settled"):
        dump, model, now = vec[name]
        assert (dump[10] is not None) == (name == "growing")
        t = SlotTable.load(dump)
        for k, v, touched in model:
            i = t.find(key_hash(k))
            if touched > now - KEEP:
                assert i >= 0 and list(t.rows[i * 3:i * 3 + 3]) == [v, k, touched], (name, k)
        # and it goes on working: new keys, growth, a dump in the new format
        for n in range(3000):
            i = t.slot(key_hash(10_000 + n), now + n)
            t.rows[i * 3], t.rows[i * 3 + 1], t.rows[i * 3 + 2] = n + 1, 10_000 + n, now + n
        t2 = SlotTable.load(t.dump())
        for n in range(3000):
            i = t2.find(key_hash(10_000 + n))
            assert i >= 0 and t2.rows[i * 3] == n + 1
        assert t2.memory_bytes() == t.memory_bytes()


def test_rows_never_move_and_freed_rows_are_reused():
    """A key's row number is stable while it lives (growth moves index entries only), and the
    rows of expired keys are handed out again: `top` stays near the live count."""
    t = SlotTable(2, 1, keep=100)
    seen = {}
    for n in range(20_000):
        now = T0 + n // 10                    # ~10 keys a second, each lives 100 s: ~1000 live
        i = t.slot(key_hash(n), now)
        t.rows[i * 2], t.rows[i * 2 + 1] = n, now
        seen[n] = i
        if n >= 5:                            # a few recent keys read back at the same row
            for m in range(n - 5, n + 1):
                assert t.find(key_hash(m)) == seen[m]
    assert t.rebuilds >= 3
    assert t.top < 2 * 1100                   # rows of expired keys were reused
    assert t.memory_bytes() == len(t.ix) * 4 + t.top * (8 + 8) + (
        (t._old.cursor + 1) * 4 if t._old is not None else 0)


def test_rows_grow_by_copying_where_address_space_is_refused(monkeypatch):
    """Under strict overcommit the rows' up-front reservation fails: the table starts small and
    its row arrays grow by copying, every row kept."""
    from engine.rules import flatmem
    real = flatmem.copy

    def copy(fmt, data, n=None):
        if n is not None and n >= 2_000_000:
            raise OSError(12, "Cannot allocate memory")
        return real(fmt, data, n)
    monkeypatch.setattr(flatmem, "copy", copy)
    t = SlotTable(3, 2, keep=None)
    assert len(t.hk) < 10_000
    for n in range(50_000):
        i = t.slot(key_hash(n), T0)
        t.rows[i * 3] = n + 1
    assert len(t.hk) >= 50_000
    for n in range(50_000):
        assert t.rows[t.find(key_hash(n)) * 3] == n + 1
