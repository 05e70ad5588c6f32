"""Condition vocabulary of rule files: every key a rule's `[rule.when]` table may use.

Each `@condition` factory validates its TOML value (raising ValueError with a message the
loader turns into `file:line:col: message`) and returns a pure predicate
`pred(ctx, state) -> evidence | None` (evidence is a short string naming what matched),
which depends only on the condition's key and value, never on the rule it sits in: a plan
evaluates a condition written identically in several rules once per message.
Stateful conditions (counters, recipient history) return a `Stateful` object instead: it
is read while judging and committed only after the verdict, when the message was let
through. The `CONDITIONS` dict doubles as the manifest of what exists.
"""
from __future__ import annotations

import math
import re

from ..numbers import format_number, normalise_number, normalise_sender_id

CONDITIONS: dict = {}
# relative cost of a pure condition, so a rule's plan runs its cheap ones first: 0 compares a
# field already normalised, 1 one set/bitmap look-up or the local time, 2 the sender registry
# (dates, accounts), 3 a scan of the folded text, 9 the classifier; unlisted ones (state
# indexes) count 5
COST: dict = {}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
COUNTER_KEYS = ("sender", "recipient", "owner", "content", "template", "account")


# what a condition reads that only an SMS has (a call has no text, no ESME account): on a call it is
# never true, or (`keywords_absent`, `text_not_regex`, `has_url = false`, ..., a counter keyed by it)
# true for every call alike, one counter row shared by every caller. The loader refuses such a
# condition in a rule that names `call` in applies_to, and leaves `call` out of a rule's default scopes.
SMS_ONLY = {"text_regex": "the SMS text", "text_not_regex": "the SMS text", "keywords": "the SMS text",
            "keywords_absent": "the SMS text", "has_url": "the SMS text", "url_blacklisted": "the SMS text",
            "ml_score_at_least": "the SMS text", "account": "the SMS's ESME account"}
SMS_ONLY_KEY_PARTS = {"content": "the SMS text", "template": "the SMS text", "account": "the SMS's ESME account"}


def sms_only(name, value) -> str | None:
    """What condition `name = value` reads that a call has not, or None when a call has it too."""
    if name == "counter" and isinstance(value, dict):
        key = value.get("key")
        for k in ([key] if isinstance(key, str) else key if isinstance(key, list) else []):
            if k in SMS_ONLY_KEY_PARTS:
                return f"{SMS_ONLY_KEY_PARTS[k]} (key part {k!r})"
        return None
    return SMS_ONLY.get(name)


def condition(name, doc, cost=None):
    def deco(fn):
        CONDITIONS[name] = (fn, doc)
        if cost is not None:
            COST[name] = cost
        return fn
    return deco


def parse_duration(v) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v):   # inf: "forever"
        return float(v)
    if isinstance(v, str):
        if v.strip().lower() in ("forever", "ever"):
            return None
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", v.lower())
        if m and float(m.group(1)) > 0:
            return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    raise ValueError(f"bad duration {v!r}: use e.g. \"30s\", \"5m\", \"1h\", \"24h\", \"7d\" or \"forever\"")


