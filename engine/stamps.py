"""The two reads of a message's datetime made on every verdict: its POSIX time (MessageContext.ts) and what
tells its second apart (the verdict line's stamp, made once a second: verdictlog._isoformat).

Each costs ~2,400 instructions in Python (datetime.timestamp() does its arithmetic in Python ints; eight
attribute reads are eight descriptor calls), ~1% of a submit_sm through the SMPP proxy together; the compiled
module (engine/_stamps.c) does both from the fields. Absent, or with TELFILTER_STAMPS_PURE=1, the Python
forms below are used; tests check both agree.
"""
from __future__ import annotations

import os
from datetime import datetime


def _second_key(t: datetime) -> tuple:
    return (t.second, t.minute, t.hour, t.day, t.month, t.year, t.fold), t.tzinfo


posix = datetime.timestamp          # posix(t): t.timestamp()
second_key = _second_key            # second_key(t): equal for two datetimes whose isoformat() differs at most
                                    # in the microseconds (the same fields down to the second, fold and zone)
if not os.environ.get("TELFILTER_STAMPS_PURE"):
    try:
        from ._stamps import posix, second_key          # noqa: F811
    except ImportError:
        pass
