"""Stateful conditions of rule files: read while judging, committed only after the verdict (only
messages let through count). `reported` and `short_call_share` read running aggregates;
`counter` and `new_recipient_share` return a `Stateful` with `check(ctx, state)` -> evidence or
None and `commit(ctx, state)`. Registered in conditions.CONDITIONS like every other condition;
the state itself lives in counters.py, history.py and slots.py (flat, bounded)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .conditions import COUNTER_KEYS, condition, parse_duration
from .counter_keys import _VALUES, _key_builder
from .history import CALLS_KEPT, CALLS_KEPT_FOR


# ---------------------------------------------------------------- state: reports

def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)      # TOML's true is no count


def _number(v) -> bool:
    """A finite TOML number: nan passes every `<=` test by failing it, so it is refused by name."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@condition("reported", "{reporters = R, days = D}: sender named by at least R distinct reporters in D days")
def _reported(v, **_):
    if not isinstance(v, dict) or set(v) - {"reporters", "days"} or "reporters" not in v:
        raise ValueError("reported must be a table {reporters = R, days = D}")
    r, d = v["reporters"], v.get("days", 30)
    if not _whole(r) or r < 1 or not _number(d) or d <= 0:
        raise ValueError("reported: reporters must be an integer >= 1 and days a positive number")
    from ..lists.reports import REPORT_RETAIN_DAYS
    if d > REPORT_RETAIN_DAYS:
        # it loaded and counted no further back than the index keeps, less after a restart's rebuild
        raise ValueError(f"reported: days {d:g} is over the {REPORT_RETAIN_DAYS} days of reports the 5656 report index "
                         f"keeps (numbers unreported for {REPORT_RETAIN_DAYS} days are dropped): it could not count "
                         f"further back")
    win = d * 86400.0

    def pred(c, s):
        n = s.reports.distinct_reporters(c.sender_num, c.state_ts, win)
        return f"reported by {n} distinct subscribers in {d} days" if n >= r else None
    return pred


@condition("short_call_share", "{min_calls = N, window = \"1h\", max_seconds = S, above = X}: of the caller's "
           "completed calls within the window (at least N), more than X lasted under S seconds")
def _short_calls(v, **_):
    if not isinstance(v, dict) or set(v) - {"min_calls", "window", "max_seconds", "above"}:
        raise ValueError("short_call_share must be a table {min_calls, window, max_seconds, above}")
    n, secs, above = v.get("min_calls"), v.get("max_seconds"), v.get("above")
    if not _whole(n) or n < 1 or not _number(secs) or secs <= 0 \
            or not _number(above) or not 0 <= above < 1:
        raise ValueError("short_call_share: min_calls an integer >= 1, max_seconds > 0, above in [0, 1)")
    win = parse_duration(v.get("window", "1h"))
    if win is None:
        raise ValueError("short_call_share needs a finite window")
    # what CallDurations keeps: it loaded, and never held (min_calls) or counted part of its window (window)
    bad = [f"min_calls {n} is over the {CALLS_KEPT} completed calls kept per caller: it would never hold"] * \
        (n > CALLS_KEPT) + [f"window {v.get('window')!r} is over the {CALLS_KEPT_FOR / 3600:g}h a caller's calls are "
                            f"kept after their last one: it would count only part of it"] * (win > CALLS_KEPT_FOR)
    if bad:
        raise ValueError("short_call_share: " + "; ".join(bad))

    def pred(c, s):
        calls, share = s.calls.share_short(c.sender_key, c.state_ts, win, secs)
        if calls >= n and share > above:
            return f"{share:.0%} of {calls} completed calls within {v.get('window', '1h')} shorter than {secs:g}s"
        return None
    return pred


# ---------------------------------------------------------------- state: counters

