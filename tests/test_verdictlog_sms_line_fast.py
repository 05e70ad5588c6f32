"""engine/_smsline.h's sms_line gives, character for character, verdictlog._sms_line's line for a judged SMS (the
Python form, kept as the reference and the fallback), or None -- and only outside its common case (a UTC time, ASCII
names and addresses, float score and time), where the Python form makes it; VerdictLog.write_sms writes the same
line with it and without it, optional members (a schedule, a reading, a status, a late part, a number read by its
type of number) included."""
import io
import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import verdictlog
from engine.verdict import Action, Hit, Message, Verdict

C = pytest.importorskip("engine._stamps").sms_line
ACTIONS = list(Action)
ZONES = [timezone.utc, None, timezone(timedelta(hours=7)), timezone(timedelta(0)), ZoneInfo("UTC")]
# every character class the JSON encoder treats apart: controls, '"', '\\', DEL, non-ASCII, a lone surrogate (a
# peer's undecodable byte as the codec keeps it)
TEXT = st.text(st.one_of(st.characters(max_codepoint=0x7f), st.sampled_from('"\\\x00\x1f\x7f\b\f\n\r\té\u20ac\U0001f600\udcff')),
               max_size=40)
NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**16, 10**16),
                   st.sampled_from([0.0, -0.0, 1e11, -1e11, 99999999999.99995, 1e15, -1e15, 0.05, 0.15, 2.5e-5,
                                    0.00005, -0.00004, 12.25, 12.35, math.nextafter(1e11, 0), math.nextafter(1e15, 0)]))
HITS = st.sampled_from(["[]", '[{"symbol": "X", "detail": "\u0111\u1ec3"}]', '[{"d": "\U0001f600 \udcff"}]',
                        '[{"symbol": "AD_TO_DNC", "score": 15.0}]'])


class _V:                   # what the Python form reads of a verdict: any score, as Verdict holds it
    def __init__(self, action, score, hits):
        self.action, self.score, self.hits = action, score, hits


def _py(when, pdu, account, sender, recipient, action, score, hits, judge_us):
    msg = Message(sender, recipient, "t", when, account)
    v = _V(action, score, ())
    line = verdictlog._sms_line(msg, pdu, v, judge_us, False, None, None, False, None, False, "", None, "")
    return line.replace('"hits": []', '"hits": ' + hits, 1)


def _both(when, pdu, account, sender, recipient, action, score, hits, judge_us):
    c = C(when, pdu, account, sender, recipient, verdictlog._ACTION_NAME[action], score, hits, judge_us)
    assert c is None or c == _py(when, pdu, account, sender, recipient, action, score, hits, judge_us)
    return c


def _common(when, texts, score, judge_us) -> bool:
    return (type(when) is datetime and when.tzinfo is timezone.utc and all(t.isascii() for t in texts)
            and type(score) is float and -1e11 < score < 1e11 and type(judge_us) is float and -1e15 < judge_us < 1e15)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)), st.sampled_from(ZONES),
       TEXT, TEXT, TEXT, TEXT, st.sampled_from(ACTIONS), NUMBER, HITS, NUMBER)
@settings(max_examples=1000, deadline=None)
def test_sms_line_is_the_python_line(t, tz, pdu, account, sender, recipient, action, score, hits, judge_us):
    when = t.replace(tzinfo=tz)
    c = _both(when, pdu, account, sender, recipient, action, score, hits, judge_us)
    assert (c is not None) == _common(when, (pdu, account, sender, recipient), score, judge_us)


ASCII = st.text(st.characters(max_codepoint=0x7f), max_size=40)
FLOAT = st.floats(-1e11, 1e11, exclude_min=True, exclude_max=True)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)), ASCII, ASCII, ASCII, ASCII,
       st.sampled_from(ACTIONS), FLOAT, HITS, st.floats(-1e15, 1e15, exclude_min=True, exclude_max=True))
@settings(max_examples=1000, deadline=None)
def test_sms_line_in_its_common_case(t, pdu, account, sender, recipient, action, score, hits, judge_us):
    when = t.replace(tzinfo=timezone.utc)
    assert _both(when, pdu, account, sender, recipient, action, score, hits, judge_us) is not None


@pytest.mark.parametrize("when", [datetime(2026, 12, 7, 6, 30, 1, 5, timezone.utc), datetime(1, 1, 1, tzinfo=timezone.utc),
                                  datetime(9999, 12, 31, 23, 59, 59, 999999, timezone.utc),
                                  datetime(999, 1, 1, 0, 0, 0, 100000, timezone.utc)])
@pytest.mark.parametrize("score,judge_us", [(0.0, 0.0), (-0.0, -0.0), (15.0, 123.45), (-3.25, 0.05), (1e10, 1e14),
                                            (0.00005, 99.95), (-0.00004, 7.25), (2.0000000001, 7.25)])
def test_sms_line_edges(when, score, judge_us):
    for sender, recipient in (("BRAND", "84912345678"), ('"\\\x00\x1f\x7f', "\t\n\r\b\f"), ("", "x" * 5000)):
        assert _both(when, "submit_sm", "acct", sender, recipient, Action.TAG, score, "[]", judge_us) is not None


HIT = Hit("AD_TO_DNC", 15.0, "+84912000001 on list:dnc S; \"quoted\" \u0111", "config/rules/20-ads.toml:193",
          Action.DROP, 0x45)
NOW = datetime(2026, 12, 7, 6, 30, 1, 250000, timezone.utc)


@pytest.mark.parametrize("hits", [(), (HIT,), (Hit("A", 1.5, "\U0001f600", "x"), Hit("B", 2, "", "y"))])
@pytest.mark.parametrize("sender,s_ton", [("84912345678", 1), ("0912345678", 1), ("ngu\u1ec5n", 5), ("\udcff12", 0),
                                          ("VNPT", 5)])
@pytest.mark.parametrize("kw", [{}, {"binary": True}, {"reading": "gsm"}, {"status": 0x45}, {"late": True},
                                {"concat": "c-1"}, {"mo": "00ff", "redelivery": True}, {"scheduled": True}])
@pytest.mark.parametrize("when", [NOW, NOW.replace(microsecond=0), NOW.astimezone(timezone(timedelta(hours=7)))])
def test_write_sms_writes_the_same_line_either_way(monkeypatch, hits, sender, s_ton, kw, when):
    kw = dict(kw)
    msg = Message(sender, "0987000666", "text", when, "bench", "mt", s_ton, 0)
    if kw.pop("scheduled", False):
        msg.submitted, msg.time = when, when + timedelta(hours=3)
    v = Verdict(Action.DROP if hits else Action.ALLOW, sum(h.score for h in hits) + 0.0, hits)
    lines = []
    for fast in (C, None):
        monkeypatch.setattr(verdictlog, "_c_sms_line", fast)
        out = io.StringIO()
        log = verdictlog.VerdictLog(out)
        log._flush_pending = True           # (no event loop: no flush scheduled)
        log.write_sms(msg, "submit_sm", v, 41.66, **kw)
        assert log.errors == 0
        lines.append(out.getvalue())
    assert lines[0] == lines[1] and lines[0].endswith("\n")
