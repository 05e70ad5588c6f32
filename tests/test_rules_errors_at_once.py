"""`rules check` reports every error of a set at once, and only real ones: a rule with a mistake is not
"unknown" to the composites that name it, and a composite's own mistakes (its scopes, a cycle) are
reported beside the other files' errors, not only once those are fixed."""
import shutil

import pytest

from engine.rules.loader import RuleSetError, load_rules

from .conftest import CONFIG, run_cli


def _errors(tmp_path, text):
    d = tmp_path / "rules"
    d.mkdir()
    for f in (CONFIG / "rules").glob("*.toml"):
        (d / f.name).write_bytes(f.read_bytes())
    (d / "50-mine.toml").write_text(text)
    with pytest.raises(RuleSetError) as e:
        load_rules(d)
    return [str(x).split("rules/", 1)[1] for x in e.value.errors], d


def test_a_helper_with_a_mistake_is_not_an_unknown_symbol(tmp_path):
    errs, _ = _errors(tmp_path, '[[rule]]\nsymbol = "__LOAN"\napplies_to = ["sms-mt"]\n[rule.when]\n'
                                'keywordz = ["vay tien"]\n'
                                '[[rule]]\nsymbol = "LOAN"\naction = "tag"\n[rule.when]\nexpr = "__LOAN and __IS_AD"\n')
    assert errs == ["50-mine.toml:5:1: unknown condition 'keywordz'; did you mean 'keywords'?"], errs


TYPO = '[[rule]]\nsymbol = "TYPO"\naction = "drop"\n[rule.when]\nsender_kindd = "number"\n'


def test_a_composite_outside_its_symbols_scopes_is_reported_with_the_other_errors(tmp_path):
    errs, d = _errors(tmp_path, '[[rule]]\nsymbol = "CALL_AD"\napplies_to = ["call"]\naction = "drop"\n'
                                '[rule.when]\nexpr = "__IS_AD"\n' + TYPO)
    assert [e.split(": ", 1)[0] for e in errs] == ["50-mine.toml:6:9", "50-mine.toml:11:1"], errs
    assert "CALL_AD applies to call but __IS_AD" in errs[0] and "unknown condition 'sender_kindd'" in errs[1]
    p = run_cli("rules", "check", d)
    assert p.returncode == 2 and p.stderr.count("50-mine.toml:") == 2, p.stderr
    # and then how many, as `config check` ends (first-use review: it ended on the last error)
    assert p.stderr.splitlines()[-1] == f"telfilter rules check: 2 error(s) in {d}", p.stderr


def test_a_composite_cycle_is_reported_with_the_other_errors(tmp_path):
    errs, _ = _errors(tmp_path, '[[rule]]\nsymbol = "__A"\n[rule.when]\nexpr = "__B or __IS_AD"\n'
                                '[[rule]]\nsymbol = "__B"\n[rule.when]\nexpr = "__A and __IS_AD"\n' + TYPO)
    assert [e.split(": ", 1)[0] for e in errs] == ["50-mine.toml:1:1", "50-mine.toml:13:1"], errs
    assert "composite cycle: __A -> __B -> __A" in errs[0] and "unknown condition 'sender_kindd'" in errs[1]


def test_a_condition_written_above_rule_when_says_where_it_goes(tmp_path):
    # it was "unknown key 'sender_kind'", beside "has no [rule.when] conditions"
    errs, _ = _errors(tmp_path, '[[rule]]\nsymbol = "MY_X"\naction = "tag"\nsender_kind = "number"\n'
                                '[rule.when]\nkeywords = ["x"]\n')
    assert errs == ["50-mine.toml:4:1: 'sender_kind' is a condition: write it under [rule.when]"], errs


@pytest.mark.parametrize("symbol", ["DNC_REGISTERED", "ML_SPAM", "SPAM_REPORTED"])
def test_a_rule_may_not_take_a_symbol_the_engine_gives_its_own_hits(tmp_path, symbol):
    # accepted before: the regulator's report counted such a rule's hits as DNC registrations, 5656 reports or model
    # hits (report/aggregate.py reads the symbol)
    errs, _ = _errors(tmp_path, f'[[rule]]\nsymbol = "{symbol}"\naction = "tag"\n[rule.when]\nkeywords = ["x"]\n')
    assert len(errs) == 1 and errs[0].startswith(f"50-mine.toml:2:10: symbol {symbol} is one the engine's own hits "
                                                 "carry"), errs


def test_crossed_thresholds_are_reported_where_they_were_set(tmp_path):
    # it was "<rules dir>:1:1: [actions] tag threshold is above the drop threshold"
    errs, _ = _errors(tmp_path, '[actions]\ntag = 20.0\n')
    assert errs == ["50-mine.toml:2:7: [actions] tag threshold 20 is above the drop threshold 15 (drop set at "
                    f"{tmp_path / 'rules' / '00-actions.toml'}:11:8)"], errs


def test_a_symbol_written_in_lower_case_gets_its_spelling(tmp_path):
    errs, _ = _errors(tmp_path, '[[rule]]\nsymbol = "MY_X"\naction = "tag"\n[rule.when]\nexpr = "__is_ad"\n')
    assert errs == ["50-mine.toml:5:9: unknown symbol '__is_ad' in expr; did you mean '__IS_AD'? (symbols are "
                    "UPPER_SNAKE)"], errs