def parse_window(v) -> tuple[int, int]:
    if not isinstance(v, str):
        raise ValueError(f"time window must be a string \"HH:MM-HH:MM\", got {v!r}")
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*-\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*", v)
    if not m:
        # a typeset dash (the README writes "07:00–22:00" in its prose) is a character no editor shows apart from `-`
        dash = next((f" (its dash is U+{ord(c):04X}, not the ASCII '-')" for c in "\u2010\u2011\u2012\u2013\u2014"
                     "\u2015\u2212\ufe63\uff0d" if c in v), "")
        raise ValueError(f"bad time window {v!r}: expected \"HH:MM-HH:MM\"{dash}")
    h1, m1, s1, h2, m2, s2 = (int(x or 0) for x in m.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or s1 > 59 or s2 > 59 \
            or (h1 == 24 and (m1 or s1)) or (h2 == 24 and (m2 or s2)):
        raise ValueError(f"bad time window {v!r}: hours 00-24, minutes and seconds 00-59")
    a, b = h1 * 3600 + m1 * 60 + s1, h2 * 3600 + m2 * 60 + s2
    if a == b:
        raise ValueError(f"empty time window {v!r}")
    if a % 86400 == b % 86400:
        # 24:00 is midnight: "00:00-24:00" holds all day, "24:00-00:00" (wrapping) never
        raise ValueError(f"time window {v!r} is the whole day or none of it (24:00 is 00:00): "
                         f"local_time_inside would always hold or never, local_time_outside the other; "
                         f"leave the condition out")
    return a, b


def _hms(sec: int) -> str:
    # what `f"{local:%H:%M:%S}"` prints, without strftime (≈10x slower on an aware datetime)
    return f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"


def _inside(sec, win):
    a, b = win
    # closed at the start, open at the end; a window may wrap past midnight
    return a <= sec < b if a < b else (sec >= a or sec < b)


def _strs(v, what, allowed=None):
    vals = [v] if isinstance(v, str) else v
    if not isinstance(vals, list) or not vals or not all(isinstance(x, str) for x in vals):
        raise ValueError(f"{what} must be a string or a non-empty list of strings")
    if allowed is not None:
        for x in vals:
            if x not in allowed:
                raise ValueError(f"{what}: {x!r} is not one of {', '.join(allowed)}")
    return vals


def _bool(v, what):
    if not isinstance(v, bool):
        raise ValueError(f"{what} must be true or false, got {v!r}")
    return v


# ---------------------------------------------------------------- message fields

@condition("account", "ESME system_id is one of these", cost=0)
def _account(v, **_):
    vals = set(_strs(v, "account"))
    return lambda c, s: (f"account {c.msg.account}" if getattr(c.msg, "account", "") in vals else None)


@condition("sender", "sender (number or name) is one of these", cost=0)
def _sender(v, **_):
    keys = set()
    for x in _strs(v, "sender"):
        n = normalise_number(x)
        keys.add(n if n is not None else normalise_sender_id(x))
    return lambda c, s: (f"sender {c.sender_raw}" if c.sender_key in keys else None)


@condition("recipient", "recipient / callee number is one of these", cost=0)
def _recipient(v, **_):
    nums = set()
    for x in _strs(v, "recipient"):
        n = normalise_number(x)
        if n is None:
            raise ValueError(f"recipient: not a number: {x!r}")
        nums.add(n)
    return lambda c, s: (f"recipient {c.recipient_raw}" if c.recipient_num in nums else None)


@condition("recipient_kind", "recipient / callee is a `number`, a `shortcode`, or `unreadable` (an address no number "
                            "can be read from: DNC, consent and caps cannot see it; an empty one, a submit_multi's "
                            "distribution list judged without a recipient, is none of them)", cost=0)
def _recipient_kind(v, **_):
    vals = set(_strs(v, "recipient_kind", ["number", "shortcode", "unreadable"]))

    def pred(c, s):
        n = c.recipient_num
        if n is None and not (c.recipient_raw or "").strip():
            # no address at all: a distribution list's members are the SMSC's to know (multi_dests: ""); taken for
            # an unreadable one, every ad to a list judged with distribution_lists = "judge" was dropped 0x0B
            return None
        k = "unreadable" if n is None else "shortcode" if n < 10 ** 6 else "number"
        return (f"recipient {c.recipient_raw!r} is {'unreadable as a number' if n is None else 'a ' + k}"
                if k in vals else None)
    return pred


@condition("sender_kind", "sender is a `name` (alphanumeric), a `number` or a `shortcode`", cost=0)
def _sender_kind(v, **_):
    vals = set(_strs(v, "sender_kind", ["name", "number", "shortcode"]))

    def pred(c, s):
        if c.sender_num is None:
            k = "name"
        else:
            k = "shortcode" if c.sender_num < 10 ** 6 else "number"
        return f"sender is a {k}" if k in vals else None
    return pred


# ---------------------------------------------------------------- registry

@condition("sender_category", "a category of the registry entries valid now for this account (a brand may hold "
                              "QC and CSKH both): QC, CSKH, unregistered (name), number", cost=2)
def _sender_category(v, **_):
    vals = frozenset(_strs(v, "sender_category", ["QC", "CSKH", "unregistered", "number"]))
    return lambda c, s: (f"sender category {'/'.join(sorted(c.sender_categories & vals))}"
                         if c.sender_categories & vals else None)


@condition("sender_registered", "the registry has an entry of this category for the sender, valid or not", cost=2)
def _sender_registered(v, **_):
    vals = set(_strs(v, "sender_registered", ["QC", "CSKH"]))
    return lambda c, s: (f"sender registered {'/'.join(sorted(c.registered_categories & vals))}"
                         if c.registered_categories & vals else None)


@condition("sender_id_unregistered", "alphanumeric sender with no registry entry valid now for this account", cost=2)
def _sender_id_unregistered(v, **_):
    want = _bool(v, "sender_id_unregistered")

    def pred(c, s):
        bad = c.sender_num is None and c.registry_problem is not None       # a name, not valid now
        if bad == want:
            return f"{c.sender_raw.strip()}: {c.registry_problem}" if bad else "sender registered"
        return None
    return pred


# ---------------------------------------------------------------- lists

@condition("sender_blacklisted", "sender / caller number on the number blacklist", cost=1)
def _sender_blacklisted(v, **_):
    want = _bool(v, "sender_blacklisted")

    def pred(c, s):
        hit = c.lists.number_blacklisted(c.sender_num)
        if hit == want:
            return f"{format_number(c.sender_num)} on list:blacklist" if hit else "sender not blacklisted"
        return None
    return pred


@condition("url_blacklisted", "a link or domain-like token in the text falls under a blacklisted domain", cost=3)
def _url_blacklisted(v, **_):
    want = _bool(v, "url_blacklisted")

    def pred(c, s):
        hosts = c.hosts
        found = c.lists.listed_host(hosts) if hosts else None          # no host: nothing can be listed
        if (found is not None) == want:
            if found is None:
                return "no listed URL"
            h, form, d = found          # the host as written, and the form listed (IDNA, a look-alike's name)
            if form is None:            # an address, on the blacklist's addresses / networks (d: as a browser reads h)
                return f"{d} on the listed addresses" + ("" if d == h else f" (link host {_cut(h)})")
            return f"{_cut(h) if form == h else f'{_cut(h)} ({_cut(form)})'} under listed domain {d}"
        return None
    return pred


@condition("has_url", "the text carries a link or domain-like token", cost=3)
def _has_url(v, **_):
    want = _bool(v, "has_url")
    return lambda c, s: (("url " + _cut(c.hosts[0])) if c.hosts else "no url") if bool(c.hosts) == want else None


HOST_SHOWN = 64


def _cut(host: str) -> str:
    """A host as evidence: its last HOST_SHOWN characters (where its domain is), a padded one's "…" before them.
    A link's host may be kilobytes long in a 64 KB message_payload; a verdict line carries at most this of it."""
    return host if len(host) <= HOST_SHOWN else "\u2026" + host[1 - HOST_SHOWN:]


@condition("recipient_dnc", "recipient / callee on the DNC list for channel S (SMS ads) or V (call ads); both counts for either", cost=1)
def _recipient_dnc(v, **_):
    if v not in ("S", "V"):
        why = "; a number registered SV counts for S and for V: name the channel the rule's ads use" \
            if isinstance(v, str) and v.upper() in ("SV", "VS") else \
            f"; did you mean {v.upper()!r}?" if isinstance(v, str) and v.upper() in ("S", "V") else ""
        raise ValueError(f"recipient_dnc must be \"S\" or \"V\", got {v!r}{why}")
    return lambda c, s: (f"{format_number(c.recipient_num)} on list:dnc {v}"
                         if c.lists.in_dnc(c.recipient_num, v) else None)


@condition("consent", "recipient / callee opted in to the sender's owner (true) or did not (false)", cost=2)
def _consent(v, **_):
    want = _bool(v, "consent")

    def pred(c, s):
        has = c.lists.has_consent(c.owner, c.recipient_num)
        if has == want:
            return f"consent for {c.owner}" if has else "no consent"
        return None
    return pred


# ---------------------------------------------------------------- text

# text_regex, text_not_regex, keywords and keywords_absent live in textconds.py; importing it here registers them
# in this place of CONDITIONS. lint.py and tests import _fold_pattern and _keyword_re from here.
from . import textconds  # noqa: E402,F401  (registration)
from .textconds import _fold_pattern, _keyword_re  # noqa: E402,F401  (re-exported)


# ---------------------------------------------------------------- time

@condition("local_time_inside", "local time of day inside \"HH:MM-HH:MM\" (start included, end excluded)", cost=1)
def _inside_c(v, **_):
    w = parse_window(v)
    return lambda c, s: f"local time {_hms(c.local_seconds)} inside {v}" if _inside(c.local_seconds, w) else None


@condition("local_time_outside", "local time of day outside \"HH:MM-HH:MM\"", cost=1)
def _outside_c(v, **_):
    w = parse_window(v)
    return lambda c, s: None if _inside(c.local_seconds, w) else f"local time {_hms(c.local_seconds)} outside {v}"


@condition("weekdays", "local weekday is one of mon..sun", cost=1)
def _weekdays(v, **_):
    days = {WEEKDAYS.index(d) for d in _strs(v, "weekdays", WEEKDAYS)}
    return lambda c, s: f"weekday {WEEKDAYS[c.local_weekday]}" if c.local_weekday in days else None


# ---------------------------------------------------------------- ML

@condition("ml_score_at_least", "the classifier's spam probability is at least this (SMS text only)", cost=9)
def _ml(v, **_):
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
        raise ValueError(f"ml_score_at_least must be a number in [0, 1], got {v!r}")
    return lambda c, s: (f"spam probability {c.ml_score:.4f}" if c.ml_score is not None and c.ml_score >= v else None)


# The stateful conditions (reports, call durations, counters, recipient history) live in
# stateful.py; importing it registers them in CONDITIONS.
from . import stateful  # noqa: E402,F401  (registration)
from .stateful import Stateful  # noqa: E402,F401  (re-exported: the loader imports it from here)
