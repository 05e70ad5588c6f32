"""Per-message context: the facts checks read, computed once and only when asked for.

A `MessageContext` wraps a `Message` or `Call` with its normalised numbers, local time,
folded text, URL hosts, registry entry and fingerprints. Everything is lazy (checks that
do not need the folded text never pay for it) and read-only: checks are pure functions of
(context, lists, state).

Why an instance dict and not `__slots__`: a lazy fact is a non-data descriptor whose first
read stores the value in the instance dict, which then shadows the descriptor, so every
later read is a plain attribute hit in C. With slots each read would run a Python property.
Facts that come from one computation are stored together (`_Registry` fills the
registry entries, the problem, the valid entry, the category and the owner in one pass).
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from operator import itemgetter

from .numbers import normalise_number, normalise_sender_id
from .stamps import posix
from .lists.sets import owner_fold
from .textnorm import find_hosts, fold, folded_content_digest, template_key
from .verdict import Call, Message


_NONE: frozenset = frozenset()      # the categories of a sender with no registry entry (most)

# the registry facts of a sender with no entry (most senders: plain numbers), stored in one
# dict.update instead of a resolver pass
_NO_ENTRY_NUMBER = {"entries": (), "registry_problem": "not in the sender registry", "valid_entry": None,
                    "sender_category": "number", "sender_categories": frozenset(("number",)), "owner": None,
                    "registered_categories": _NONE}
_NO_ENTRY_NAME = {**_NO_ENTRY_NUMBER, "sender_category": "unregistered", "sender_categories": frozenset(("unregistered",))}

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_OFFSETS: dict = {}                 # (tz, UTC hour) -> the zone's UTC offset in seconds all that hour
_OFFSETS_MAX = 4096
_DAYS: dict = {}                    # days since 1970-01-01 -> that date (dates are immutable)


def utc_offset(tz, ts: float) -> int | None:
    """The UTC offset (whole seconds) of `tz` at UTC time `ts`, from a small cache by UTC hour;
    None when the offset changes within that hour (a transition: the caller converts exactly).

    Why: `datetime.astimezone(ZoneInfo)` costs about a microsecond per message, and the offset
    only changes at a zone's transitions. An hour whose first and last second have the same
    offset is taken to have it throughout (no zone has two transitions within one hour)."""
    h = int(ts // 3600)
    k = (tz, h)
    off = _OFFSETS.get(k)
    if off is None:
        a = datetime.fromtimestamp(h * 3600, tz).utcoffset()
        b = datetime.fromtimestamp(h * 3600 + 3599, tz).utcoffset()
        if a is None or a != b or a.microseconds:
            return None
        if len(_OFFSETS) >= _OFFSETS_MAX:       # bounded; cleared whole (traffic time moves on)
            _OFFSETS.clear()
        off = _OFFSETS[k] = a.days * 86400 + a.seconds
    return off


class cached_property:
    """functools.cached_property without its per-access lock (3.11): one context per message,
    never shared between threads."""

    def __init__(self, fn):
        self.fn, self.name = fn, fn.__name__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        v = obj.__dict__[self.name] = self.fn(obj)
        return v


# The facts every SMS from a number reads (the folded text, its hosts, content digest and
# template key, the ML score) are descriptors whose `__get__` is the computation itself: one
# Python call on first read where cached_property makes two (its `__get__`, then the function).

class _MlScore:
    """Spam probability of the SMS text, computed on first use (the ML stage or a rule)."""

    def __get__(self, c, cls=None):
        if c is None:
            return self
        m = c.model
        v = c.__dict__["ml_score"] = None if m is None or c.is_call or not c.text else m.score(c.text)
        return v


class _Folded:
    """textnorm.fold(text)."""

    def __get__(self, c, cls=None):
        if c is None:
            return self
        v = c.__dict__["folded"] = fold(c.text)
        return v


class _Hosts:
    """URL hosts of the text (textnorm.find_hosts)."""

    def __get__(self, c, cls=None):
        if c is None:
            return self
        t = c.text
        # every link has a '.' (a bare domain; or a full-width / ideographic one) or a ':' (a scheme);
        # most texts have neither
        v = c.__dict__["hosts"] = find_hosts(t) if t and ("." in t or ":" in t or (
            not t.isascii() and ("\uff0e" in t or "\u3002" in t or "\uff61" in t))) else []
        return v


class _Content:
    """Counter key part `content`: a digest of the exact content (folded, spacing collapsed)."""

    def __get__(self, c, cls=None):
        if c is None:
            return self
        d = c.__dict__
        f = d.get("folded")
        if f is None:
            f = c.folded
        v = d["content"] = folded_content_digest(f)
        return v


class _TemplateBands:
    """Counter keys for `counter.key = ["template"]`: the text's template key, if it has one."""

    def __get__(self, c, cls=None):
        if c is None:
            return self
        k = template_key(c.text)
        v = c.__dict__["template_bands"] = () if k is None else (k,)
        return v


