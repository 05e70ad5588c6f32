"""Bounded engine state: the flat slot table, counters, recipient history, call durations,
report index. Each structure is checked against a naive exact model on random streams."""
import gc
import random
from pathlib import Path

import pytest

from engine.lists.reports import ReportIndex
from engine.rules.counters import MemoryCounters
from engine.rules.history import CallDurations, RecipientHistory
from engine.rules.slots import SlotTable, key_hash

T0 = 1_790_000_000


def test_slot_table_matches_a_dict_through_growth_expiry_and_deletion():
    rnd = random.Random(7)
    t = SlotTable(2, 1, keep=100)
    model = {}                                  # key -> (row index is not stable; value, last touch)
    now = T0
    for step in range(30_000):
        now += rnd.choice((0, 0, 1))
        k = rnd.randrange(3000)
        h = key_hash(k)
        i = t.slot(h, now)
        prev = model.get(k)
        if prev is not None and prev[1] > now - 100:
            assert t.rows[i * 2] == prev[0], step          # a live row keeps its value
        v = rnd.randrange(1, 1 << 32)
        t.rows[i * 2], t.rows[i * 2 + 1] = v, now
        model[k] = (v, now)
    assert t.rebuilds > 0
    for k, (v, touched) in model.items():
        i = t.find(key_hash(k))
        if touched > now - 100:
            assert i >= 0 and t.rows[i * 2] == v
    # the table holds live rows plus what the sweeper has not reached yet, not every key ever seen
    live = sum(1 for _, touched in model.values() if touched > now - 100)
    assert len(t) <= max(t.cap, 2 * live)


def test_slot_table_is_bounded_by_max_keys_and_keeps_the_most_recent():
    t = SlotTable(1, 0, keep=None, max_keys=1000)
    for n in range(10_000):
        i = t.slot(key_hash(n), T0 + n)
        t.rows[i] = T0 + n
    assert len(t) <= 1000 / 0.6 + 1
    assert t.find(key_hash(9_999)) >= 0 and t.find(key_hash(5)) < 0


def _naive_count(stamps, now, window):
    return sum(1 for s in stamps if s > now - window)


