"""A composite without applies_to applies in every scope where it can hold on its own symbols: 'A or B' with A an
SMS rule and B a call rule holds in both (an intersection of the symbols' scopes refused it, "it never holds", and
'A or B' with B applying to sms-mt and call was narrowed to sms-mt silently: an SMS-MO or a call it hit before went
untouched), while 'A and B' and a `not` of a symbol a scope lacks still leave that scope out (found by review37)."""
from engine.lists import Lists
from engine.pipeline import Pipeline
from engine.records import parse_record
from engine.rules.loader import load_rules
from tests.test_rules import SETTINGS

RULES = '''
[[rule]]
symbol = "__SMS_AD"
applies_to = ["sms-mt", "sms-mo"]
[rule.when]
keywords = ["khuyen mai"]

[[rule]]
symbol = "__CALL_NUMBER"
applies_to = ["call"]
[rule.when]
sender_kind = "number"

[[rule]]
symbol = "__MT_OR_CALL"
applies_to = ["sms-mt", "call"]
[rule.when]
sender_kind = "number"

[[rule]]
symbol = "EITHER"
score = 1.0
[rule.when]
expr = "__SMS_AD or __CALL_NUMBER"

[[rule]]
symbol = "PARTIAL"
score = 1.0
[rule.when]
expr = "__SMS_AD or __MT_OR_CALL"

[[rule]]
symbol = "BOTH"
score = 1.0
[rule.when]
expr = "__SMS_AD and __MT_OR_CALL"

[[rule]]
symbol = "NOT_AD"
score = 1.0
[rule.when]
expr = "__MT_OR_CALL and not __SMS_AD"
'''


def test_or_of_symbols_of_other_scopes_holds_in_each(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(RULES)
    rs = load_rules(d)
    scopes = {r.symbol: sorted(r.applies_to) for r in rs.rules}
    assert scopes["EITHER"] == ["call", "sms-mo", "sms-mt"]
    assert scopes["PARTIAL"] == ["call", "sms-mo", "sms-mt"]
    assert scopes["BOTH"] == ["sms-mt"]
    assert scopes["NOT_AD"] == ["sms-mt"]                # (on a call `not __SMS_AD` would hold for every call)
    p = Pipeline(SETTINGS, rs, lists=Lists(), persist=False)
    call = p.judge(parse_record(dict(kind="call", caller="0901234567", callee="0912345678",
                                     time="2026-03-02T10:00:00+07:00")))
    assert sorted(call.symbols) == ["EITHER", "PARTIAL"]
    mo = p.judge(parse_record(dict(kind="sms", sender="0901234567", recipient="0912345678", text="khuyen mai lon",
                                   direction="mo", time="2026-03-02T10:00:00+07:00")))
    assert sorted(mo.symbols) == ["EITHER", "PARTIAL"]
