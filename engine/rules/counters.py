"""Sliding-window counters behind a small interface (in-process now; a shared store later).

Theory of operation: a rule's counter lives in its own namespace (the rule symbol plus the
counter spec), with one window. Per key the in-process store keeps at most `limit` recent
timestamps (all a "more than N within W" test needs) or, for distinct counters, the last
time each value was seen. Keys live in an insertion-ordered dict per namespace ordered by
last touch, so keys idle longer than the window are expired from the front in amortised
O(1), and a hard cap on keys evicts the least recently used: memory stays bounded.
Counters are read while judging and written only after the verdict (only messages let
through count toward a cap), so checks stay pure.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import Protocol


class CounterStore(Protocol):
    def count(self, ns: str, key, now: float, window: float | None) -> int: ...
    def add(self, ns: str, key, now: float, window: float | None, keep: int) -> None: ...
    def distinct_values(self, ns: str, key, now: float, window: float | None) -> set: ...
    def add_distinct(self, ns: str, key, value, now: float, window: float | None) -> None: ...


class _Space:
    __slots__ = ("window", "keys")

    def __init__(self, window):
        self.window = window
        # key -> tuple of the last `limit` timestamps (count mode; the last one is the last
        # touch) or [last_touch, {value: time}] (distinct mode), ordered by last touch
        # (move_to_end), so idle keys are expired from the front in O(1)
        self.keys: OrderedDict = OrderedDict()


class MemoryCounters:
    """Bounded in-process counters. `max_keys` caps each namespace (least recently used beyond it)."""

    def __init__(self, max_keys: int = 2_000_000):
        self.max_keys = max_keys
        self.spaces: dict[str, _Space] = {}

    def _space(self, ns, window) -> _Space:
        sp = self.spaces.get(ns)
        if sp is None:
            sp = self.spaces[ns] = _Space(window)
        return sp

    def _expire(self, sp: _Space, now: float) -> None:
        keys = sp.keys
        if sp.window is not None:
            horizon = now - sp.window
            while keys:
                k = next(iter(keys))
                v = keys[k]
                last = v[-1] if type(v) is tuple else v[0]
                if last > horizon:
                    break
                keys.popitem(last=False)
        while len(keys) > self.max_keys:
            keys.popitem(last=False)

    def count(self, ns, key, now, window) -> int:
        sp = self.spaces.get(ns)
        stamps = sp.keys.get(key) if sp else None
        if not stamps:
            return 0
        if window is None:
            return len(stamps)
        horizon = now - window
        return sum(1 for t in stamps if horizon < t <= now)

    def add(self, ns, key, now, window, keep) -> None:
        sp = self._space(ns, window)
        keys = sp.keys
        old = keys.get(key)
        if old is None:
            keys[key] = (now,)
        else:
            keys[key] = (old + (now,))[-max(1, keep):]
            keys.move_to_end(key)
        self._expire(sp, now)

    def distinct_values(self, ns, key, now, window) -> set:
        sp = self.spaces.get(ns)
        ent = sp.keys.get(key) if sp else None
        if ent is None:
            return set()
        if window is None:
            return set(ent[1])
        horizon = now - window
        return {v for v, t in ent[1].items() if horizon < t <= now}

    def add_distinct(self, ns, key, value, now, window) -> None:
        sp = self._space(ns, window)
        ent = sp.keys.get(key)
        if ent is None:
            ent = sp.keys[key] = [now, {}]
        else:
            ent[0] = now
            sp.keys.move_to_end(key)
        d = ent[1]
        d[value] = now
        if window is not None and len(d) > 64:
            horizon = now - window
            for v in [v for v, t in d.items() if t <= horizon]:
                del d[v]
        self._expire(sp, now)

    def memory_keys(self) -> int:
        return sum(len(sp.keys) for sp in self.spaces.values())


class RecipientHistory:
    """Per sender: recipients ever contacted (bounded) and the recent (time, was_new) events."""

    def __init__(self, max_senders: int = 500_000, max_recipients: int = 20_000):
        self.max_senders, self.max_recipients = max_senders, max_recipients
        self.data: OrderedDict = OrderedDict()   # sender -> (set(recipients), deque[(t, new)])

    def share(self, sender, recipient, now, window) -> tuple[int, float]:
        """(messages in window including this one, share of them to new recipients)."""
        ent = self.data.get(sender)
        if ent is None:
            return 1, 1.0
        seen, events = ent
        horizon = now - window
        n = new = 0
        for t, isnew in events:
            if horizon < t <= now:
                n += 1
                new += isnew
        n += 1
        new += recipient not in seen
        return n, new / n

    def add(self, sender, recipient, now, window) -> None:
        ent = self.data.pop(sender, None)
        if ent is None:
            ent = (set(), deque(maxlen=10_000))
        seen, events = ent
        events.append((now, recipient not in seen))
        if len(seen) < self.max_recipients:
            seen.add(recipient)
        while events and events[0][0] <= now - window:
            events.popleft()
        self.data[sender] = ent
        while len(self.data) > self.max_senders:
            self.data.popitem(last=False)


class CallDurations:
    """Per caller: (end time, duration) of recent completed calls (bounded)."""

    def __init__(self, max_callers: int = 500_000, per_caller: int = 1000):
        self.max_callers, self.per_caller = max_callers, per_caller
        self.data: OrderedDict = OrderedDict()

    def add(self, caller, ts: float, duration: float) -> None:
        dq = self.data.get(caller)
        if dq is None:
            dq = self.data[caller] = deque(maxlen=self.per_caller)
        else:
            self.data.move_to_end(caller)
        dq.append((ts, duration))
        while len(self.data) > self.max_callers:
            self.data.popitem(last=False)

    def share_short(self, caller, now: float, window: float, max_seconds: float) -> tuple[int, float]:
        dq = self.data.get(caller)
        if not dq:
            return 0, 0.0
        horizon = now - window
        recent = [d for t, d in dq if horizon < t <= now]
        if not recent:
            return 0, 0.0
        return len(recent), sum(1 for d in recent if d < max_seconds) / len(recent)
