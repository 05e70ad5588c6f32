"""Per-message context: the facts checks read, computed once and only when asked for.

A `MessageContext` wraps a `Message` or `Call` with its normalised numbers, local time,
folded text, URL hosts, registry entry and fingerprints. Everything is lazy (checks that
do not need the folded text never pay for it) and read-only: checks are pure functions of
(context, lists, state).
"""
from __future__ import annotations

from datetime import datetime, timezone

from .numbers import normalise_number, normalise_sender_id
from .textnorm import content_key, find_hosts, fold, template_key
from .verdict import Call, Message


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
        self.model = None                         # set by the pipeline; scored only when asked

    @cached_property
    def ml_score(self) -> float | None:
        """Spam probability of the SMS text, computed on first use (the ML stage or a rule)."""
        if self.model is None or self.is_call or not self.text:
            return None
        return self.model.score(self.text)

    @property
    def sender_is_name(self) -> bool:
        return self.sender_num is None

    @cached_property
    def local(self) -> datetime:
        return self.time.astimezone(self.tz)

    @cached_property
    def local_seconds(self) -> int:
        lt = self.local
        return lt.hour * 3600 + lt.minute * 60 + lt.second

    @cached_property
    def folded(self) -> str:
        return fold(self.text)

    @cached_property
    def hosts(self) -> list[str]:
        return find_hosts(self.text) if self.text else []

    @cached_property
    def content(self) -> str:
        return content_key(self.text)

    @cached_property
    def template_bands(self) -> tuple[int, ...]:
        """Counter keys for `counter.key = ["template"]`: the text's template key, if it has one."""
        k = template_key(self.text)
        return () if k is None else (k,)

    # --- registry ---
    @cached_property
    def entries(self) -> tuple:
        return self.lists.sender_entries(self.sender_key)

    @cached_property
    def registry_problem(self) -> str | None:
        """None when the sender has an entry valid now for this account, else why not."""
        if not self.entries:
            return "not in the sender registry"
        d = self.local.date()
        acct = getattr(self.msg, "account", "") or ""
        why = None
        for e in self.entries:
            if e.valid_from and d < e.valid_from:
                why = why or f"registration valid from {e.valid_from}"
                continue
            if e.valid_to and d > e.valid_to:
                why = why or f"registration expired {e.valid_to}"
                continue
            # allowed accounts are ESME system_ids: they restrict SMS, not calls
            if e.accounts and not self.is_call and acct not in e.accounts:
                why = f"account {acct!r} not allowed to use it"
                continue
            return None
        return why

    @cached_property
    def valid_entry(self):
        if self.registry_problem is not None:
            return None
        d = self.local.date()
        acct = getattr(self.msg, "account", "") or ""
        for e in self.entries:
            if (not e.valid_from or d >= e.valid_from) and (not e.valid_to or d <= e.valid_to) \
                    and (not e.accounts or self.is_call or acct in e.accounts):
                return e
        return None

    @cached_property
    def sender_category(self) -> str:
        """QC / CSKH for a valid registered sender, else `unregistered` (a name) or `number`."""
        e = self.valid_entry
        if e is not None:
            return e.category
        return "unregistered" if self.sender_is_name else "number"

    @cached_property
    def registered_categories(self) -> frozenset:
        return frozenset(e.category for e in self.entries)

    @cached_property
    def owner(self) -> str | None:
        e = self.valid_entry or (self.entries[0] if self.entries else None)
        return e.owner if e else None

    @property
    def owner_key(self) -> str:
        o = self.owner
        return "o:" + o.casefold() if o is not None else "s:" + str(self.sender_key)
