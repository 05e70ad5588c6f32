"""The verdict line's stamp (verdictlog._isoformat, its part down to the second made once a second) is
t.isoformat() whatever came before: datetimes that share all but one of the second's fields, the zone or the
fold, in a row, with the compiled key (engine/_stamps.c) and the Python one."""
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from engine import stamps, verdictlog

NY = ZoneInfo("America/New_York")


def _series():
    base = datetime(2026, 11, 1, 1, 30, 15, 250000, tzinfo=NY)
    out = [base, base.replace(fold=1), base.replace(microsecond=0), base.replace(tzinfo=timezone.utc),
           base.replace(tzinfo=timezone(timedelta(hours=-5))), base.replace(tzinfo=None)]
    for f in ("year", "month", "day", "hour", "minute", "second"):
        out.append(base.replace(**{f: getattr(base, f) + 1}))
        out.append(base)
    r = random.Random(5)
    for _ in range(2000):
        t = datetime(2026, 1, 1) + timedelta(seconds=r.randrange(400 * 86400), microseconds=r.choice((0, 1, 999999)))
        out.append(t.replace(tzinfo=r.choice((timezone.utc, NY, None, timezone(timedelta(hours=7)))),
                             fold=r.randint(0, 1)))
    return out


@pytest.mark.parametrize("key", ["compiled", "python"])
def test_stamp_is_isoformat_in_any_order(key, monkeypatch):
    if key == "python":
        monkeypatch.setattr(verdictlog, "second_key", stamps._second_key)
    elif verdictlog.second_key is stamps._second_key:
        pytest.skip("engine._stamps not built")
    monkeypatch.setattr(verdictlog, "_STAMP", [None, "", ""])
    for t in _series():
        assert verdictlog._isoformat(t) == t.isoformat()