def test_a_rule_without_a_symbol_is_named_by_its_place_counted_from_one(tmp_path):
    """Found by a day-one audit: the second [[rule]] of a file, its symbol mistyped, was reported as `<rule 1>`."""
    errs, _ = _errors(tmp_path, '[[rule]]\nsymbol = "MINE_A"\nscore = 1\n[rule.when]\nkeywords = ["zz"]\n'
                                '[[rule]]\nsymbol = 5\nscore = 1\n')
    assert any(e.startswith("50-mine.toml:") and "<rule 2> has no [rule.when] conditions" in e for e in errs), errs


def test_a_duplicate_symbol_is_reported_beside_the_copys_own_mistake(tmp_path):
    # a rule copied from the pack under its old symbol, then mis-edited: only the mistake was said, and the duplicate
    # once the mistake was fixed (a second reload refused)
    errs, _ = _errors(tmp_path, '[[rule]]\nsymbol = "AD_TO_DNC"\naction = "drop"\n[rule.when]\nexpr = "__IS_AD"\n'
                                'local_time_inside = "00:00-24:00"\n')
    assert [e.split(": ", 1)[0] for e in errs] == ["50-mine.toml:2:10", "50-mine.toml:6:21"], errs
    assert errs[0].startswith("50-mine.toml:2:10: duplicate symbol AD_TO_DNC (first defined at "), errs
    assert "is the whole day or none of it" in errs[1]


def test_every_mistake_of_a_counter_is_said_at_once(tmp_path):
    # only the first was said (an unknown key), then, reload after reload, the window, then the limit
    errs, _ = _errors(tmp_path, '[[rule]]\nsymbol = "BURST"\napplies_to = ["sms-mt"]\naction = "tag"\n[rule.when]\n'
                                'counter = { key = ["sendr"], window = "1 hour", limit = 0, distinkt = "recipient" }\n')
    assert errs == ["50-mine.toml:6:11: counter: unknown key 'distinkt' (key, window, limit, distinct, at); counter key "
                    "must be a non-empty list of sender, recipient, owner, content, template, account; got ['sendr']; "
                    "bad duration '1 hour': use e.g. \"30s\", \"5m\", \"1h\", \"24h\", \"7d\" or \"forever\"; "
                    "counter limit must be an integer >= 1, got 0"], errs


def test_a_rule_redefined_over_a_disabled_one_is_told_what_to_do(tmp_path):
    # the shipped AD_NO_OPTOUT set `enabled = false` and written again in a local file: the error named the line of
    # a rule that is out of force, without saying so or what to change
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    f = d / "20-advertising-sms.toml"
    f.write_text(f.read_text().replace('symbol = "AD_NO_OPTOUT"\n', 'symbol = "AD_NO_OPTOUT"\nenabled = false\n'))
    (d / "50-mine.toml").write_text('[[rule]]\nsymbol = "AD_NO_OPTOUT"\naction = "tag"\n[rule.when]\n'
                                    'expr = "__IS_AD"\nkeywords_absent = ["tc", "tuchoi"]\n')
    with pytest.raises(RuleSetError) as e:
        load_rules(d)
    errs = [str(x) for x in e.value.errors]
    assert len(errs) == 1 and errs[0].startswith(f"{d / '50-mine.toml'}:2:10: duplicate symbol AD_NO_OPTOUT"), errs
    assert "disabled there (enabled = false)" in errs[0] and "one rule a symbol, enabled or not" in errs[0], errs


def test_a_duplicate_symbol_says_what_to_do(tmp_path):
    errs, _ = _errors(tmp_path, '[[rule]]\nsymbol = "AD_TO_DNC"\naction = "drop"\n[rule.when]\nexpr = "__IS_AD"\n')
    assert errs[0].startswith("50-mine.toml:2:10: duplicate symbol AD_TO_DNC (first defined at "), errs
    assert errs[0].endswith("): give this rule another symbol, or edit that one"), errs


@pytest.mark.parametrize("written, hint", [("ESME_RNOPE", ""), ("ESME_RSYSER", "; did you mean 'ESME_RSYSERR'?")])
def test_a_misspelt_status_is_never_told_it_may_mean_success(tmp_path, written, hint):
    """A rule's smpp_status answers a message it drops: a misspelt one was told "did you mean 'ESME_ROK'?", the
    status that tells the ESME its message went."""
    errs, _ = _errors(tmp_path, f'[[rule]]\nsymbol = "MINE"\naction = "drop"\nsmpp_status = "{written}"\n'
                                '[rule.when]\nkeywords = ["vay tien"]\n')
    assert len(errs) == 1 and errs[0].startswith("50-mine.toml:4:") and "ESME_ROK'?" not in errs[0], errs
    assert errs[0].endswith(hint), errs


def test_rules_test_refuses_a_negative_number_of_examples(tmp_path):
    """`rules test --examples -1` showed none, quietly (a slice's bound)."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"sender": "0901234567", "recipient": "0912345678", "text": "hi"}\n')
    p = run_cli("rules", "test", "--corpus", corpus, "--examples", "-1")
    assert p.returncode == 2 and "--examples: must be 0 or more, got '-1'" in p.stderr, p.stderr
