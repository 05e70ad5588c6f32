"""JSON records <-> domain objects, shared by `telfilter check`, rule examples and tests.

SMS:  {"id", "kind": "sms", "sender", "recipient", "text", "account", "direction": "mt"|"mo", "time", "submitted",
       "sender_ton", "recipient_ton"}
Call: {"id", "kind": "call", "caller", "callee", "time"}
`time` is ISO-8601 with an offset or Z. `id`, `account`, `direction` and `submitted` are optional.
`submitted`: a message scheduled ahead (SMPP schedule_delivery_time) was submitted then and is delivered
at `time` (not later than `time`). `sender_ton` / `recipient_ton`: the SMPP type of number the address came with
(0-255, 0 = unknown when not given; numbers.normalise_number reads 1 and 2), as the proxy's verdict log names it
when it decided the reading: a verdict line replays as it was judged.
"""
from __future__ import annotations

import math
from datetime import date, datetime, timezone
from datetime import time as dtime

from .verdict import Call, Message

# The instants a record may name: the years an SMPP time can (20YY), well inside the counters' 32-bit seconds
YEARS = (2000, 2099)
MAX_CALL_SECONDS = 30 * 86400       # a call record's duration at most (the history keeps 32-bit seconds)


class RecordError(ValueError):
    pass


def parse_time(v) -> datetime:
    if not isinstance(v, str) or not v.strip():
        raise RecordError("time must be an ISO-8601 string with an offset or Z")
    s = v.strip()
    if s[-1] in "zZ":
        s = s[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise RecordError(f"bad time {v!r}: expected ISO-8601 with an offset or Z") from None
    if t.tzinfo is None:
        raise RecordError(f"time {v!r} has no offset: add Z or +07:00")
    try:
        year = t.astimezone(timezone.utc).year
    except OverflowError:
        year = t.year
    if not YEARS[0] <= year <= YEARS[1]:
        raise RecordError(f"time {v!r} is outside {YEARS[0]}-{YEARS[1]} (UTC)")
    return t


def _str(obj, key, required=True, default=""):
    if key not in obj or obj[key] is None:
        if required:
            raise RecordError(f"missing required field {key!r}")
        return default
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise RecordError(f"field {key!r} must be a string")
    return str(v)


def _ton(obj, key) -> int:
    v = obj.get(key)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255:
        raise RecordError(f"{key} must be an SMPP type of number, an integer 0-255, got {v!r}")
    return v


def parse_record(obj) -> Message | Call:
    if not isinstance(obj, dict):
        raise RecordError("line is not a JSON object")
    kind = obj.get("kind")
    if kind is None:
        raise RecordError("missing required field 'kind'")
    rid = obj.get("id")
    if kind == "sms":
        direction = _str(obj, "direction", False, "").lower() or None     # None: the record does not say
        if direction not in ("mt", "mo", None):
            raise RecordError(f"direction must be mt or mo, got {obj['direction']!r}")
        t = parse_time(obj.get("time"))
        sub = None
        if obj.get("submitted") is not None:
            sub = parse_time(obj["submitted"])
            if sub > t:
                raise RecordError(f"submitted {obj['submitted']!r} is after time {obj.get('time')!r} (its delivery)")
            if sub == t:
                sub = None
        return Message(sender=_str(obj, "sender"), recipient=_str(obj, "recipient"),
                       text=_str(obj, "text"), time=t, account=_str(obj, "account", False),
                       direction=direction, id=rid, submitted=sub, sender_ton=_ton(obj, "sender_ton"),
                       recipient_ton=_ton(obj, "recipient_ton"))
    if kind == "call":
        dur = obj.get("duration")
        if dur is not None and (isinstance(dur, bool) or not isinstance(dur, (int, float)) or
                                not (isinstance(dur, int) or math.isfinite(dur)) or not 0 <= dur <= MAX_CALL_SECONDS):
            raise RecordError(f"duration must be a number of seconds from 0 to {MAX_CALL_SECONDS} (30 days), "
                              f"got {dur!r}")
        return Call(caller=_str(obj, "caller"), callee=_str(obj, "callee"), time=parse_time(obj.get("time")),
                    ingress=_str(obj, "ingress", False), id=rid, duration=dur)
    raise RecordError(f"unknown kind {kind!r} (sms or call)")


EMPTY_TEXT = "field 'text' is empty (an SMS to judge has a text)"


def parse_input_record(obj) -> Message | Call:
    """A line of `check --jsonl` or of a `rules test` corpus: parse_record's record, an SMS whose text is empty
    refused as a missing one is (a corpus's lost column, a script's empty variable: judged, it was an allow that
    said nothing of the text). A rule example (example_record) may leave the text out: its rule does not read it."""
    rec = parse_record(obj)
    if rec.kind == "sms" and rec.text == "":
        raise RecordError(EMPTY_TEXT)
    return rec


EXAMPLE_DEFAULTS = {"sms": {"sender": "0901234567", "recipient": "0912999999", "text": "",
                            "account": "esme-a", "direction": "mt", "time": "2026-03-02T10:00:00+07:00"},
                    "call": {"caller": "0901234567", "callee": "0912999999", "time": "2026-03-02T10:00:00+07:00"}}


def example_record(d: dict) -> Message | Call:
    kind = d.get("kind", "sms")
    full = dict(EXAMPLE_DEFAULTS.get(kind, {}), kind=kind)
    full.update({k: v for k, v in d.items() if k != "prior"})
    for k in ("time", "submitted"):
        # a TOML date-time (`time = 2026-03-02T23:00:00+07:00`, unquoted) as the string it is written as: it was
        # refused as no ISO-8601 string; one without an offset is still refused for that
        if isinstance(full.get(k), (datetime, date, dtime)):
            full[k] = full[k].isoformat()
    return parse_record(full)