class Stateful:
    """A condition read while judging and committed after the verdict."""
    refundable = False          # its commit can be taken back (Counter.charge)

    def check(self, c, s): ...
    def commit(self, c, s): ...

    def places(self, c) -> tuple:
        """The (namespace, key) places commit(c) counts the message in, which its late parts hold too
        (Message.counted): a count's keys; () for anything else."""
        return ()


@dataclass
class Counter(Stateful):
    ns: str
    key: tuple
    window: float | None
    limit: int
    distinct: str | None
    text: str
    at_delivery: bool = False   # `at = "delivery"`: counted at each message's delivery (MemoryCounters.count_at)

    def __post_init__(self):
        self._build = _key_builder(self.key)
        self._kname = "+".join(self.key)        # the spec's name in ctx.counter_keys
        self._value = _VALUES[self.distinct] if self.distinct else None
        # check: evidence when this message would be the (limit+1)th (distinct value) within the
        # window, else None; commit: count it (or its value) under each of its keys
        self.check, self.commit = _counter_fns(self)     # instance attributes: shadow Stateful's
        # an advertiser's cap (a count keyed by owner) counts messages sent: one the SMSC refused is given back
        # (Pipeline.refund) -- in a drop rule only, which the loader settles (AD_FREQUENCY_CAP in the shipped
        # pack). Other counters measure what a sender tries (floods, volumes, distinct values) and keep it.
        self.refundable = not self.distinct and "owner" in self.key

    def charge(self, c) -> tuple:
        """What this counter's commit of message context `c` counted, for `counters.remove`:
        (namespace, keys, second, window, limit)."""
        return self.ns, tuple(self._keys(c)), c.ts if self.at_delivery else c.state_ts, self.window, self.limit

    def places(self, c) -> tuple:
        if self.distinct:
            return ()       # a distinct value counts once however often it comes: a late part adds nothing
        ns = self.ns
        return tuple([(ns, k) for k in self._keys(c)])

    def _keys(self, c):
        """The message's keys for this key spec: built once per message and shared by check and
        commit and by every counter with the same spec."""
        try:
            ck = c.counter_keys
        except AttributeError:                  # a context of another kind (tests, what-if tools)
            ck = c.counter_keys = {}
        ks = ck.get(self._kname)
        if ks is None:
            ks = ck[self._kname] = self._build(c)
        return ks


def _unheld(ns, ks, held) -> tuple:
    """The keys of `ks` the message holds no place under yet (`held`: Message.counted). A late part of a
    concatenated message is no new message where its message was counted when it was judged: one of the N a cap
    allows, not an (N+1)th (the late part of the day's third ad to a recipient is no fourth). It is tested as a
    new message under any other key (one its earlier parts' text did not count it under)."""
    return tuple([k for k in ks if (ns, k) not in held])


# what a counter's evidence counts, by the context's scope (a call's said "messages")
_UNITS = {"call": "calls"}


