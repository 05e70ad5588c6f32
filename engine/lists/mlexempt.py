"""The ML exemption list: sender numbers the classifier's ML_SPAM hit does not apply to, each until a date.

    mlexempt.csv   number,valid_to,note
                   0912345678,2026-12-31,CSKH-48213 wedding invitations dropped as spam

The care desk's remedy for a subscriber whose own messages the classifier wrongly drops (a false positive): the
number is exempt from ML_SPAM, and from nothing else (DNC, blacklist, registry, quotas, time windows and the rule
files still judge it; a rule that reads the score, ml_score_at_least, still reads it). A message the classifier
would have tagged or dropped says so in its verdict: an ML_EXEMPT hit, score 0, no forced action (pipeline.py).

Every row expires (`valid_to` is required, inclusive, read against the message's local day as a registration's
valid_to is), no later than HORIZON_DAYS from the day it is written (the `[engine] timezone`'s day: ListStore.today):
an exemption is a ticket's remedy, looked at again, never a permanent allowlist. A row past its valid_to leaves the
list at the list's next add or import and is not exported (ListStore.drop_expired, export). `note` (optional) says
why: one line of at most NOTE_MAX characters. One row a number (a second replaces it: a renewal); at most
MAX_ENTRIES numbers. Registering the subscriber as a CSKH sender
exempted it too (`skip_registered_senders`), but put a person in the brandname registry.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from .csvio import _date, _subscriber

HORIZON_DAYS = 366          # the latest valid_to an import or add takes: today + this (a year, a leap day included)
NOTE_MAX = 200              # characters of a note (a ticket number and a reason)
MAX_ENTRIES = 100_000       # numbers on the list: the desk's remedies, not a second registry


@dataclass(frozen=True, slots=True)
class MlExemption:
    number: int                 # E.164, as the message's sender is normalised (MessageContext.sender_num)
    valid_to: date              # the last local day it exempts
    note: str = ""


def today(tz=None) -> date:
    """The day an import or add is made on (the horizon counts from it), in `tz`: the `[engine] timezone`, whose
    local day a message's exemption is read against (ListStore.today); None: the host's."""
    return datetime.now(tz).date() if tz is not None else date.today()


def parse_row(row: list[str], strict: bool = True, now: date | None = None) -> MlExemption:
    """A CSV row (number, valid_to, note) -> MlExemption, or ValueError with the reason. `strict=False` (a snapshot's
    rows, a removal's value): the row as stored, without the checks against today's date. `now`: today
    (ListStore.today, the engine's local day; None: the host's)."""
    number, vt, note = row[0].strip(), row[1].strip(), row[2].strip()
    if not number:
        raise ValueError("empty number")
    n = _subscriber(number, strict)
    if not vt:
        raise ValueError(f"valid_to is required (YYYY-MM-DD, the last day it exempts; at most {HORIZON_DAYS} days "
                         "ahead): an ML exemption always expires")
    to = _date(vt, "valid_to")
    if strict:
        now = now or today()
        if to < now:
            raise ValueError(f"valid_to {to} is before today ({now}): the row would exempt nothing")
        if to > now + timedelta(days=HORIZON_DAYS):
            raise ValueError(f"valid_to {to} is more than {HORIZON_DAYS} days ahead (latest "
                             f"{now + timedelta(days=HORIZON_DAYS)}): an ML exemption is renewed, never permanent")
    if len(note) > NOTE_MAX:
        raise ValueError(f"note of {len(note)} characters: at most {NOTE_MAX} (a ticket number and a reason)")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in note):
        raise ValueError("note must be one line (no line breaks or control characters)")
    return MlExemption(n, to, note)


def row_of(e: MlExemption) -> list[str]:
    from ..numbers import format_number
    return [format_number(e.number), e.valid_to.isoformat(), e.note]


def expired(rows: dict, day: date) -> list[int]:
    """The numbers of `rows` (number -> MlExemption) whose exemption ended before local day `day`: exempting nothing."""
    return [n for n, e in rows.items() if e.valid_to < day]


def expired_left(n: int) -> str | None:
    """What an add or import says when `n` rows past their valid_to left the list with it (None: none did)."""
    return f"{n} mlexempt row(s) past their valid_to left the list (they exempt nothing now)" if n else None


def in_force(e: MlExemption | None, day: date) -> bool:
    """Whether exemption `e` applies to a message of local day `day` (valid_to inclusive)."""
    return e is not None and day <= e.valid_to
