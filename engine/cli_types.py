"""The value types of `telfilter`'s options (argparse `type=`): each refuses a bad value with a message that says
what the option wants, before the command runs."""
from __future__ import annotations

import argparse
import re
from datetime import date


def rate(v: str) -> float:
    """A share strictly between 0 and 1 (argparse type): a blocked-ham target, a held-out share."""
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {v!r}") from None
    if not 0 < x < 1:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1 (0.001 = 0.1%), got {v!r}")
    return x


MAX_SECONDS = 86400.0     # a day: beyond ~9.2e9 s socket.settimeout and the event loop's timers overflow


def _seconds(v: str) -> float:
    """A positive number of seconds, at most MAX_SECONDS (argparse type): `ctl --timeout 1e10` was taken, then
    crashed in socket.settimeout (OverflowError, a traceback)."""
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {v!r}") from None
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {v!r}")
    if x > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS:g} seconds (a day), got {v!r}")
    return x


def whole_number(v: str) -> int:
    """`v` as an int, else the argparse error every whole-number option gives."""
    try:
        return int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {v!r}") from None


def seed(v: str) -> int:
    """A random seed (argparse type): numpy's and scikit-learn's range, 0 to 2**32 - 1; outside it their own
    error named a parameter (`random_state`) the command does not have."""
    n = whole_number(v)
    if not 0 <= n <= 2**32 - 1:
        raise argparse.ArgumentTypeError(f"must be 0 to {2**32 - 1}, got {v!r}")
    return n


def _zero_or_more(v: str) -> int:
    """A whole number of at least 0 (argparse type): how many of something to show."""
    n = whole_number(v)
    if n < 0:       # a slice's bound: -1 quietly showed none
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {v!r}")
    return n


def _at_least_one(v: str) -> int:
    """A whole number of at least 1 (argparse type): a table's rows."""
    n = whole_number(v)
    if n < 1:       # a slice's bound: -1 would quietly leave out the last row, 0 every row
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {v!r}")
    return n


def _reload_part(s: str) -> str:
    # not `choices`: argparse (3.11) checks an empty nargs="*" against them and refuses "no PART"
    from .control_reload import RELOAD_PARTS
    if s not in RELOAD_PARTS:
        raise argparse.ArgumentTypeError(f"{s!r} is not one of {', '.join(RELOAD_PARTS)}")
    return s


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def day(v: str) -> date:
    """A date YYYY-MM-DD (argparse type of every --from/--to: `verdicts`, `report`; argparse names the option and the
    value when it is not one). Only that form: date.fromisoformat (3.11) also takes 20261207 and 2026-W49-1, which
    the help does not promise and a typo (a day's digits run together) should not quietly become."""
    try:
        if _DAY.fullmatch(v):
            return date.fromisoformat(v)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD, got {v!r}")


def date_order_error(date_from: date | None, date_to: date | None) -> str | None:
    """What is wrong with a --from/--to pair (`day`s; either may be absent), or None: one check for every command
    that takes both."""
    if date_from and date_to and date_from > date_to:
        return f"--from {date_from} is after --to {date_to}"
    return None
