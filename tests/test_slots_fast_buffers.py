"""The compiled table calls read a table's arrays in place when they are memoryviews (flatmem.py's), and through the
buffer protocol otherwise (engine/rules/_slotobj.h get_table_buf): a table whose arrays are array.array answers and
changes as one of memoryviews does, and a view the buffer protocol refuses (released, read-only) is refused alike."""
from array import array

import pytest

from engine.rules import slots
from engine.rules.counters import MemoryCounters

pytestmark = pytest.mark.skipif(slots._FAST is None, reason="engine.rules._slotsfast is not built")

T0 = 1_790_000_000.0


def _fill(c: MemoryCounters, as_arrays: bool) -> list:
    out = []
    for k in range(300):
        t = T0 + k * 7
        for ns, key, window, limit in (("CAP", ("o:x", k % 40), 86400.0, 3), ("VOL", k % 25, 3600.0, 30)):
            out.append(c.count(ns, key, t, window, limit))
            c.add(ns, key, t, window, limit)
            if as_arrays and k == 0:            # the arrays swapped for array.array copies once made
                tb = c.spaces[ns].table
                tb.ix, tb.hk, tb.rows = array("I", tb.ix), array("Q", tb.hk), array("I", tb.rows)
        out.append(c.count_at("AD", ("o:y", k % 9), t + (k % 5) * 3600, t, 86400.0, 3))
        c.add_at("AD", ("o:y", k % 9), t + (k % 5) * 3600, t, 86400.0, 3)
    return out


def test_tables_of_arrays_and_of_memoryviews_agree():
    views, arrays = MemoryCounters(), MemoryCounters()
    a, b = _fill(views, False), _fill(arrays, True)
    assert a == b and max(a) > 1
    assert isinstance(arrays.spaces["CAP"].table.rows, array)
    for ns in ("CAP", "VOL"):
        assert bytes(views.spaces[ns].table.rows) == bytes(arrays.spaces[ns].table.rows)
    with slots.use_fast(False):
        assert _fill(MemoryCounters(), False) == a


def test_a_view_the_buffer_protocol_refuses_is_refused():
    c = MemoryCounters()
    c.add("CAP", 1, T0, 86400.0, 3)
    tb = c.spaces["CAP"].table
    rows = tb.rows
    tb.rows = memoryview(bytes(rows)).cast("I")             # read-only
    with pytest.raises(BufferError):
        c.add("CAP", 1, T0, 86400.0, 3)
    dead = memoryview(bytearray(bytes(rows))).cast("I")
    dead.release()
    tb.rows = dead
    with pytest.raises(ValueError, match="released"):
        c.count("CAP", 1, T0, 86400.0, 3)
    tb.rows = rows
    assert c.count("CAP", 1, T0, 86400.0, 3) == 1
