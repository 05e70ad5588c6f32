"""engine/_stamps.c gives what stamps.py's Python forms give: utc_now() is datetime.now(timezone.utc),
posix(t) is t.timestamp(), the same float (or the same error), and second_key tells two datetimes apart exactly
when their isoformat() differs in more than the microseconds, for datetimes of every kind (UTC, other offsets,
zones with folds, naive) across the range."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import stamps

C = pytest.importorskip("engine._stamps")

ZONES = [timezone.utc, None, timezone(timedelta(hours=7)), timezone(timedelta(0)), ZoneInfo("Asia/Ho_Chi_Minh"),
         ZoneInfo("America/New_York"), ZoneInfo("UTC")]


def _outcome(f, t):
    try:
        return f(t)
    except (OverflowError, ValueError, OSError) as e:
        return type(e)


class Sub(datetime):
    def timestamp(self):
        return 1.5


EDGE = [datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(2026, 12, 6, 5, 22, 3, 123456, tzinfo=timezone.utc),
        datetime(2024, 2, 29, 23, 59, 59, 1, timezone.utc),
        datetime(2100, 3, 1, tzinfo=timezone.utc), datetime(2000, 3, 1, tzinfo=timezone.utc),
        datetime(1, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(2255, 6, 5, 23, 47, 34, 740992, tzinfo=timezone.utc),      # 2**53 us after the epoch
        datetime(2255, 6, 5, 23, 47, 34, 740991, tzinfo=timezone.utc), datetime(1684, 7, 28, 0, 12, 25, 259008,
                                                                                tzinfo=timezone.utc),
        datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1),
        datetime(2026, 3, 8, 2, 30, tzinfo=ZoneInfo("America/New_York")), datetime(2026, 1, 1, 12),
        Sub(2026, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc)]


@pytest.mark.parametrize("t", EDGE, ids=str)
def test_posix_is_timestamp(t):
    assert _outcome(C.posix, t) == _outcome(datetime.timestamp if type(t) is datetime else type(t).timestamp, t)


def _same_second_py(a, b):
    return stamps._second_key(a) == stamps._second_key(b)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), st.sampled_from(ZONES),
       st.integers(0, 1))
@settings(max_examples=500)
def test_posix_on_any_datetime(t, tz, fold):
    t = t.replace(tzinfo=tz, fold=fold)
    a, b = _outcome(C.posix, t), _outcome(datetime.timestamp, t)
    assert a == b and type(a) is type(b)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), st.sampled_from(ZONES),
       st.integers(0, 1), st.integers(-3, 3), st.integers(0, 999999), st.sampled_from(ZONES), st.integers(0, 1))
@settings(max_examples=500)
def test_second_key_tells_seconds_apart_as_python_does(t, tz, fold, ds, us, tz2, fold2):
    a = t.replace(tzinfo=tz, fold=fold)
    for b in (a.replace(microsecond=us), a.replace(microsecond=us, fold=fold2), a.replace(tzinfo=tz2),
              (t + timedelta(seconds=ds)).replace(tzinfo=tz, microsecond=us)):
        assert (C.second_key(a) == C.second_key(b)) == _same_second_py(a, b)
        if C.second_key(a) == C.second_key(b):
            assert a.replace(microsecond=0).isoformat() == b.replace(microsecond=0).isoformat()


def test_utc_now_is_datetime_now_in_utc():
    for _ in range(1000):
        a = datetime.now(timezone.utc)
        c = C.utc_now()
        b = datetime.now(timezone.utc)
        assert a <= c <= b and type(c) is datetime and c.tzinfo is timezone.utc and c.fold == 0
    # the same breakdown of one second: what gmtime gives is what datetime.fromtimestamp gives
    c = C.utc_now()
    assert c == datetime.fromtimestamp(C.posix(c), timezone.utc)


@pytest.mark.skipif(__import__("os").environ.get("TELFILTER_STAMPS_PURE") == "1", reason="Python forms asked for")
def test_the_engine_uses_the_compiled_forms():
    assert stamps.posix is C.posix and stamps.second_key is C.second_key and stamps.utc_now is C.utc_now


def test_the_python_forms_read_a_subclass_as_the_compiled_ones_do(monkeypatch):
    """posix(t) is t.timestamp() in both forms, as MessageContext read it before either: a datetime subclass with
    its own timestamp() (Sub: 1.5) is read through it, not through datetime's."""
    import importlib
    t = Sub(2026, 1, 1, tzinfo=timezone.utc)
    monkeypatch.setenv("TELFILTER_STAMPS_PURE", "1")
    try:
        pure = importlib.reload(stamps)
        assert pure.posix is not C.posix
        assert pure.posix(t) == C.posix(t) == t.timestamp() == 1.5
        assert pure.posix(EDGE[2]) == C.posix(EDGE[2])
    finally:
        monkeypatch.undo()
        importlib.reload(stamps)                     # (the forms the environment asks for, again)
