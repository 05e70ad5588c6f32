"""Per-message context: the facts checks read, computed once and only when asked for.

A `MessageContext` wraps a `Message` or `Call` with its normalised numbers, local time,
folded text, URL hosts, registry entry and fingerprints. Everything is lazy (checks that
do not need the folded text never pay for it) and read-only: checks are pure functions of
(context, lists, state).

Why an instance dict and not `__slots__`: a lazy fact is a non-data descriptor whose first
read stores the value in the instance dict, which then shadows the descriptor, so every
later read is a plain attribute hit in C. With slots each read would run a Python property.
Facts that come from one computation are stored together (`_resolve_registry` fills the
registry entries, the problem, the valid entry, the category and the owner in one pass).
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from .numbers import normalise_number, normalise_sender_id
from .textnorm import find_hosts, fold, folded_content_digest, template_key
from .verdict import Call, Message


_NONE: frozenset = frozenset()      # the categories of a sender with no registry entry (most)

# the registry facts of a sender with no entry (most senders: plain numbers), stored in one
# dict.update instead of a resolver pass
_NO_ENTRY_NUMBER = {"entries": (), "registry_problem": "not in the sender registry", "valid_entry": None,
                    "sender_category": "number", "owner": None, "registered_categories": _NONE}
_NO_ENTRY_NAME = {**_NO_ENTRY_NUMBER, "sender_category": "unregistered"}

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_OFFSETS: dict = {}                 # (tz, UTC hour) -> the zone's UTC offset in seconds all that hour
_OFFSETS_MAX = 4096


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


class _Resolved:
    """A fact computed together with others by one resolver, which stores them all in the
    instance dict; later reads hit the dict (a non-data descriptor is shadowed by it)."""

    def __init__(self, name, resolver):
        self.name, self.resolver = name, resolver

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        self.resolver(obj)
        return obj.__dict__[self.name]


class MessageContext:
    def __init__(self, msg: Message | Call, lists, tz, shortcode: int | None = None):
        self.msg = msg
        self.lists = lists
        self.tz = tz
        self.shortcode = shortcode
        self.is_call = isinstance(msg, Call)
        if self.is_call:
            self.scope = "call"
            self.sender_raw, self.recipient_raw, self.text = msg.caller, msg.callee, ""
        else:
            self.scope = "sms-mo" if msg.direction == "mo" else "sms-mt"
            self.sender_raw, self.recipient_raw, self.text = msg.sender, msg.recipient, msg.text or ""
        t = msg.time
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        self.time: datetime = t
        self.ts: float = t.timestamp()
        self.sender_num: int | None = normalise_number(self.sender_raw)
        self.recipient_num: int | None = normalise_number(self.recipient_raw)
        self.sender_key = self.sender_num if self.sender_num is not None else normalise_sender_id(self.sender_raw)
        # a counter's `recipient` key part: the number, else the address as received
        self.recipient_key = self.recipient_num if self.recipient_num is not None else self.recipient_raw
        self.model = None                         # set by the pipeline; scored only when asked
        self.counter_keys: dict = {}              # the counter keys by key spec (stateful.Counter fills it)

    @cached_property
    def ml_score(self) -> float | None:
        """Spam probability of the SMS text, computed on first use (the ML stage or a rule)."""
        if self.model is None or self.is_call or not self.text:
            return None
        return self.model.score(self.text)

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

    # --- local time of day, date and weekday: resolved together from the zone's UTC offset ---
    def _resolve_local(self):
        d = self.__dict__
        off = utc_offset(self.tz, self.ts)
        if off is None:                         # within an hour holding a transition: exactly
            lt = self.local
            d["local_seconds"] = lt.hour * 3600 + lt.minute * 60 + lt.second
            d["local_date"] = lt.date()
            d["local_weekday"] = lt.weekday()
            return
        days, sec = divmod(int(self.ts // 1) + off, 86400)
        d["local_seconds"] = sec
        d["local_date"] = date.fromordinal(_EPOCH_ORDINAL + days)
        d["local_weekday"] = (days + 3) % 7     # 1970-01-01 was a Thursday

    local_seconds = _Resolved("local_seconds", _resolve_local)     # seconds since local midnight
    local_date = _Resolved("local_date", _resolve_local)
    local_weekday = _Resolved("local_weekday", _resolve_local)     # Monday 0 .. Sunday 6

    @cached_property
    def folded(self) -> str:
        return fold(self.text)

    @cached_property
    def hosts(self) -> list[str]:
        t = self.text
        # every link has a '.' (a bare domain) or a ':' (a scheme); most texts have neither
        return find_hosts(t) if t and ("." in t or ":" in t) else []

    @cached_property
    def content(self) -> int:
        """Counter key part `content`: a digest of the exact content (folded, spacing collapsed)."""
        return folded_content_digest(self.folded)

    @cached_property
    def template_bands(self) -> tuple[int, ...]:
        """Counter keys for `counter.key = ["template"]`: the text's template key, if it has one."""
        k = template_key(self.text)
        return () if k is None else (k,)

    # --- registry: resolved in one pass over the sender's entries, on first use of any of
    # entries / registry_problem / valid_entry / sender_category / owner ---
    def _resolve_registry(self):
        d = self.__dict__
        entries = self.lists.sender_entries(self.sender_key)
        if not entries:
            d.update(_NO_ENTRY_NUMBER if self.sender_num is not None else _NO_ENTRY_NAME)
            return
        d["entries"] = entries
        problem, valid = None, None
        day = self.local_date if any(e.valid_from or e.valid_to for e in entries) else None
        acct = getattr(self.msg, "account", "") or ""
        for e in entries:
            if e.valid_from and day < e.valid_from:
                problem = problem or f"registration valid from {e.valid_from}"
                continue
            if e.valid_to and day > e.valid_to:
                problem = problem or f"registration expired {e.valid_to}"
                continue
            # allowed accounts are ESME system_ids: they restrict SMS, not calls
            if e.accounts and not self.is_call and acct not in e.accounts:
                problem = f"account {acct!r} not allowed to use it"
                continue
            valid, problem = e, None
            break
        d["registry_problem"] = problem
        d["valid_entry"] = valid
        d["sender_category"] = valid.category if valid is not None else \
            "unregistered" if self.sender_num is None else "number"
        d["owner"] = (valid or entries[0]).owner
        d["registered_categories"] = frozenset(e.category for e in entries)

    # entries: the sender's registry entries; registry_problem: None when one is valid now for
    # this account, else why not; valid_entry: that entry; sender_category: QC / CSKH for a valid
    # registered sender, else `unregistered` (a name) or `number`; owner: the advertiser owning
    # the sender (of its valid entry, else of its first entry)
    entries = _Resolved("entries", _resolve_registry)
    registry_problem = _Resolved("registry_problem", _resolve_registry)
    valid_entry = _Resolved("valid_entry", _resolve_registry)
    sender_category = _Resolved("sender_category", _resolve_registry)
    owner = _Resolved("owner", _resolve_registry)
    registered_categories = _Resolved("registered_categories", _resolve_registry)   # of every entry, valid or not

    @property
    def owner_key(self) -> str:
        o = self.owner
        return "o:" + o.casefold() if o is not None else "s:" + str(self.sender_key)