@pytest.mark.parametrize("limit,window", [(5, 60), (3, 60), (6, 86400 * 2)])
def test_count_mode_matches_an_exact_sliding_window(limit, window):
    rnd = random.Random(3)
    c = MemoryCounters()
    hist: dict = {}
    now = T0
    for _ in range(20_000):
        now += rnd.choice((0, 1, 1, 2, 5, window // 3))
        k = ("s", rnd.randrange(200))
        got = c.count("ns", k, now, window, limit)
        want = min(limit, _naive_count(hist.get(k, []), now, window))
        assert got == want
        if rnd.random() < 0.7:
            c.add("ns", k, now, window, limit)
            hist.setdefault(k, []).append(now)


def test_distinct_mode_is_exact_up_to_limit_plus_one():
    rnd = random.Random(5)
    c = MemoryCounters()
    seen: dict = {}                             # key -> {value: last seen}
    now = T0
    limit, window = 10, 300
    fired = 0
    for _ in range(30_000):
        now += rnd.choice((0, 1, 3))
        k = rnd.randrange(30)
        v = rnd.randrange(40)
        got = c.distinct("ns", (k,), v, now, window, limit)
        vals = {x for x, t in seen.get(k, {}).items() if t > now - window} | {v}
        if len(vals) <= limit + 1:
            assert got == len(vals)
        assert (got > limit) == (len(vals) > limit)
        fired += got > limit
        c.add_distinct("ns", (k,), v, now, window, limit)
        seen.setdefault(k, {})[v] = now
    assert 0 < fired < 30_000


def test_a_reload_with_another_limit_keeps_the_stamps():
    """Rows are widened for a higher limit and never narrowed: a cap lowered and raised again (3 -> 2 -> 3) has
    forgotten no message it let through."""
    c = MemoryCounters()
    for s in range(5):
        c.add("ns", ("a",), T0 + s, 3600, 5)
    assert c.count("ns", ("a",), T0 + 10, 3600, 5) == 5
    c.add("ns", ("a",), T0 + 11, 3600, 3)                 # limit now 3: the row of 5 keeps the 5 newest
    assert c.count("ns", ("a",), T0 + 12, 3600, 3) == 5   # over 3 either way
    assert c.spaces["ns"].limit == 5
    c.add("ns", ("a",), T0 + 13, 3600, 8)                 # and up to a 16-bit row of 8: every stamp kept
    assert c.count("ns", ("a",), T0 + 14, 3600, 8) == 6
    assert c.count("ns", ("a",), T0 + 11 + 3600, 3600, 8) == 1


def test_a_cap_lowered_and_raised_again_forgets_no_message():
    c = MemoryCounters()
    for s in range(3):
        c.add("cap", ("o", "r"), T0 + s, 86400, 3)
    assert c.count("cap", ("o", "r"), T0 + 10, 86400, 2) + 1 > 2           # lowered to 2: full
    assert c.count("cap", ("o", "r"), T0 + 20, 86400, 3) + 1 > 3           # back to 3: still full


def test_short_rows_stay_exact_across_a_rebase():
    """16-bit stamp rows (window < 18 h, limit > 4): keys touched across more than 18 hours."""
    rnd = random.Random(9)
    c = MemoryCounters()
    hist: dict = {}
    now = T0
    limit, window = 6, 3000
    for _ in range(20_000):
        now += rnd.choice((1, 60, 600, 2900))
        k = rnd.randrange(20)
        assert c.count("ns", (k,), now, window, limit) == min(limit, _naive_count(hist.get(k, []), now, window))
        c.add("ns", (k,), now, window, limit)
        hist.setdefault(k, []).append(now)
    assert c.spaces["ns"].short


def test_counter_state_is_compact_and_out_of_the_gc():
    gc.collect()
    before = len(gc.get_objects())
    c = MemoryCounters()
    for i in range(50_000):
        c.add("AD_FREQUENCY_CAP", ("o:shop abc", 84_900_000_000 + i), T0 + i // 100, 86400.0, 3)
    per_key = c.memory_bytes() / c.memory_keys()
    assert per_key <= 64, per_key
    gc.collect()
    assert len(gc.get_objects()) - before < 100        # a handful of flat arrays, not objects per key


def test_recipient_history_share_and_window():
    h = RecipientHistory()
    w = 3600.0
    # a sender writing to 3 regular contacts: after the first round nothing is new
    for r in range(30):
        h.add(1, 100 + r % 3, T0 + r * 10, w)
    n, share = h.share(1, 101, T0 + 400, w)
    assert n == 31 and share == pytest.approx(3 / 31)
    # a sender writing to fresh numbers: almost everything is new (the filter errs towards "seen")
    for r in range(40):
        h.add(2, 5000 + r, T0 + r, w)
    n, share = h.share(2, 9999, T0 + 60, w)
    assert n == 41 and share > 0.9
    # two hours later the window is empty, the contacts are still remembered
    n, share = h.share(1, 101, T0 + 400 + 7200, w)
    assert (n, share) == (1, 0.0)
    for s in range(20_000):
        h.add(10_000 + s, 7, T0 + s // 10, w)
    assert h.memory_bytes() / h.memory_keys() <= 200


def test_call_durations_keep_the_last_calls():
    c = CallDurations()
    for k in range(40):
        c.add(7, T0 + k * 60, 3.0 if k % 4 else 120.0)
    assert len(c.recent(7)) == 32
    n, share = c.share_short(7, T0 + 40 * 60, 600, 10)    # calls ended in the last 10 min
    assert n == 9 and share == pytest.approx(7 / 9)
    assert c.share_short(8, T0, 600, 10) == (0, 0.0)


def test_report_index_counts_distinct_reporters_in_the_window_and_prunes():
    idx = ReportIndex(retain_days=30)
    day = 86400
    for k in range(100):
        idx.add(84909888777, f"r{k % 5}", T0 + k * 60)
    assert idx.distinct_reporters(84909888777, T0 + 100 * 60, 7 * day) == 5
    assert idx.distinct_reporters(84909888777, T0 + 8 * day, 7 * day) == 0
    assert idx.distinct_reporters(None, T0, day) == 0
    for k in range(1000):
        idx.add(84_000_000_000 + k, f"x{k}", T0 + 40 * day + k)   # distinct reporters: one is capped a day
    assert 84909888777 not in idx.by_reported          # older than 30 days: pruned
    assert len(idx) == 1000


_ROOT = Path(__file__).resolve().parent.parent


def test_state_key_hashes_are_stable_across_processes():
    """Snapshots, journals and a shared store need the same row for the same key in every process."""
    import subprocess
    import sys
    code = ("from engine.rules.slots import key_hash, value_fp;"
            "print(key_hash(('SHOPABC', 84912345678)), key_hash(84912345678), value_fp('+84901234567'), "
            "key_hash((None, b'x', 'đ')))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, cwd=str(_ROOT)).stdout
            for seed in ("1", "2", "random")}
    assert len(outs) == 1 and outs.pop().strip()


def test_raising_a_limit_to_a_short_row_of_5_keeps_the_stamps():
    """A short (16-bit) row for a limit of 5 is 5 words wide, as a plain row of 5 is: the stamps carried over
    were written as plain ones into it (counts wrong both ways)."""
    c = MemoryCounters()
    for s in range(3):
        c.add("f", ("a",), T0 + 60 * s, 300, 3)
    assert c.count("f", ("a",), T0 + 150, 300, 5) == 3
    assert c.spaces["f"].short and c.spaces["f"].limit == 5
    assert c.count("f", ("a",), T0 + 60 * 2 + 300, 300, 5) == 0


def test_raising_the_limit_of_a_distinct_space_of_one_value_keys():
    """Every key seen with one value only (no full row yet): a reload raising the limit used to crash every read."""
    c = MemoryCounters()
    c.add_distinct("d", ("t",), "s1", T0, 3600, 10)
    assert c.distinct("d", ("t",), "s2", T0 + 1, 3600, 11) == 2
    c.add_distinct("d", ("t",), "s2", T0 + 2, 3600, 11)
    assert c.distinct("d", ("t",), "s3", T0 + 3, 3600, 11) == 3


def test_a_lowered_limit_narrows_the_rows_after_one_window():
    """Rows stay wide for one window after a limit is lowered (3 -> 2 -> 3 forgets nothing), then narrow: a
    mistyped limit of 3,000 does not keep its memory for ever."""
    c = MemoryCounters()
    c.add("v", ("a",), T0, 3600, 3000)
    assert c.spaces["v"].limit == 3000
    c.add("v", ("a",), T0 + 10, 3600, 30)                 # lowered: kept wide for now
    assert c.spaces["v"].limit == 3000 and c.count("v", ("a",), T0 + 20, 3600, 30) == 2
    c.count("v", ("a",), T0 + 30, 3600, 3000)             # back to its own limit: the lowering is forgotten
    c.count("v", ("a",), T0 + 3000, 3600, 30)             # lowered again: a window from now
    assert c.spaces["v"].limit == 3000
    assert c.count("v", ("a",), T0 + 3000 + 3599, 3600, 30) == 0 and c.spaces["v"].limit == 3000
    c.add("v", ("a",), T0 + 3000 + 3600, 3600, 30)        # a window later: narrowed to 30
    assert c.spaces["v"].limit == 30 and c.count("v", ("a",), T0 + 3000 + 3601, 3600, 30) == 1
    assert c.memory_bytes() < 100_000


def test_report_index_bytes_per_number_at_the_bound_are_the_documented_ones():
    # The soak probe (h_soak) measured ~280 B a number once 3M reports of distinct numbers had gone
    # through an index of 1M, where reports.py said ~200 B (measured when the bound was first reached,
    # before the resize past it doubled the dict's table). 125,000 (1M / 8) gives the dict the same fill;
    # smaller bounds measure noisier (309-396 B at 62,500).
    import tracemalloc
    from engine.lists.reports import BYTES_PER_NUMBER, REPORTER_DAY_SLOTS
    bound = 125_000
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        idx = ReportIndex(max_numbers=bound)
        for i in range(4 * bound):
            idx.add(84900000000 + i, "8498%07d" % i, 1.8e9 + i * 0.01)
        assert len(idx) == bound
        got = (tracemalloc.get_traced_memory()[0] - base - REPORTER_DAY_SLOTS) / bound
    finally:
        tracemalloc.stop()
    assert 0.8 * BYTES_PER_NUMBER <= got <= BYTES_PER_NUMBER, got
