"""Where the address space for a table's rows cannot be reserved (strict overcommit, a `ulimit -v`, systemd
LimitAS=), flatmem.room falls back to arrays grown by copying. A counter whose row is wider than that
fallback's spare words (a count cap of 2,000 a day: 8 KB rows) must still grow its rows, in the compiled
code too (which wrote past the rows and crashed the process)."""
import pytest

from engine.rules import flatmem, slots
from engine.rules.counters import MemoryCounters


@pytest.mark.parametrize("fast", [False, True])
def test_wide_rows_grow_when_the_reservation_is_refused(monkeypatch, fast):
    if fast and slots._load_fast() is None:
        pytest.skip("compiled tables not built")
    real = flatmem.copy

    def refusing(fmt, data, n=None):
        if n is not None and n * (8 if fmt == "Q" else 4) > (64 << 20):
            raise OSError(12, "Cannot allocate memory (test: strict overcommit)")
        return real(fmt, data, n)
    monkeypatch.setattr(flatmem, "copy", refusing)
    with slots.use_fast(fast):
        c = MemoryCounters()
        ns, t0 = "SENDER_DAILY_VOLUME|sender|24h|None", 1_700_000_000
        for k in range(100):
            for j in range(3):
                c.add(ns, ("84912%06d" % k,), t0 + j, 86400, 2000)
        assert [c.count(ns, ("84912%06d" % k,), t0 + 10, 86400, 2000) for k in (0, 50, 99)] == [3, 3, 3]
        assert c.count(ns, ("nobody",), t0 + 10, 86400, 2000) == 0
