"""A rule's `[rule.examples]` holds `hit` and `miss`, arrays of messages. A misspelt key (`hits = []`) or a value of
the wrong type was said as "examples must be a table with `hit` and/or `miss` arrays of messages" at the table's
header, though it is one: the key is now named at its own line, with what it must be and what it is."""
import pytest

from engine.rules.loader import RuleSetError, load_rules

HEAD = '[[rule]]\nsymbol = "AD"\nscore = 1\n[rule.when]\nkeywords = ["vay"]\n'


def _errors(tmp_path, text):
    (tmp_path / "a.toml").write_text(HEAD + text)
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    return [str(x).removeprefix(str(tmp_path / "a.toml") + ":") for x in e.value.errors]


def test_a_misspelt_key_is_named_at_its_line(tmp_path):
    assert _errors(tmp_path, '[rule.examples]\nhits = []\n') == [
        "7:1: examples: unknown key 'hits'; did you mean 'hit'? (examples are `hit` and `miss`, arrays of messages: "
        "[[rule.examples.hit]])"]


def test_a_misspelt_key_beside_a_good_one_keeps_the_good_one_checked(tmp_path):
    errs = _errors(tmp_path, '[rule.examples]\nmisses = []\n[[rule.examples.hit]]\ntxt = "vay"\n')
    assert errs[0].startswith("7:1: examples: unknown key 'misses'; did you mean 'miss'?")
    assert errs[1].startswith("9:1: examples.hit: unknown field 'txt'; did you mean 'text'?")


@pytest.mark.parametrize("value, got", [
    ('"vay tien"', "a string"),
    ('{ text = "vay" }', "a table"),
    ("[1, 2]", "an array holding an integer"),
    ("3", "an integer"),
])
def test_a_wrong_typed_hit_or_miss_says_what_it_must_be_and_is(tmp_path, value, got):
    assert _errors(tmp_path, f"[rule.examples]\nmiss = {value}\n") == [
        f"7:8: examples.miss must be an array of messages (tables: [[rule.examples.miss]] with text = \"...\" "
        f"and the other fields of a message), got {got}"]


def test_examples_not_a_table(tmp_path):
    errs = _errors(tmp_path, '[[rule.examples]]\ntext = "vay"\n')
    assert errs == ["6:3: examples must be a table holding `hit` and/or `miss`, arrays of messages, got an array "
                    "([[rule.examples]]: write [[rule.examples.hit]] or [[rule.examples.miss]])"]


def test_an_empty_hit_array_is_no_example(tmp_path):
    (tmp_path / "a.toml").write_text(HEAD + "[rule.examples]\nhit = []\n")
    assert load_rules(tmp_path).rules[0].examples == {"hit": [], "miss": []}
