"""engine/_idrecord.h's spool_record writes, byte for byte, what SpoolJournal.noted's Python form (the reference and
the fallback, `_noted`: the record packed, then Spool.append) writes into the id log's crash spool: the same ring
bytes, the same `end` and header word, the same refusals when the ring has no room beside the unwritten bytes (then
nothing written, `unspooled` counted), records split at the ring's end; and None, the Python form writing it, only
outside its common case (an id not ASCII). Random record sequences over a small ring, with the writer thread's
`written` moving between them; and spool_records reads the records back."""
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import crashspool
from engine.smpp_proxy import idspool
from engine.smpp_proxy.idspool import SpoolJournal, spool_records

C = pytest.importorskip("engine._stamps").spool_record
MID = st.one_of(st.text(st.characters(max_codepoint=0x7f), max_size=70),
                st.text(st.sampled_from("0123456789ABCDEF\u0111\udcff\U0001f600"), max_size=20))
NOTE = st.one_of(st.integers(0, 2**125 - 1), st.sampled_from([0, 1, 2**64 - 1, 2**64, 2**125 - 1, 2**128 - 1]))
OPS = st.lists(st.tuples(MID, st.integers(0, 2), NOTE, st.integers(0, 100)), min_size=1, max_size=40)
ACCOUNTS = ["bench", "\u0111\u1ec3", "x" * 30]


def _run(tmp_path, name, ops, cap, fast, monkeypatch):
    monkeypatch.setattr(idspool, "_c_record", C if fast else None)
    sp = crashspool.Spool(tmp_path / name, capacity=cap, overwrite=False)
    j = SpoolJournal(sp, ACCOUNTS)
    for mid, account, note, drain in ops:
        j.noted(mid, account, note)
        sp.written = min(sp.end, sp.written + drain)         # the writer thread wrote some
    out = (bytes(sp.ring), sp.end, sp.head[2], j.unspooled)
    _close(sp)
    return out


def _close(sp):
    sp.head.release()
    sp.ring.release()
    sp.mm.close()
    os.close(sp.fd)


@given(OPS, st.integers(24, 300))
@settings(max_examples=300, deadline=None)
def test_spool_record_writes_what_the_python_form_writes(tmp_path_factory, ops, cap):
    tmp = tmp_path_factory.mktemp("spool")
    with pytest.MonkeyPatch.context() as mp:
        fast = _run(tmp, "a.log", ops, cap, True, mp)
        slow = _run(tmp, "b.log", ops, cap, False, mp)
    assert fast == slow


@given(MID, st.sampled_from([b"bench", b"", "\u0111".encode()]), NOTE)
@settings(max_examples=300, deadline=None)
def test_spool_record_is_none_only_outside_its_common_case(mid, name, note):
    ring, head = memoryview(bytearray(4096)), memoryview(bytearray(56)).cast("Q")
    end = C(ring, head, 0, 0, 4096, mid, name, note)
    assert (end is None) == (not mid.isascii())
    if end is not None:
        assert end == head[2] == 20 + len(mid) + len(name)
        assert spool_records(bytes(ring[:end]))["ids"] == [mid]


def test_a_full_ring_takes_no_record(tmp_path):
    sp = crashspool.Spool(tmp_path / "ids.log", capacity=64, overwrite=False)
    j = SpoolJournal(sp, ["bench"])
    j.noted("0" * 30, 0, 5)                  # 55 bytes
    j.noted("1", 0, 5)                       # 26 more: over 64 with nothing written
    assert (sp.end, sp.head[2], j.unspooled) == (55, 55, 1)
    sp.written = 55
    j.noted("1", 0, 5)                       # split at the ring's end
    assert (sp.end, j.unspooled) == (81, 1)
    data = bytes(sp.ring[55:]) + bytes(sp.ring[:81 - 64])
    assert spool_records(data)["ids"] == ["1"]
    _close(sp)
