"""The shared counters' process side (engine/state/redis_store.py sends them): each counter
commit the pipeline makes is recorded as an *op* for the server, not applied; reads come from
the process's *mirror* (a MemoryCounters holding the commits the server confirmed).

An op names a namespace, a key, a window, a limit, a second and a mode: a count (`add`), a
distinct value (`add_distinct`), a count at delivery (`add_at`: `value` is the clock) or a count
taken back (`remove`: an ad the SMSC refused, Pipeline.refund). A count taken back leaves the
mirror at once and goes to the server as an op of its own, unenforced, with the next batch; a
count the mirror took alone (fail-open: the server could not be asked) is given back to the
mirror only, never as a stamp taken from the server (another process's), until the server has it too
(RedisStore._catch_up commits it there once it answers again).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from ..rules.counters import MemoryCounters
from ..rules.slots import key_hash, value_fp
from ..verdict import Action
from .journalled import stable, stable_key

if TYPE_CHECKING:
    from .redis_store import RedisStore


REMOVE = 2                  # an _Op's `distinct` for a count taken back (SharedCounters.remove)
AT = 3                      # an _Op's `distinct` for a count at delivery (SharedCounters.add_at: `value` is the clock)


class _Op:
    __slots__ = ("ns", "key", "value", "now", "window", "limit", "distinct", "without")

    def __init__(self, ns, key, value, now, window, limit, distinct, without=0):
        self.ns, self.key, self.value, self.now = ns, key, value, now
        self.window, self.limit, self.distinct = window, limit, distinct     # distinct: False, True, REMOVE or AT
        self.without = without      # AT: a second one stamp of which its measure leaves out (Message.replacing)

    def apply(self, mem: MemoryCounters) -> None:
        if self.distinct is REMOVE:
            return                      # taken from the mirror when it was recorded (SharedCounters.remove)
        if self.distinct is AT:
            mem.add_at(self.ns, self.key, self.now, self.value, self.window, self.limit)
        elif self.distinct:
            mem.add_distinct(self.ns, self.key, self.value, self.now, self.window, self.limit)
        else:
            mem.add(self.ns, self.key, self.now, self.window, self.limit)

    def wire(self, ki: int, enforce: int) -> list:
        """This op as the batch script reads it (redis_script.py), its key the `ki`th of the batch's KEYS."""
        d = self.distinct
        e = [ki, int(d), self.limit, -1 if self.window is None else int(self.window), int(self.now), enforce,
             value_fp(self.value) if d is True else int(self.value) if d is AT else 0]
        if d is AT and self.without:
            e.append(int(self.without))         # a replacement's: its measure leaves that stamp out
        return e

    def measure(self, mem: MemoryCounters, pend: dict) -> int:
        """This op's count in the mirror alone, as the script measures it (`pend`: the counts this message's
        earlier ops put on the same key, as if committed): the fail-open path's check (RedisStore._degraded)."""
        d = self.distinct
        if d is REMOVE:
            return 0
        if d is True:
            n = mem.distinct(self.ns, self.key, self.value, self.now, self.window, self.limit)
            k, fp = ("distinct", self.ns, self.key), value_fp(self.value)
            seen = pend.setdefault(k, set())
            if seen - {fp}:         # this message's earlier values on the key count too, as in the script
                n = len(_live_fps(mem, self.ns, self.key, self.now, self.window) | seen | {fp})
            seen.add(fp)
            return n
        k = (self.ns, self.key)
        q = pend.get(k, 0)
        pend[k] = q + 1
        if d is AT:
            n = mem.count_at(self.ns, self.key, self.now, self.value, self.window, self.limit, self.without)
            if q and self.window is not None and \
                    _live_at(mem, self.ns, self.key, self.value, self.window) + q >= 2 * self.limit:
                return self.limit + q       # no room for this one beside this message's earlier ops: the script's test
            return n + q
        return mem.count(self.ns, self.key, self.now, self.window, self.limit) + q

    def over(self, n: int) -> bool:
        if self.distinct is REMOVE:
            return False
        return n > self.limit if self.distinct is True else n + 1 > self.limit


def _live_fps(mem: MemoryCounters, ns, key, now, window) -> set:
    """The value fingerprints a distinct counter's row in the mirror holds within the window (what the script's
    `measure` reads of a distinct key; rules/counters.py MemoryCounters.distinct counts them)."""
    sp = mem.spaces.get(ns)
    if sp is None or not sp.distinct:
        return set()
    h, hz = key_hash(key), int(now) - window if window is not None else 0
    i = sp.table.find(h)
    if i < 0:
        f = sp.first.find(h)
        return {sp.first.rows[2 * f]} if f >= 0 and sp.first.rows[2 * f + 1] > hz else set()
    k, rows = sp.limit + 1, sp.table.rows
    b = i * 2 * k
    return {rows[b + j] for j in range(k) if rows[b + k + j] > hz}


