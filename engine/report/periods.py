"""The report's periods: days, ISO weeks (from Monday) or months, of local dates (no I/O here)."""
from __future__ import annotations

from datetime import date, timedelta

MAX_FILLED = 3700        # periods a series is filled out to (ten years by day)


def period_start(d: date, period: str) -> date:
    if period == "week":
        return d - timedelta(days=d.weekday())      # ISO weeks start on Monday
    if period == "month":
        return d.replace(day=1)
    return d


def _next_period(p: date, period: str) -> date:
    if period == "month":
        return date(p.year + p.month // 12, p.month % 12 + 1, 1)
    return p + timedelta(days=7 if period == "week" else 1)


def fill(keys: set, lo: date | None, hi: date | None, period: str) -> list[date]:
    """`keys` (the periods with counts) and every period from `lo` to `hi` between them, sorted: a day left out
    put its neighbours' bars side by side. Past MAX_FILLED periods (a stray line years away) only `keys`, so one
    damaged time cannot make the tables and plots millions of rows."""
    lo, hi = lo or hi, hi or lo
    if lo is None or lo > hi or (hi - lo).days > MAX_FILLED * {"day": 1, "week": 7, "month": 31}[period]:
        return sorted(keys)
    p = period_start(lo, period)
    while p <= hi:
        keys.add(p)
        p = _next_period(p, period)
    return sorted(keys)
