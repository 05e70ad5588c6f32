"""Rule files refused with FILE:LINE:COL: every error in a file at its position, did-you-mean for a misspelt key,
condition, action or symbol, composite cycles and duplicate symbols, time windows of the whole day or none of it,
conditions a call rule cannot have, and where a rule without `applies_to` applies."""
import pytest

from engine.config import load_settings
from engine.lists import Lists
from engine.pipeline import Pipeline
from engine.records import parse_record
from engine.rules.loader import RuleSetError, load_rules

from .conftest import CONFIG, run_cli

SETTINGS = load_settings(CONFIG)

BROKEN = '''[actions]
tag = 3.0
dorp = 4

[[rule]]
symbol = "GOOD_ONE"
action = "drop"
[rule.when]
keywords = ["x"]

[[rule]]
symbol = "BAD_REGEX"
action = "drop"
[rule.when]
text_regex = "(unclosed"

[[rule]]
symbol = "BAD_KEY"
acton = "drop"
score = 1.0
[rule.when]
keywrds = ["x"]
local_time_outside = "25:00-07:00"
counter = { key = ["sender", "colour"], window = "24h", limit = 3 }

[[rule]]
symbol = "BAD_EXPR"
action = "tag"
[rule.when]
expr = "GOOD_ONE and GOD_ONE"
counter = { key = ["sender"], window = "fortnight", limit = 3 }
'''


