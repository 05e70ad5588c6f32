"""What the embedded store journals and snapshots, shared with the Redis store: stable keys (the
key parts every process digests alike), the journalled wrappers that record every write the
pipeline's commit step makes, the record format replayed by `apply_record`, and the snapshot
encoding of the tables (`dump_state` / `load_state`). No I/O here: embedded.py owns the files.
"""
from __future__ import annotations

import hashlib

from ..rules.counters import MemoryCounters, _Space
from ..rules.history import CallDurations, RecipientHistory
from ..rules.slots import SlotTable


# ---------------------------------------------------------------- stable keys

_cache: dict = {}


def stable(x):
    """A process-independent stand-in for a key part: ints as they are, anything else a
    63-bit digest of its repr. Short strings (sender IDs, owner keys) are cached, at most
    65,536 of them (the cache is cleared when full), so the cache stays under ~8 MB."""
    if type(x) is int:
        return x
    v = _cache.get(x)
    if v is None:
        v = int.from_bytes(hashlib.blake2b(repr(x).encode(), digest_size=8).digest(), "little") >> 1
        if type(x) is str and len(x) <= 48:
            if len(_cache) >= 65536:
                _cache.clear()
            _cache[x] = v
    return v


def stable_key(key):
    if type(key) is tuple:
        for x in key:
            if type(x) is not int:
                return tuple([stable(y) for y in key])
        return key
    return stable(key)


# ---------------------------------------------------------------- journalled wrappers

class JournalledCounters:
    """The CounterStore protocol over MemoryCounters, recording every write."""

    def __init__(self, mem: MemoryCounters, buf: list):
        self.mem, self.buf = mem, buf

    def count(self, ns, key, now, window, limit):
        return self.mem.count(ns, stable_key(key), now, window, limit)

    def distinct(self, ns, key, value, now, window, limit):
        return self.mem.distinct(ns, stable_key(key), stable(value), now, window, limit)

    def add(self, ns, key, now, window, limit):
        key = stable_key(key)
        self.mem.add(ns, key, now, window, limit)
        self.buf.append(("a", ns, key, now, window, limit))

    def count_at(self, ns, key, when, now, window, limit, without=0):
        return self.mem.count_at(ns, stable_key(key), when, now, window, limit, without)

    def add_at(self, ns, key, when, now, window, limit, without=0):
        key = stable_key(key)
        self.mem.add_at(ns, key, when, now, window, limit)
        self.buf.append(("t", ns, key, when, now, window, limit))

    def add_distinct(self, ns, key, value, now, window, limit):
        key, value = stable_key(key), stable(value)
        self.mem.add_distinct(ns, key, value, now, window, limit)
        self.buf.append(("d", ns, key, value, now, window, limit))

    def remove(self, ns, key, now, window, limit):
        key = stable_key(key)
        if self.mem.remove(ns, key, now, window, limit):
            # the limit of the rows it was taken from: a reload's new layout is made by a read (count),
            # which is not journalled, so the replay lays the rows out as they were here first
            self.buf.append(("r", ns, key, now, window, self.mem.spaces[ns].limit))

    def memory_bytes(self):
        return self.mem.memory_bytes()

    def memory_keys(self):
        return self.mem.memory_keys()

    def __getattr__(self, name):        # spaces, max_keys...: read-only views for metrics and tests
        return getattr(self.mem, name)


class JournalledHistory:
    """RecipientHistory over stable ints, handing every write to `record` (the embedded
    journal's buffer, or the shared store's event stream: events.py)."""

    def __init__(self, mem: RecipientHistory, record):
        self.mem, self.record = mem, record

    def share(self, sender, recipient, now, window):
        return self.mem.share(stable(sender), stable(recipient), now, window)

    def add(self, sender, recipient, now, window):
        s, r = stable(sender), stable(recipient)
        self.mem.add(s, r, now, window)
        self.record(("h", s, r, now, window))

    def __getattr__(self, name):
        return getattr(self.mem, name)


class JournalledCalls:
    """CallDurations over stable ints, handing every write to `record` (as JournalledHistory)."""

    def __init__(self, mem: CallDurations, record):
        self.mem, self.record = mem, record

    def add(self, caller, ts, duration):
        c = stable(caller)
        self.mem.add(c, ts, duration)
        self.record(("k", c, ts, duration))

    def share_short(self, caller, now, window, max_seconds):
        return self.mem.share_short(stable(caller), now, window, max_seconds)

    def recent(self, caller):
        return self.mem.recent(stable(caller))

    def __getattr__(self, name):
        return getattr(self.mem, name)


def apply_record(mem_c: MemoryCounters, mem_h: RecipientHistory, mem_k: CallDurations, r: list) -> None:
    op = r[0]
    if op == "a":
        mem_c.add(r[1], _tup(r[2]), r[3], r[4], r[5])
    elif op == "d":
        mem_c.add_distinct(r[1], _tup(r[2]), r[3], r[4], r[5], r[6])
    elif op == "t":
        mem_c.add_at(r[1], _tup(r[2]), r[3], r[4], r[5], r[6])
    elif op == "r":
        sp = mem_c.spaces.get(r[1])
        if sp is not None and not sp.distinct and sp.limit != r[5]:
            mem_c._space(r[1], r[4], r[5], False, at=sp.at)
        mem_c.remove(r[1], _tup(r[2]), r[3], r[4], r[5])
    elif op == "h":
        mem_h.add(r[1], r[2], r[3], r[4])
    elif op == "k":
        mem_k.add(r[1], r[2], r[3])
    else:
        raise ValueError(f"unknown journal record {op!r}")


def _tup(k):
    return tuple(k) if isinstance(k, list) else k


# ---------------------------------------------------------------- snapshot encoding

def _load_table(v: list) -> SlotTable:
    return SlotTable.load(v)


def dump_state(c: MemoryCounters, h: RecipientHistory, k: CallDurations, views: bool = False) -> dict:
    """The state as plain values: the tables' arrays copied, or with `views` as views of their memory."""
    return {
        "counters": {"max_keys": c.max_keys, "spaces": [
            [ns, sp.limit, sp.distinct, sp.short, sp.table.dump(views),
             sp.first.dump(views) if sp.first is not None else None] for ns, sp in c.spaces.items()]},
        "history": {"max_senders": h.max_senders, "remember": h.remember,
                    "tables": [[w, t.dump(views)] for w, t in h.tables.items()]},
        "calls": k.table.dump(views),
    }


def load_state(d: dict) -> tuple[MemoryCounters, RecipientHistory, CallDurations]:
    c = MemoryCounters(d["counters"]["max_keys"])
    for ns, limit, distinct, short, table, first in d["counters"]["spaces"]:
        c.spaces[ns] = _Space(_load_table(table), limit, distinct,
                              _load_table(first) if first is not None else None, short)
    hd = d["history"]
    h = RecipientHistory(hd["max_senders"], hd["remember"])
    for w, t in hd["tables"]:
        h.tables[w] = _load_table(t)
    k = CallDurations()
    k.table = _load_table(d["calls"])
    return c, h, k