def _live_at(mem: MemoryCounters, ns, key, clock, window) -> int:
    """The stamps of a count at delivery's row in the mirror still to count (newer than clock - window): with a
    message's earlier ops on the key, the script's test for a row with no room (rules/counters_at.py count_at)."""
    sp = mem.spaces.get(ns)
    i = sp.table.find(key_hash(key)) if sp is not None and sp.at else -1
    if i < 0:
        return 0
    hz = int(clock) - window
    return sum(1 for x in sp.table.rows[i * sp.width:(i + 1) * sp.width] if x and x > hz)


def _drop_rule(op: _Op, rules: dict) -> bool:
    """An op of a rule whose forced action is drop (its cap is enforced)."""
    r = rules.get(op.ns.split("|", 1)[0])
    return r is not None and r.action is Action.DROP


def _advertiser_cap(op: _Op, rules: dict) -> bool:
    """An op of a drop rule counting per advertiser (its key names `owner`): AD_FREQUENCY_CAP,
    DKQC_VIOLATION, AD_CALL_FREQUENCY_CAP in the shipped pack. These are what on_error=closed
    refuses while the server is away."""
    return _drop_rule(op, rules) and "owner" in (op.ns.split("|") + [""])[1].split("+")


LOCAL_MAX = 100_000         # counts committed to the mirror only (fail-open) remembered for remove


class SharedCounters:
    """The CounterStore protocol: reads from the mirror, writes recorded as ops for the server."""

    def __init__(self, store: "RedisStore", mem: MemoryCounters):
        self.store, self.mem = store, mem
        # (ns, key, second) -> how many counts the mirror took while the server could not be asked (the
        # on_error policy let the message through): a refund of one is the mirror's alone, never a stamp
        # taken from the server (another process's). The newest LOCAL_MAX.
        # (an OrderedDict: its first key is O(1); a plain dict's steps over the holes its deletions left, ~76 µs a
        # count at LOCAL_MAX, every message while the server is away)
        self.local: OrderedDict = OrderedDict()

    def committed_locally(self, op) -> None:
        k = (op.ns, op.key, op.now)
        d = self.local
        d[k] = d.get(k, 0) + 1
        if len(d) > LOCAL_MAX:
            del d[next(iter(d))]

    def on_server(self, op) -> bool:
        """A count the mirror took alone is now on the server too (RedisStore._catch_up): no longer the mirror's
        alone. False when the mirror no longer holds it alone: it was given back meanwhile (remove, an ad the SMSC
        refused, while its batch was unanswered or in flight), so the server's count is to be given back too."""
        k = (op.ns, op.key, op.now)
        n = self.local.get(k)
        if n is None:
            return False
        if n > 1:
            self.local[k] = n - 1
        else:
            del self.local[k]
        return True

    def local_only(self, ns, key, second) -> bool:
        """Whether a count of `key` at `second` is one the mirror took alone (fail-open, the newest LOCAL_MAX): a
        message-id note does not offer it to be given back later (relay.py), when this record may be gone and
        the server's stamp of that second another process's."""
        return (ns, stable_key(key), second) in self.local

    def count(self, ns, key, now, window, limit):
        return self.mem.count(ns, stable_key(key), now, window, limit)

    def distinct(self, ns, key, value, now, window, limit):
        return self.mem.distinct(ns, stable_key(key), stable(value), now, window, limit)

    def add(self, ns, key, now, window, limit):
        self.store._record(_Op(ns, stable_key(key), None, now, window, limit, False))

    def add_distinct(self, ns, key, value, now, window, limit):
        self.store._record(_Op(ns, stable_key(key), stable(value), now, window, limit, True))

    def count_at(self, ns, key, when, now, window, limit, without=0):
        return self.mem.count_at(ns, stable_key(key), when, now, window, limit, without)

    def add_at(self, ns, key, when, now, window, limit, without=0):
        self.store._record(_Op(ns, stable_key(key), now, when, window, limit, AT, without))

    def remove(self, ns, key, now, window, limit):
        """Taken from the mirror at once (the ESME's retry, answered next, must see it) and on the server with
        the next batch (the script removes the stamp as MemoryCounters.remove does; unenforced, like the
        ops of paths that do not settle), unless the count never reached the server (`local`)."""
        key = stable_key(key)
        if not self.mem.remove(ns, key, now, window, limit):
            return
        k = (ns, key, now)
        n = self.local.get(k)
        if n is not None:
            if n > 1:
                self.local[k] = n - 1
            else:
                del self.local[k]
            return
        self.store._record(_Op(ns, key, None, now, window, limit, REMOVE))

    def memory_bytes(self):
        return self.mem.memory_bytes()

    def memory_keys(self):
        return self.mem.memory_keys()

    def __getattr__(self, name):
        return getattr(self.mem, name)
