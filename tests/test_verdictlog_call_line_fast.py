"""engine/_callline.h's call_line gives, character for character, verdictlog._call_line's line for a judged call
(the Python form, kept as the reference and the fallback), or None -- and only outside its common case (a UTC time,
ASCII text, float score and time), where the Python form makes it; VerdictLog.write_call writes the same line
with it and without it. Inputs: random ones, edge values, and the Call-ID, From and To of the RFC 4475 torture
messages (rewritten to 127.0.0.1) as the screen parses them."""
import io
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import verdictlog
from engine.sip_screen.codec import SipParseError, parse_datagram
from engine.verdict import Action, Hit, Verdict
from .test_sip import to_loopback

C = pytest.importorskip("engine._stamps").call_line
PY = verdictlog._call_line
ACTIONS = [str(a) for a in Action]
RFC4475 = Path("/work/shared/vectors/sip/rfc4475")
VECTORS = sorted(RFC4475.glob("*.dat")) if RFC4475.is_dir() else []
ZONES = [timezone.utc, None, timezone(timedelta(hours=7)), timezone(timedelta(0)), ZoneInfo("UTC")]
# every character class the JSON encoder treats apart: controls, '"', '\\', DEL, non-ASCII, a lone surrogate (a
# peer's undecodable byte as the codec keeps it)
TEXT = st.text(st.one_of(st.characters(max_codepoint=0x7f), st.sampled_from('"\\\x00\x1f\x7f\b\f\n\r\té\u20ac\U0001f600\udcff')),
               max_size=40)
NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**16, 10**16),
                   st.sampled_from([0.0, -0.0, 1e11, -1e11, 99999999999.99995, 1e15, -1e15, 0.05, 0.15, 2.5e-5,
                                    0.00005, 12.25, 12.35, math.nextafter(1e11, 0), math.nextafter(1e15, 0)]))


def _both(*args):
    c = C(*args)
    assert c is None or c == PY(*args)
    return c


def _common(when, call_id, texts, score, judge_us) -> bool:
    return (type(when) is datetime and when.tzinfo is timezone.utc and all(t.isascii() for t in texts)
            and (call_id is None or call_id.isascii()) and type(score) is float and -1e11 < score < 1e11
            and type(judge_us) is float and -1e15 < judge_us < 1e15)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)), st.sampled_from(ZONES),
       st.one_of(st.none(), TEXT), TEXT, TEXT, TEXT, st.sampled_from(ACTIONS), NUMBER, st.sampled_from(["[]", "[x]"]),
       NUMBER)
@settings(max_examples=1000, deadline=None)
def test_call_line_is_the_python_line(t, tz, call_id, caller, callee, ingress, action, score, hits, judge_us):
    when = t.replace(tzinfo=tz)
    c = _both(when, call_id, caller, callee, ingress, action, score, hits, judge_us)
    assert (c is not None) == _common(when, call_id, (caller, callee, ingress), score, judge_us)


ASCII = st.text(st.characters(max_codepoint=0x7f), max_size=40)
FLOAT = st.floats(-1e11, 1e11, exclude_min=True, exclude_max=True)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)), st.one_of(st.none(), ASCII),
       ASCII, ASCII, ASCII, st.sampled_from(ACTIONS), FLOAT, ASCII, st.one_of(FLOAT, st.floats(-1e15, 1e15)))
@settings(max_examples=1000, deadline=None)
def test_call_line_in_its_common_case(t, call_id, caller, callee, ingress, action, score, hits, judge_us):
    when = t.replace(tzinfo=timezone.utc)
    assert _both(when, call_id, caller, callee, ingress, action, score, hits, judge_us) is not None or \
        judge_us in (1e15, -1e15)


EDGE = [(datetime(2026, 12, 7, 6, 30, 1, 5, timezone.utc), "a@b", "0912345678", "0987000666", "127.0.0.1:5060"),
        (datetime(1, 1, 1, tzinfo=timezone.utc), None, "", "", ""),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, timezone.utc), '"\\\x00\x1f\x7f', "+84 (0) 912", "*", "[::1]:1"),
        (datetime(999, 1, 1, 0, 0, 0, 100000, timezone.utc), "x" * 5000, "\t\n\r\b\f", "", "h:1")]


@pytest.mark.parametrize("when,call_id,caller,callee,ingress", EDGE)
@pytest.mark.parametrize("score,judge_us", [(0.0, 0.0), (-0.0, -0.0), (15.0, 123.45), (-3.25, 0.05), (1e10, 1e14),
                                            (0.00005, 99.95), (2.0000000001, 7.25)])
def test_call_line_edges(when, call_id, caller, callee, ingress, score, judge_us):
    assert _both(when, call_id, caller, callee, ingress, "tag", score, '[{"symbol": "X"}]', judge_us) is not None


def _parties(raw):
    try:
        m = parse_datagram(raw)
    except SipParseError:
        return None
    f = m.first_values()
    return f.get("call-id"), f.get("from") or "", f.get("to") or ""


@pytest.mark.skipif(not VECTORS, reason="no RFC 4475 vectors on this host")
@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_call_line_of_rfc4475_messages(path):
    parties = _parties(to_loopback(path.read_bytes(), 5060, 5062))
    if parties is None:
        pytest.skip("not parsed: no call to log")
    call_id, frm, to = parties
    for when in (datetime(2026, 12, 7, 6, 30, 1, 250000, timezone.utc), datetime(2026, 12, 7, 6, 30, 1)):
        for score, judge_us in ((0.0, 41.7), (7.5, 3.25), (-0.0, 0.0)):
            c = _both(when, call_id, frm, to, "127.0.0.1:5060", "allow", score, "[]", judge_us)
            assert (c is not None) == _common(when, call_id, (frm, to), score, judge_us)


@pytest.mark.parametrize("hits", [(), (Hit("DNC_CALLEE", 5.0, "0987000666 on the list", "lists"),),
                                  (Hit("A", 1.5, "é", "x"), Hit("B", 2, "", "y"))])
@pytest.mark.parametrize("caller", ["0912345678", "ngu\u1ec5n", "\udcff12"])
def test_write_call_writes_the_same_line_either_way(monkeypatch, hits, caller):
    when = datetime(2026, 12, 7, 6, 30, 1, 250000, timezone.utc)
    v = Verdict(Action.TAG if hits else Action.ALLOW, sum(h.score for h in hits) + 0.0, hits)
    lines = []
    for fast in (C, None):
        monkeypatch.setattr(verdictlog, "_c_call_line", fast)
        out = io.StringIO()
        log = verdictlog.VerdictLog(out)
        log._flush_pending = True           # (no event loop: no flush scheduled)
        log.write_call(when, "cid-1@127.0.0.1", caller, "0987000666", "127.0.0.1:5060", v, 41.66)
        assert log.errors == 0
        lines.append(out.getvalue())
    assert lines[0] == lines[1] and lines[0].endswith("\n")