def test_rules_check_reports_every_error_with_position(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(BROKEN)
    p = run_cli("rules", "check", d)
    assert p.returncode == 2
    *errs, total = p.stderr.splitlines()
    assert total == f"telfilter rules check: {len(errs)} error(s) in {d}", p.stderr       # (then how many)
    f = str(d / "a.toml")
    want = [
        (3, "unknown key 'dorp' in [actions]; did you mean 'drop'?"),
        (15, "bad regex"),
        (19, "unknown key 'acton'; did you mean 'action'?"),
        (22, "unknown condition 'keywrds'; did you mean 'keywords'?"),
        (23, "bad time window"),
        (24, "counter key must be"),
        (30, "unknown symbol 'GOD_ONE' in expr; did you mean 'GOOD_ONE'?"),
        (31, "bad duration"),
    ]
    for line, text in want:
        assert any(e.startswith(f"{f}:{line}:") and text in e for e in errs), (line, text, errs)
    assert all(e.split(":")[2].isdigit() for e in errs)
    # the unknown symbol's column points at the symbol inside the expression
    e = next(e for e in errs if "GOD_ONE" in e)
    assert int(e.split(":")[2]) == len('expr = "GOOD_ONE and ') + 1


def test_composite_cycle_and_duplicate(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "a.toml").write_text('[[rule]]\nsymbol = "__A"\n[rule.when]\nexpr = "__B"\n'
                              '[[rule]]\nsymbol = "__B"\n[rule.when]\nexpr = "__A"\n'
                              '[[rule]]\nsymbol = "X_Y"\naction = "tag"\n[rule.when]\nexpr = "__A"\n'
                              '[[rule]]\nsymbol = "X_Y"\naction = "tag"\n[rule.when]\nexpr = "__A"\n')
    with pytest.raises(RuleSetError) as ei:
        load_rules(d)
    msgs = "\n".join(map(str, ei.value.errors))
    assert "duplicate symbol X_Y" in msgs



def test_a_misspelt_example_field_is_an_error_at_its_line(tmp_path):
    # `tme = ...` was ignored: the example ran at the default time, testing another message than the one written
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(
        '[[rule]]\nsymbol = "MY_RULE"\napplies_to = ["sms-mt", "call"]\nscore = 2\n[rule.when]\nsender_kind = "number"\n'
        '[[rule.examples.hit]]\ntext = "x"\ntme = "2026-01-01T23:00:00+07:00"\n'
        '[[rule.examples.miss]]\nkind = "call"\ncaller = "0901234567"\ntext = "x"\n'
        '[[rule.examples.miss]]\ntext = "y"\nprior = [{text = "x", recipent = "0912000001"}]\n')
    with pytest.raises(RuleSetError) as ei:
        load_rules(d)
    errs = [str(e) for e in ei.value.errors]
    assert any(e.endswith("a.toml:9:1: examples.hit: unknown field 'tme'; did you mean 'time'?") for e in errs), errs
    assert any("a.toml:13:1: examples.miss: unknown field 'text'" in e for e in errs), errs     # a call has none
    assert any("a.toml:14:" in e and "unknown field 'recipent'; did you mean 'recipient'?" in e for e in errs), errs
    assert len(errs) == 3, errs




def test_a_rule_without_symbol_says_the_key_is_missing(tmp_path):
    # a misspelt `symbl` gave "symbol must be UPPER_SNAKE (...), got None" beside the did-you-mean (first-use probe)
    d = tmp_path / "r"
    d.mkdir()
    (d / "a.toml").write_text('[[rule]]\nsymbl = "X_Y"\naction = "tag"\n[rule.when]\nkeywords = ["x"]\n')
    p = run_cli("rules", "check", d)
    assert p.returncode == 2
    f = str(d / "a.toml")
    assert f"{f}:1:3: missing key 'symbol' (UPPER_SNAKE; helpers start with __)" in p.stderr.splitlines()
    assert f"{f}:2:1: unknown key 'symbl'; did you mean 'symbol'?" in p.stderr.splitlines()
    assert "got None" not in p.stderr


@pytest.mark.parametrize("cond,window", [("local_time_outside", "24:00-00:00"), ("local_time_inside", "00:00-24:00"),
                                         ("local_time_outside", "00:00-24:00:00")])
def test_a_time_window_of_the_whole_day_or_none_of_it_is_an_error(tmp_path, cond, window):
    # "24:00-00:00" was accepted: it wraps past midnight and holds at no second, so local_time_outside held for
    # every message (and "00:00-24:00" made local_time_outside never hold), with no word from `rules check`
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(f'[[rule]]\nsymbol = "MY_RULE"\napplies_to = ["sms-mt"]\nscore = 1.0\n'
                              f'[rule.when]\n{cond} = "{window}"\n')
    with pytest.raises(RuleSetError) as ei:
        load_rules(d)
    errs = [str(e) for e in ei.value.errors]
    assert len(errs) == 1 and f"a.toml:6:{len(cond) + 4}: time window '{window}' is the whole day or none of it" \
        in errs[0], errs


SMS_ONLY_ON_CALLS = '''[[rule]]
symbol = "__WORD_X"
applies_to = ["sms-mt"]
[rule.when]
keywords = ["x"]

[[rule]]
symbol = "NO_STOP_WORD"
applies_to = ["sms-mt", "call"]
score = 1.0
[rule.when]
keywords_absent = ["stop"]

[[rule]]
symbol = "SAME_CONTENT"
applies_to = ["call"]
score = 1.0
[rule.when]
counter = { key = ["content"], window = "1h", limit = 1 }

[[rule]]
symbol = "NOT_WORD_X"
applies_to = ["sms-mt", "call"]
score = 1.0
[rule.when]
expr = "not __WORD_X"
'''


def test_a_condition_or_symbol_a_call_cannot_have_in_a_call_rule_is_an_error(tmp_path):
    # accepted before, each doing nothing or worse on calls (a call has no text and no ESME account): a
    # keywords_absent held for every call; a counter keyed by `content` counted every call under one key (a
    # second call from anyone "2 messages per content"); a composite naming an SMS-only helper read it as false
    # on calls (`not __WORD_X` held for every call)
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(SMS_ONLY_ON_CALLS)
    with pytest.raises(RuleSetError) as ei:
        load_rules(d)
    errs = [str(e).split("a.toml:", 1)[1] for e in ei.value.errors]
    assert errs[0].startswith("12:1: keywords_absent reads the SMS text, which a call does not have"), errs
    assert errs[1].startswith("19:1: counter reads the SMS text (key part 'content'), which a call does not"), errs
    # and the composite against the scopes at once (it waited until the two above were fixed: every error at once)
    assert errs[2].startswith("26:13: NOT_WORD_X applies to call but __WORD_X"), errs
    assert len(errs) == 3, errs
    # those fixed, the composite's error alone
    text = SMS_ONLY_ON_CALLS.replace('"sms-mt", "call"]\nscore = 1.0\n[rule.when]\nkeywords_absent',
                                     '"sms-mt"]\nscore = 1.0\n[rule.when]\nkeywords_absent')
    text = text.replace('applies_to = ["call"]\nscore = 1.0\n[rule.when]\ncounter',
                        'applies_to = ["sms-mt"]\nscore = 1.0\n[rule.when]\ncounter')
    (d / "a.toml").write_text(text)
    with pytest.raises(RuleSetError) as ei:
        load_rules(d)
    errs = [str(e).split("a.toml:", 1)[1] for e in ei.value.errors]
    assert errs == [
        f"26:13: NOT_WORD_X applies to call but __WORD_X (at {d / 'a.toml'}:1) does not: there __WORD_X is always "
        "false; make the two applies_to agree"], errs


def test_a_rule_without_applies_to_applies_where_its_conditions_can(tmp_path):
    # with applies_to left out a rule applied to calls too: `keywords_absent` hit every call
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text('[[rule]]\nsymbol = "__WORD_X"\napplies_to = ["sms-mt"]\n[rule.when]\nkeywords = ["x"]\n'
                              '[[rule]]\nsymbol = "NO_STOP"\nscore = 1.0\n[rule.when]\nkeywords_absent = ["stop"]\n'
                              '[[rule]]\nsymbol = "WITH_X"\nscore = 1.0\n[rule.when]\nexpr = "__WORD_X"\n'
                              '[[rule]]\nsymbol = "ANY_NUMBER"\nscore = 1.0\n[rule.when]\nsender_kind = "number"\n')
    rs = load_rules(d)
    assert {r.symbol: sorted(r.applies_to) for r in rs.rules} == {
        "__WORD_X": ["sms-mt"], "NO_STOP": ["sms-mo", "sms-mt"], "WITH_X": ["sms-mt"],
        "ANY_NUMBER": ["call", "sms-mo", "sms-mt"]}
    p = Pipeline(SETTINGS, rs, lists=Lists(), persist=False)
    v = p.judge(parse_record(dict(kind="call", caller="0901234567", callee="0912345678",
                                  time="2026-03-02T10:00:00+07:00")))
    assert v.symbols == ["ANY_NUMBER"]


def _errors(d, text) -> list:
    """The errors of a set of one file, `a.toml` holding `text`, each as `line:col: message`."""
    d.mkdir(exist_ok=True)
    (d / "a.toml").write_text(text)
    with pytest.raises(RuleSetError) as ei:
        load_rules(d)
    return [str(e).split("a.toml:", 1)[1] for e in ei.value.errors]


def test_a_misspelt_action_is_one_error(tmp_path):
    # `action = "reject"` gave two errors, the second ("has neither a score nor an action") pointing the engineer
    # at a score the rule was never meant to have
    errs = _errors(tmp_path / "rules", '[[rule]]\nsymbol = "MY_RULE"\napplies_to = ["sms-mt"]\naction = "reject"\n'
                                       '[rule.when]\nkeywords = ["x"]\n')
    assert errs == ["4:10: unknown action 'reject' (allow, tag or drop)"], errs


@pytest.mark.parametrize("status", ["-5", "4294967296"])
def test_an_smpp_status_integer_out_of_range_says_the_range(tmp_path, status):
    # it said "must be an integer or one of ESME_ROK, ...", of an integer
    errs = _errors(tmp_path, f'[[rule]]\nsymbol = "MY_RULE"\naction = "drop"\nsmpp_status = {status}\n'
                             '[rule.when]\nkeywords = ["x"]\n')
    assert errs == [f"4:15: smpp_status {status} is no SMPP command_status: an integer 0 to 0xFFFFFFFF, or a name"], errs


def test_a_rule_key_written_under_when_says_where_it_goes(tmp_path):
    # as a condition written above [rule.when] does; it said "unknown condition 'smpp_status'"
    errs = _errors(tmp_path, '[[rule]]\nsymbol = "MY_RULE"\naction = "drop"\n[rule.when]\nkeywords = ["x"]\n'
                             'smpp_status = "ESME_RINVSRCADR"\n')
    assert errs == ["6:1: 'smpp_status' is a rule key, not a condition: write it above [rule.when]"], errs


@pytest.mark.parametrize("dash", ["\u2013", "\u2014", "\u2212"])
def test_a_time_window_with_a_typeset_dash_names_it(tmp_path, dash):
    # copied from prose ("outside 07:00–22:00"): the error showed a window that looked right
    errs = _errors(tmp_path, '[[rule]]\nsymbol = "MY_RULE"\naction = "drop"\n[rule.when]\nkeywords = ["x"]\n'
                             f'local_time_outside = "07:00{dash}22:00"\n')
    assert errs == [f"6:22: bad time window '07:00{dash}22:00': expected \"HH:MM-HH:MM\" (its dash is "
                    f"U+{ord(dash):04X}, not the ASCII '-')"], errs


@pytest.mark.parametrize("value, why", [
    ("SV", "; a number registered SV counts for S and for V: name the channel the rule's ads use"),
    ("v", "; did you mean 'V'?"),
])
def test_a_dnc_channel_the_condition_does_not_take_says_what_to_write(tmp_path, value, why):
    # "SV" is a DNC list channel (lists import), not a condition's: it said only "must be "S" or "V""
    errs = _errors(tmp_path, f'[[rule]]\nsymbol = "MY_RULE"\naction = "drop"\n[rule.when]\nrecipient_dnc = "{value}"\n')
    assert errs == [f"5:17: recipient_dnc must be \"S\" or \"V\", got '{value}'{why}"], errs
