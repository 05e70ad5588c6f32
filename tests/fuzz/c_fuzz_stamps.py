"""c_fuzz's `stamps` target: engine/_stamps.c against stamps.py's Python forms on datetimes of every kind a caller
can hand them (years 1 to 9999 and the 2**53-microsecond edges, microsecond 0/1/999999, fold 0/1, datetime
subclasses with and without their own timestamp(), fixed offsets named and not, zoneinfo zones with folds and
gaps, a tzinfo whose utcoffset() raises or gives None, tzinfos equal to each other whose offset moves with the
minute, an offset of a day less a microsecond):

- posix(t) is t.timestamp() bit for bit, or raises the same error;
- second_key(t) == second_key(u) exactly when the Python key says so, and then t and u have the same isoformat()
  down to the second (verdictlog._isoformat's cache).
"""
from __future__ import annotations

import random
import struct
import time
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo


class _Sub(datetime):
    pass


class _OwnTimestamp(datetime):
    def timestamp(self):
        return 1.5


class _Raising(tzinfo):
    def utcoffset(self, dt):
        raise RuntimeError("utcoffset raised")


class _NoOffset(tzinfo):
    def utcoffset(self, dt):
        return None


class _Moving(tzinfo):                              # every _Moving is equal; the offset moves with the minute
    def utcoffset(self, dt):
        return timedelta(minutes=dt.minute % 7)

    def __eq__(self, o):
        return isinstance(o, _Moving)

    def __hash__(self):
        return 1


class _Day(tzinfo):
    def utcoffset(self, dt):
        return timedelta(days=1, microseconds=-1)


ZONES = [timezone.utc, None, timezone(timedelta(hours=7)), timezone(timedelta(hours=7), "ICT"),
         timezone(timedelta(0), "UTC"), timezone.min, timezone.max, ZoneInfo("Asia/Ho_Chi_Minh"),
         ZoneInfo("America/New_York"), ZoneInfo.no_cache("America/New_York"), ZoneInfo("Australia/Lord_Howe"),
         ZoneInfo("UTC"), _Raising(), _NoOffset(), _Moving(), _Moving(), _Day()]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EDGES = [_EPOCH + timedelta(microseconds=s * (2 ** 53 + k)) for s in (1, -1) for k in range(-3, 4)]


def _outcome(f, t):
    try:
        r = f(t)
        return "ok", struct.pack("<d", r) if type(r) is float else r, type(r)
    except Exception as e:                      # noqa: BLE001 -- the other form must raise the same
        return "raised", type(e), str(e)


def _datetime(rnd) -> datetime:
    y = rnd.choice([1, 2, 1684, 1685, 1969, 1970, 2255, 2256, 9998, 9999]) if rnd.random() < 0.15 \
        else rnd.randrange(1, 10000)
    m, d = rnd.randrange(1, 13), rnd.randrange(1, 32)
    while True:
        try:
            datetime(y, m, d)
            break
        except ValueError:
            d -= 1
    return rnd.choice([datetime, _Sub, _OwnTimestamp])(
        y, m, d, rnd.randrange(24), rnd.randrange(60), rnd.randrange(60),
        rnd.choice([0, 1, 999999, rnd.randrange(10 ** 6)]), tzinfo=rnd.choice(ZONES), fold=rnd.randrange(2))


def _iso_second(t):
    return _outcome(lambda x: datetime.isoformat(x.replace(microsecond=0)), t)


def stamps(seconds: float, seed: int) -> dict:
    from engine import _stamps as c
    from engine.stamps import _second_key
    rnd = random.Random(seed)
    n = {"datetimes": 0}
    end = time.monotonic() + seconds
    batch = EDGES
    while time.monotonic() < end:
        for t in batch:
            n["datetimes"] += 1
            assert _outcome(c.posix, t) == _outcome(lambda x: x.timestamp(), t), ("posix", repr(t))
            u = rnd.choice([t.replace(microsecond=rnd.randrange(10 ** 6)), t.replace(fold=1 - t.fold),
                            t.replace(tzinfo=rnd.choice(ZONES)), _datetime(rnd),
                            t + timedelta(seconds=rnd.choice([-1, 1])) if 1 < t.year < 9999 else t])
            same = c.second_key(t) == c.second_key(u)
            assert same == (_second_key(t) == _second_key(u)), ("second_key", repr(t), repr(u))
            assert not same or _iso_second(t) == _iso_second(u), ("isoformat", repr(t), repr(u))
        batch = [_datetime(rnd) for _ in range(500)]
    return n
