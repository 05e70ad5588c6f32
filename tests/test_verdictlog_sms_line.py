"""The SMS verdict line write_sms builds (its fields into one f-string, the stamp and the score inline) is the line
its earlier form built, character for character: every field, every optional member, scores and judge times of
every kind, stamps in and out of one second, zones and schedules."""
import io
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import verdictlog as VL
from engine.verdict import Action, Hit, Message, Verdict


def _old_line(msg, pdu, v, judge_us, binary=False, reading=None, status=None, late=False, concat=None,
              redelivery=False, mo=""):
    """write_sms's line as it was built before (a `%` of ten fields through _isoformat and _score_json)."""
    score, hits = v.score, v.hits
    sub = msg.submitted
    r, s = msg.recipient, msg.sender
    read = VL._read_by_ton(msg) if 0 < msg.recipient_ton < 3 and (len(r) < 11 or not r.isdigit()) or \
        0 < msg.sender_ton < 3 and (len(s) < 11 or not s.isdigit()) else ""
    return ('{"ts": "%s", "kind": "sms", "pdu": %s, "account": %s, "sender": %s, "recipient": %s, '
            '"action": "%s", "score": %s, "hits": %s, "judge_us": %s%s}'
            % (VL._isoformat(msg.time if sub is None else sub), VL._NAMES.get(pdu) or VL._name_json(pdu),
               VL._NAMES.get(msg.account) or VL._name_json(msg.account), VL._jstr(s), VL._jstr(r),
               VL._ACTION_NAME[v.action],
               VL._score_json(score) if type(score) is float and -1e11 < score < 1e11 else VL._num(round(score, 4)),
               VL._hits_json(hits) if hits else "[]",
               "%.1f" % judge_us if type(judge_us) is float and -1e15 < judge_us < 1e15
               else VL._num(round(judge_us, 1)),
               ((', "binary": true' if binary else "") + (', "reading": %s' % VL._jstr(reading) if reading else "")
                + (', "delivery": "%s"' % msg.time.isoformat() if sub is not None else "")
                + (', "status": %d' % status if status is not None else "")
                + (', "late": true' if late else "") + (', "concat": %s' % VL._jstr(concat) if concat else "")
                + (', "mo_digest": "%s"' % mo + (', "redelivery": true' if redelivery else "") if mo else "")
                if binary or reading or sub is not None or status is not None or late or concat or mo
                else "")
               + read))


def _line(msg, *args, **kw):
    out = io.StringIO()
    log = VL.VerdictLog(out)
    log._flush_pending = True           # (no flush scheduled from a test without a loop)
    log.write_sms(msg, *args, **kw)
    return out.getvalue()


ZONES = [timezone.utc, timezone(timedelta(hours=7)), ZoneInfo("Asia/Ho_Chi_Minh"), ZoneInfo("America/New_York"),
         timezone(timedelta(hours=-3, minutes=-30))]
HIT = Hit("AD_TO_DNC", 15.0, "+84912000001 on list:dnc S; \"quoted\" \u0111", "config/rules/20-ads.toml:193",
          Action.DROP, 0x45)


@settings(max_examples=600, deadline=None)
@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2098, 12, 31)),
       st.sampled_from(ZONES), st.booleans(), st.integers(0, 2),
       st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(-10 ** 12, 10 ** 12),
                 st.sampled_from([0.0, 15.0, 30.0, 1e11, -1e11, 99999999999.99995, 0.00005, 2.5e-5])),
       st.one_of(st.floats(min_value=0, max_value=1e17), st.integers(0, 10 ** 6)),
       st.sampled_from(["SHOPABC", "84912345678", "0912345678", "+84912345678", "Ðức \"x\"", "2439998888", ""]),
       st.sampled_from(["84912000001", "0912000001", "2439998888", "912000001", "+84912000001", "ab\u00e9"]),
       st.integers(0, 6), st.integers(0, 6), st.sampled_from([(), (HIT,), (HIT, HIT)]), st.data())
def test_the_line_is_the_earlier_forms(when, tz, scheduled, action, score, judge_us, sender, recipient, s_ton, r_ton,
                                      hits, data):
    t = when.replace(tzinfo=tz)
    msg = Message(sender, recipient, "text", t + timedelta(hours=5) if scheduled else t, data.draw(st.sampled_from(
        ["bench", "", "acc\u00e9"])), "mt", s_ton, r_ton)
    if scheduled:
        msg.submitted = t
    v = Verdict((Action.ALLOW, Action.TAG, Action.DROP)[action], score, hits)
    kw = dict(binary=data.draw(st.booleans()), reading=data.draw(st.sampled_from([None, "gsm", "latin1"])),
              status=data.draw(st.sampled_from([None, 0, 0x45])), late=data.draw(st.booleans()),
              concat=data.draw(st.sampled_from([None, "00ff00ff00ff00ff"])), mo=data.draw(st.sampled_from(["", "ab" * 8])),
              redelivery=data.draw(st.booleans()))
    pdu = data.draw(st.sampled_from(["submit_sm", "deliver_sm MO", "submit_multi"]))
    expected = _old_line(msg, pdu, v, judge_us, **kw)
    assert _line(msg, pdu, v, judge_us, **kw) == expected + "\n"
    json.loads(expected)


def test_lines_in_one_second_and_across_seconds():
    base = datetime(2026, 12, 6, 20, 51, 10, 0, tzinfo=timezone.utc)
    for i in range(3000):
        t = base + timedelta(microseconds=i * 733)
        msg = Message("SHOPABC", "84912000001", "x", t, "bench", "mt", 5, 1)
        v = Verdict(Action.DROP, 15.0 + i / 7, (HIT,))
        assert _line(msg, "submit_sm", v, i / 3) == _old_line(msg, "submit_sm", v, i / 3) + "\n"


def test_scores_kept_by_value_print_as_each_score_alone():
    # a score's text is kept by value (verdictlog._SCORES): 0.0 and -0.0 are equal keys that print apart, and a
    # value seen before prints as it did the first time
    msg = Message("SHOPABC", "84912345678", "hi", datetime(2024, 5, 1, 3, 4, 5, 678, tzinfo=timezone.utc), "acct")
    for score in (0.0, -0.0, 30.0, -0.0, 30.0, 0.0, 1e-05, 5e-05, 0.00015, -2.5, 15.0, 0.0, -0.0):
        v = Verdict(Action.ALLOW, score, ())
        assert _line(msg, "submit_sm", v, 12.5) == _old_line(msg, "submit_sm", v, 12.5) + "\n"