def _counter_fns(ctr: Counter):
    """(check, commit) for one counter: closures over its constants, one per mode, so the two
    calls every message that gets this far makes read no attributes of the counter and test no
    mode. _keys is spelled out in check: it runs for every counter of every such message."""
    ns, window, limit, kname, build = ctr.ns, ctr.window, ctr.limit, ctr._kname, ctr._build
    keys = ctr._keys
    spec, text = "+".join(ctr.key), ctr.text
    if ctr.distinct:
        value = ctr._value
        what = f"distinct {ctr.distinct}s"

        def check_distinct(c, s):
            try:
                ck = c.counter_keys
            except AttributeError:              # a context of another kind (tests, what-if tools)
                ck = c.counter_keys = {}
            ks = ck.get(kname)
            if ks is None:
                ks = ck[kname] = build(c)
            best = 0
            distinct, v, ts = s.counters.distinct, value(c), c.state_ts
            for k in ks:
                n = distinct(ns, k, v, ts, window, limit)       # with this one
                if n > best:
                    best = n
            if best > limit:
                return f"{best} {what} per {spec} within {text} (limit {limit})"
            return None

        def commit_distinct(c, s):
            ks = c.__dict__.get("counter_keys", {}).get(kname)     # built by check, as a rule
            if ks is None:
                ks = keys(c)
            add, v, ts = s.counters.add_distinct, value(c), c.state_ts
            for k in ks:
                add(ns, k, v, ts, window, limit)
        return check_distinct, commit_distinct

    if ctr.at_delivery:
        # the message's delivery (`ts`: a scheduled one's schedule_delivery_time) against the clock (`state_ts`)
        def check_at(c, s):
            best = 0
            count_at, when, now, rep = s.counters.count_at, c.ts, c.state_ts, c.replacing
            ks = keys(c)
            if c.counted is not None:
                ks = _unheld(ns, ks, c.counted)
            for k in ks:
                # a replacement: checked without the stamp of the message it replaces (Message.replacing)
                n = count_at(ns, k, when, now, window, limit,
                             rep[0] if rep is not None and (ns, k) in rep[1] else 0) + 1
                if n > best:
                    best = n
            if best > limit:
                return f"{best} {_UNITS.get(getattr(c, 'scope', None), 'messages')} per {spec} within {text} (limit {limit})"
            return None

        def commit_at(c, s):
            add_at, when, now, rep = s.counters.add_at, c.ts, c.state_ts, c.replacing
            for k in keys(c):
                # (a shared store's server checks the commit again: as check_at did, Message.replacing)
                add_at(ns, k, when, now, window, limit, rep[0] if rep is not None and (ns, k) in rep[1] else 0)
        return check_at, commit_at

    def check_count(c, s):
        try:
            ck = c.counter_keys
        except AttributeError:
            ck = c.counter_keys = {}
        ks = ck.get(kname)
        if ks is None:
            ks = ck[kname] = build(c)
        if c.counted is not None:
            ks = _unheld(ns, ks, c.counted)
        best = 0
        count, ts = s.counters.count, c.state_ts
        for k in ks:
            n = count(ns, k, ts, window, limit) + 1
            if n > best:
                best = n
        if best > limit:
            return f"{best} {_UNITS.get(getattr(c, 'scope', None), 'messages')} per {spec} within {text} (limit {limit})"
        return None

    def commit_count(c, s):
        ks = c.__dict__.get("counter_keys", {}).get(kname)
        if ks is None:
            ks = keys(c)
        add, ts = s.counters.add, c.state_ts
        for k in ks:
            add(ns, k, ts, window, limit)
    return check_count, commit_count


MAX_LIMIT = 10_000       # stamps a counter keeps per key at most (40 KB a key; ~12 B for the pack's cap of 3)
_KEY_ORDER = ("owner", "sender", "recipient", "content", "template", "account")


@condition("counter", "{key = [sender|recipient|owner|content|template|account…], window = \"24h\", limit = N, distinct = FIELD?, "
           "at = \"submission\"|\"delivery\"?}: true for a message that would be the (N+1)th within the window (or the "
           "(N+1)th distinct FIELD); at = \"delivery\": counted at each message's delivery (a scheduled one's "
           "schedule_delivery_time), not its submission")
