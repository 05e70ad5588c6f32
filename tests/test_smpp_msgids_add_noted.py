"""MessageIds.add_noted (a forwarded message's id added and noted in one call, forward.py) leaves the map, its notes,
its ring and its journal (the id log's list and crash-spool records) exactly as `add` then `note` do: random
sequences over a small bound (evictions, ids given again, a note rewritten, several accounts, sources, deliveries and
destinations out of range), and a pool process's map (SharedMessageIds), which broadcasts what it adds."""
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.smpp_proxy.msgids import MULTI, PART, SINGLE, MessageIds
from engine.state.receipts import SharedMessageIds


class Journal(list):                    # idspool.SpoolJournal's two faces: the ids added, and the records noted
    def __init__(self):
        super().__init__()
        self.records = []

    def noted(self, mid, account, note):
        self.records.append((mid, account, note))


def _state(m: MessageIds):
    return (dict(m._ids), list(m._ids), dict(m._sent), list(m._sent), list(m._ring), m._next, list(m._accounts), dict(m._numbers),
            list(m.journal), m.journal.records)


OPS = st.lists(st.tuples(
    st.sampled_from(["add_noted", "add", "note"]), st.sampled_from([f"id{i}" for i in range(9)]),
    st.sampled_from(["esme1", "esme2", "\u0111"]), st.sampled_from([SINGLE, MULTI, PART]), st.integers(0, 300),
    st.sampled_from(["84912345678", "BRAND", "", "\udcff"]),
    st.sampled_from([0, -5, 1_700_000_000, 2**32 - 1, 2**32, 2**40]),
    st.sampled_from([None, 0, 84912345678, -1, 2**50 - 1, 2**50]), st.booleans()), max_size=60)


def _run(m, ops, fused):
    m.journal = Journal()
    for op, mid, acct, kind, dc, source, delivery, dest, charged in ops:
        if op == "add":
            m.add(mid, acct)
        elif op == "note":
            m.note(mid, kind, dc, source, delivery, dest, charged)
        elif fused:
            m.add_noted(mid, acct, kind, dc, source, delivery, dest, charged)
        else:
            m.add(mid, acct)
            m.note(mid, kind, dc, source, delivery, dest, charged)
    return m


@given(OPS, st.integers(1, 5))
@settings(max_examples=400, deadline=None)
def test_add_noted_is_add_then_note(ops, bound):
    a, b = _run(MessageIds(bound), ops, True), _run(MessageIds(bound), ops, False)
    assert _state(a) == _state(b)
    assert a.columns() == b.columns()


@given(OPS, st.integers(1, 5))
@settings(max_examples=100, deadline=None)
def test_a_pool_process_broadcasts_what_add_noted_adds(ops, bound):
    # against what does not go through SharedMessageIds at all (its add_noted is its own add then note: compared
    # with its add then note, a broadcast lost or doubled in `add` was on both sides): a plain MessageIds' map, and
    # every id added, in order, broadcast once, the loop woken for the first
    woke = []
    a = _run(SharedMessageIds(bound, wake=lambda: woke.append(1)), ops, True)
    assert _state(a) == _state(_run(MessageIds(bound), ops, False))
    added = [mid for op, mid, *_ in ops if op != "note"]
    assert a.out == added and len(woke) == (1 if added else 0)
    assert len(a.learned) == 0 and all(a.own(mid) == a.get(mid) for mid in added)


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**61 - 1)), max_size=40))
@settings(max_examples=200, deadline=None)
def test_the_sent_column_is_each_notes_low_then_high_64_bits_little_endian(halves):
    import struct
    m = MessageIds(1000)
    for i, (lo, hi) in enumerate(halves):
        m.add(f"id{i}", "esme")
        if lo or hi:
            m._sent[f"id{i}"] = lo | hi << 64
    m.add("none", "esme")                   # an id without a note: 16 zero bytes
    cols = m.columns()
    if any(lo or hi for lo, hi in halves):          # (no note at all: no column)
        assert cols["sent"] == b"".join(struct.pack("<QQ", lo, hi) if lo or hi else bytes(16) for lo, hi in halves) \
            + bytes(16)
    back = MessageIds(1000)
    back.add_columns(cols)
    assert back._sent == m._sent and back.columns() == cols
