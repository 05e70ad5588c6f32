"""A message's datetime: the clock read that makes it (the SMPP proxy's `utc_now`) and the two reads of it made
on every verdict: its POSIX time (MessageContext.ts) and what tells its second apart (the verdict line's stamp,
made once a second: verdictlog._isoformat).

Each costs ~2,400-2,900 instructions in Python (datetime.now makes two datetimes; datetime.timestamp() does its
arithmetic in Python ints; eight attribute reads are eight descriptor calls), ~1.5% of a submit_sm through the
SMPP proxy together; the compiled module (engine/_stamps.c) does them from the fields. Absent, or with
TELFILTER_STAMPS_PURE=1, the Python forms below are used; tests check both agree.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from functools import partial
from operator import methodcaller


def _second_key(t: datetime) -> tuple:
    return (t.second, t.minute, t.hour, t.day, t.month, t.year, t.fold), t.tzinfo


utc_now = partial(datetime.now, timezone.utc)      # utc_now(): datetime.now(timezone.utc)
posix = methodcaller("timestamp")   # posix(t): t.timestamp() (a subclass's own too, as _stamps.c and the old read;
                                    # datetime.timestamp(t) would skip it)
second_key = _second_key            # second_key(t): equal for two datetimes whose isoformat() differs at most
                                    # in the microseconds (the same fields down to the second, fold and zone)
if os.environ.get("TELFILTER_STAMPS_PURE") != "1":
    try:
        from ._stamps import posix, second_key, utc_now          # noqa: F811
    except ImportError:
        pass