class _Resolved:
    """A fact computed together with others: the subclass's `__get__` computes them all, stores
    them in the instance dict (later reads hit the dict: a non-data descriptor is shadowed by
    it) and returns the one named."""

    def __init__(self, name):
        self.name = name


class _Local(_Resolved):
    """Local time of day, date and weekday, from the zone's UTC offset (utc_offset)."""

    def __get__(self, c, cls=None):
        if c is None:
            return self
        d = c.__dict__
        ts = c.ts
        off = _OFFSETS.get((c.tz, int(ts // 3600)))     # utc_offset's cache, read without its call
        if off is None:
            off = utc_offset(c.tz, ts)
        if off is None:                         # within an hour holding a transition: exactly
            lt = c.local
            d["local_seconds"] = lt.hour * 3600 + lt.minute * 60 + lt.second
            d["local_date"] = lt.date()
            d["local_weekday"] = lt.weekday()
        else:
            days, sec = divmod(int(ts // 1) + off, 86400)
            d["local_seconds"] = sec
            day = _DAYS.get(days)
            if day is None:
                if len(_DAYS) >= _OFFSETS_MAX:
                    _DAYS.clear()
                day = _DAYS[days] = date.fromordinal(_EPOCH_ORDINAL + days)
            d["local_date"] = day
            d["local_weekday"] = (days + 3) % 7     # 1970-01-01 was a Thursday
        return d[self.name]


# The registry facts of a registered sender, by (its entries, account, call or SMS, name or
# number), with the local date they were resolved for when an entry has validity dates: a
# brandname sends thousands of messages an hour, and resolving costs ~2.5 µs. The entries tuple
# itself is held by the value and must be the same object (`is`): an import, a delta or a
# reload puts new tuples in the registry, which miss here.
_REGISTRY: dict = {}
_REGISTRY_MAX = 4096
_REGISTRY_FACTS = ("entries", "registry_problem", "valid_entry", "sender_category", "sender_categories", "owner",
                   "registered_categories")
_FACTS_OF = itemgetter(*_REGISTRY_FACTS)     # (no comprehension over `d` in _Registry.__get__: no cell a call)


class _Registry(_Resolved):
    """The registry facts of the sender, in one pass over its entries (or from _REGISTRY)."""

    def __get__(self, c, cls=None):
        if c is None:
            return self
        d = c.__dict__
        entries = c.lists.sender_entries(c.sender_key)
        if not entries:
            d.update(_NO_ENTRY_NUMBER if c.sender_num is not None else _NO_ENTRY_NAME)
            return d[self.name]
        acct = getattr(c.msg, "account", "") or ""
        k = (id(entries), acct, c.is_call, c.sender_num is None)
        hit = _REGISTRY.get(k)
        if hit is not None and hit[0] is entries and (hit[1] is None or hit[1] == c.local_date):
            d.update(hit[2])
            return d[self.name]
        d["entries"] = entries
        problem, valid, cats, dated = None, None, set(), None
        day = c.local_date if any(e.valid_from or e.valid_to for e in entries) else None
        # every entry is looked at: a brand registered both QC and CSKH (one row each, perhaps with
        # other dates or accounts) has both categories valid now, whatever order the rows came in
        for e in entries:
            if e.valid_from and day < e.valid_from:
                dated = dated or f"registration valid from {e.valid_from}"
                continue
            if e.valid_to and day > e.valid_to:
                dated = dated or f"registration expired {e.valid_to}"
                continue
            # allowed accounts are ESME system_ids: they restrict SMS, not calls
            if e.accounts and not c.is_call and acct not in e.accounts:
                problem = problem or (f"account {acct!r} not allowed to use it" if acct else
                                      "no ESME account given: its registration names the accounts that may use it")
                continue
            if valid is None or (e.category == "QC" and valid.category != "QC"):
                valid = e                   # QC first: the category an advertisement needs
            cats.add(e.category)
        # a row in force today that refuses this account says more than an expired row a renewal replaced
        d["registry_problem"] = None if valid is not None else problem or dated
        d["valid_entry"] = valid
        d["sender_categories"] = frozenset(cats) if cats else \
            frozenset(("unregistered" if c.sender_num is None else "number",))
        d["sender_category"] = valid.category if valid is not None else \
            "unregistered" if c.sender_num is None else "number"
        d["owner"] = (valid or entries[0]).owner
        d["registered_categories"] = frozenset(e.category for e in entries)
        if len(_REGISTRY) >= _REGISTRY_MAX:     # bounded; cleared whole (O(1) amortised)
            _REGISTRY.clear()
        _REGISTRY[k] = (entries, day, dict(zip(_REGISTRY_FACTS, _FACTS_OF(d))))
        return d[self.name]


class MessageContext:
    counted = None          # Message.counted: the counter keys a late part's message already holds a place under
    replacing = None        # Message.replacing: a replace_sm's replaced message's second and places

    def __init__(self, msg: Message | Call, lists, tz, shortcode: int | None = None):
        self.msg = msg
        self.lists = lists
        self.tz = tz
        self.shortcode = shortcode
        self.is_call = isinstance(msg, Call)
        if self.is_call:
            self.scope = "call"
            self.sender_raw, self.recipient_raw, self.text = msg.caller, msg.callee, ""
            s_ton = r_ton = 0
            nums = msg.nums                     # (Call.nums: the screen's, read once)
        else:
            self.scope = "sms-mo" if msg.direction == "mo" else "sms-mt"
            self.sender_raw, self.recipient_raw, self.text = msg.sender, msg.recipient, msg.text or ""
            s_ton, r_ton = msg.sender_ton, msg.recipient_ton     # SMPP's type of number (0: unknown)
            nums = msg.nums                     # (Message.nums: the SMPP proxy's, read once)
            if msg.counted is not None:
                self.counted = msg.counted      # a concatenated message's counts (Message.counted)
            if msg.replacing is not None:
                self.replacing = msg.replacing
        t = msg.time
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        self.time: datetime = t
        self.ts: float = posix(t)                 # t.timestamp()
        # the clock: when the message was submitted. A scheduled message is judged at its delivery (`ts`: hour
        # windows, registry dates, the counters counted at delivery: the advertiser caps) and counted as of now
        # by the other counters (floods and volumes measure what a sender submits), recipient history and reports
        sub = getattr(msg, "submitted", None)
        self.state_ts: float = self.ts if sub is None else posix(
            sub if sub.tzinfo is not None else sub.replace(tzinfo=timezone.utc))
        if nums is None:
            self.sender_num: int | None = normalise_number(self.sender_raw, s_ton)
            self.recipient_num: int | None = normalise_number(self.recipient_raw, r_ton)
        else:
            self.sender_num, self.recipient_num = nums
        self.sender_key = self.sender_num if self.sender_num is not None else normalise_sender_id(self.sender_raw)
        # a counter's `recipient` key part: the number, else the address as received
        self.recipient_key = self.recipient_num if self.recipient_num is not None else self.recipient_raw
        self.model = None                         # set by the pipeline; scored only when asked
        self.counter_keys: dict = {}              # the counter keys by key spec (stateful.Counter fills it)

    ml_score = _MlScore()

    @property
    def account(self) -> str:
        """The ESME system_id of an SMS ("" for a call)."""
        return getattr(self.msg, "account", "")

    @property
    def sender_is_name(self) -> bool:
        return self.sender_num is None

    @cached_property
    def local(self) -> datetime:
        return self.time.astimezone(self.tz)

    # local time of day, date and weekday: resolved together from the zone's UTC offset
    local_seconds = _Local("local_seconds")     # seconds since local midnight
    local_date = _Local("local_date")
    local_weekday = _Local("local_weekday")     # Monday 0 .. Sunday 6

    folded = _Folded()
    hosts = _Hosts()
    content = _Content()
    template_bands = _TemplateBands()

    # entries: the sender's registry entries; registry_problem: None when one is valid now for
    # this account, else why not; valid_entry: that entry; sender_category: QC / CSKH for a valid
    # registered sender, else `unregistered` (a name) or `number`; owner: the advertiser owning
    # the sender (of its valid entry, else of its first entry)
    # (resolved together in one pass over the sender's entries, on first use of any of them)
    entries = _Registry("entries")
    registry_problem = _Registry("registry_problem")
    valid_entry = _Registry("valid_entry")
    sender_category = _Registry("sender_category")
    sender_categories = _Registry("sender_categories")          # of every entry valid now (QC and CSKH both)
    owner = _Registry("owner")
    registered_categories = _Registry("registered_categories")      # of every entry, valid or not

    @property
    def owner_key(self) -> str:
        o = self.owner
        return "o:" + owner_fold(o) if o is not None else "s:" + str(self.sender_key)