def _counter(v, rule_symbol="", **_):
    if not isinstance(v, dict):
        raise ValueError("counter must be a table {key = [...], window = \"24h\", limit = N}")
    bad = []        # every mistake of the table at once, in the order written: key, window, limit, distinct, at
    extra = set(v) - {"key", "window", "limit", "distinct", "at"}
    if extra:
        bad.append(f"counter: unknown key {sorted(extra)[0]!r} (key, window, limit, distinct, at)")
    key = v.get("key")
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, list) or not key or any(k not in COUNTER_KEYS for k in key):
        bad.append(f"counter key must be a non-empty list of {', '.join(COUNTER_KEYS)}; got {v.get('key')!r}")
    else:
        # one order for the parts: ["recipient", "owner"] is the counter ["owner", "recipient"] is (a reload that
        # only reorders them kept nothing); the shipped pack's order, so its namespaces and key hashes stay as they were
        key = sorted(dict.fromkeys(key), key=_KEY_ORDER.index)
    window = None
    if "window" not in v:
        bad.append("counter needs a window")
    else:
        try:
            window = parse_duration(v["window"])
        except ValueError as e:
            bad.append(str(e))
    limit = v.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        bad.append(f"counter limit must be an integer >= 1, got {limit!r}")
    elif limit > MAX_LIMIT:
        # a key keeps a stamp (a fingerprint) per message up to the limit: 1,000,000,000 made one row of 4 GB
        size = f"{limit * 4 / 2**20:,.0f} MiB" if limit * 4 >= 2**20 else f"{limit * 4 / 2**10:,.0f} KiB"
        bad.append(f"counter limit {limit} is over {MAX_LIMIT:,}: each key keeps one stamp per message up to "
                   f"its limit ({size} a key here); count a shorter window instead (1,000 an hour, not 24,000 a day)")
    distinct = v.get("distinct")
    if distinct is not None and distinct not in ("sender", "recipient", "owner"):
        bad.append(f"counter distinct must be sender, recipient or owner, got {distinct!r}")
    at = v.get("at", "submission")
    if at not in ("submission", "delivery"):
        bad.append(f"counter at must be \"submission\" or \"delivery\", got {at!r}")
    elif at == "delivery" and distinct is not None:
        bad.append("counter at = \"delivery\" counts messages: it cannot be used with distinct")
    if bad:
        raise ValueError("; ".join(bad))
    # (the same namespace either way: rows of stamps in time order both, so a rule changed to count at delivery
    # keeps what it counted; and the window by its length, not its spelling: "24h" rewritten "1d" keeps the counts)
    ns = f"{rule_symbol}|{'+'.join(key)}|{window_name(window)}|{distinct}"
    return Counter(ns, tuple(key), window, limit, distinct, str(v["window"]), at == "delivery")


def window_name(seconds: float | None) -> str:
    """A counter window in a counter's namespace: one name per length, however the rule spells it. The names
    are the spellings namespaces held before ("forever", "24h", "1h", "5m", "7d"), so their counts are kept."""
    if seconds is None:
        return "forever"
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % n == 0 and not (unit == "d" and seconds == 86400):      # one day: "24h", as the pack writes it
            return f"{seconds / n:g}{unit}"
    return f"{seconds:g}s"


@dataclass
class NewRecipientShare(Stateful):
    min_messages: int
    window: float
    above: float
    text: str

    def check(self, c, s):
        n, share = s.history.share(c.sender_key, c.recipient_num, c.state_ts, self.window)
        if n >= self.min_messages and share > self.above:
            return f"{share:.0%} of {n} messages within {self.text} to never-contacted recipients (limit {self.above:.0%})"
        return None

    def commit(self, c, s):
        s.history.add(c.sender_key, c.recipient_num, c.state_ts, self.window)


@condition("new_recipient_share", "{min_messages = M, window = \"1h\", above = X}: once the sender sent M messages "
           "within the window, the share to never-before-contacted recipients is above X")
def _nrs(v, **_):
    if not isinstance(v, dict) or set(v) - {"min_messages", "window", "above"}:
        raise ValueError("new_recipient_share must be a table {min_messages = M, window = \"1h\", above = X}")
    m, a = v.get("min_messages"), v.get("above")
    if not _whole(m) or m < 1 or not _number(a) or not 0 <= a < 1:
        raise ValueError("new_recipient_share: min_messages an integer >= 1, above a number in [0, 1)")
    w = parse_duration(v.get("window", "1h"))
    if w is None:
        raise ValueError("new_recipient_share needs a finite window")
    return NewRecipientShare(m, w, float(a), str(v.get("window", "1h")))
