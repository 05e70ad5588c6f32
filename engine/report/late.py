"""The report's memory of the messages late parts may come for (no I/O here; aggregate.py counts).

Theory of operation. A verdict line naming a concatenated message that may have late parts (`"concat"`: judged
before all its parts came, or for 5656) leaves a `Message` here: what was counted for it (owner, ad or not,
violation classes, symbols, its action). A late part's line (`"late": true`) with the same `"concat"` is tied
to the newest such message read before it: aggregate.py counts for that message what the late line shows that
its lines did not. Logs are often given newest first (`--log verdicts.log*` reads `verdicts.log` before
`verdicts.log.1`), so a late line whose message was not read yet is kept too (`Early`: what it would add) and
merged into the message whose line comes later in the reading, if that line is no later than the late one (a
late part comes after its message; a later message reusing the key is another).

Bounds (OrderedDicts, the oldest forgotten first): at most MAX_LATE_MESSAGES messages (~250 B each: 8 MiB of
heap when full) and MAX_EARLY messages' early late lines (~340 B each: 2.7 MiB; only the late parts near a
file's start whose message is in a file read later wait here, and those of messages never read). A message
forgotten gets no late line tied to it; an early late line forgotten, or never merged, counts toward `untied`
(its DNC change or report was counted when it was read).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

# messages that may have late parts (and late lines read before their message): the engine remembers at most
# max_pending_concat (20,000 by default) a process for concat_memory (a day), the newest first
MAX_LATE_MESSAGES = 32768
MAX_EARLY = 8192
_SETS: dict = {}
_SETS_MAX = 4096


def shared(items) -> frozenset:
    """One frozenset object for each set of symbols (or violation classes) kept: messages share a few."""
    f = frozenset(items)
    got = _SETS.get(f)
    if got is None:
        if len(_SETS) >= _SETS_MAX:                 # bounded memo: past it a set is kept unshared
            return f
        got = _SETS[f] = f
    return got


def _key(cid: str) -> int:
    """The tables' key for a line's `"concat"`: its 16 hex digits as an int (half the memory of the str). Any other
    value (no line the engine writes: a damaged or hand-made log) as a 64-bit digest of it, above those: kept as its
    text, a line's 1 MiB each, the bounds above held up to 32 GiB of them."""
    if len(cid) == 16:
        try:
            return int(cid, 16)
        except ValueError:
            pass
    d = hashlib.blake2b(cid.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return 1 << 64 | int.from_bytes(d, "big")


class Message:
    """What was counted for an SMS message that may have late parts. `p` (its period) is kept only while its line
    is a refusal with no verdict (a 5656 command not recorded: the late line that got it judged counts it anew)."""
    __slots__ = ("owner", "is_ad", "violations", "symbols", "action", "p")

    def __init__(self, owner, is_ad: bool, violations, symbols, action: str, p):
        self.owner, self.is_ad, self.action, self.p = owner, is_ad, action, p
        self.violations, self.symbols = shared(violations), shared(symbols)


class Early:
    """What late lines read before their message's line would add to it: their ad hit, violation classes and
    symbols, the model of the first ML_SPAM hit among them and that line's time (the report's `models`), the action
    of the first of them that was a verdict (None: refusals only) and its sender, when the earliest of them was
    written (POSIX seconds), and how many lines."""
    __slots__ = ("ad_hit", "violations", "symbols", "model", "model_ts", "action", "sender", "at", "lines")

    def __init__(self, ad_hit, violations, symbols, model, action, sender, ts):
        self.ad_hit, self.action, self.sender, self.at, self.lines = ad_hit, action, sender, ts.timestamp(), 1
        self.model, self.model_ts = model, ts if model is not None else None
        self.violations, self.symbols = shared(violations), shared(symbols)

    def add(self, ad_hit, violations, symbols, model, action, sender, ts) -> None:
        self.ad_hit = self.ad_hit or ad_hit
        self.violations, self.symbols = shared(self.violations | violations), shared(self.symbols | symbols)
        if self.model is None and model is not None:
            self.model, self.model_ts = model, ts
        if self.action is None and action is not None:
            self.action, self.sender = action, sender
        self.at = min(self.at, ts.timestamp())
        self.lines += 1


class LateParts:
    def __init__(self):
        self.bound, self.early_bound = MAX_LATE_MESSAGES, MAX_EARLY
        self.messages: OrderedDict = OrderedDict()     # key -> Message, newest last
        self.early: OrderedDict = OrderedDict()        # key -> Early, newest last
        self.untied = 0                                # late lines never tied (their Early forgotten)

    def remember(self, cid: str, m: Message, at: float) -> Early | None:
        """Message `m`, whose line (written at `at`) names `cid`; returns what late lines read before it add to it
        (None: none)."""
        k = _key(cid)
        ms = self.messages
        ms[k] = m
        ms.move_to_end(k)
        if len(ms) > self.bound:
            ms.popitem(last=False)
        e = self.early.get(k)
        if e is None or e.at < at:
            return None                     # (late lines of an earlier message of that key: still untied)
        del self.early[k]
        return e

    def get(self, cid: str) -> Message | None:
        """The message a late line naming `cid` is tied to (None: none read, or forgotten)."""
        return self.messages.get(_key(cid))

    def defer(self, cid: str, ad_hit, violations, symbols, model, action, sender, ts) -> None:
        """A late line naming `cid` (written at `ts`, a datetime), whose message was not read (yet): kept for it."""
        k = _key(cid)
        e = self.early.get(k)
        if e is not None:
            return e.add(ad_hit, violations, symbols, model, action, sender, ts)
        self.early[k] = Early(ad_hit, violations, symbols, model, action, sender, ts)
        if len(self.early) > self.early_bound:
            self.untied += self.early.popitem(last=False)[1].lines

    def untied_lines(self) -> int:
        """Late lines tied to no message: forgotten, and those still waiting at the end of the reading."""
        return self.untied + sum(e.lines for e in self.early.values())
