"""An empty `text_regex` (a placeholder left in, a pattern cut by an edit) matches every text: the rule held for
every SMS, and `rules check` said OK without a warning. An empty `text_not_regex` never holds. Both are refused
as `path:line:col`, as an empty keyword is."""
import pytest

from engine.rules.loader import RuleSetError, load_rules


@pytest.mark.parametrize("cond, value", [("text_regex", '""'), ("text_regex", '["vay", ""]'),
                                         ("text_not_regex", "''")])
def test_an_empty_pattern_is_refused_where_it_is(tmp_path, cond, value):
    (tmp_path / "a.toml").write_text('[[rule]]\nsymbol = "X"\nscore = 1.0\n[rule.when]\n'
                                     f'{cond} = {value}\n')
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    assert [str(x) for x in e.value.errors] == [f"{tmp_path / 'a.toml'}:5:{len(cond) + 4}: empty regex in {cond}: "
                                                "it matches every text"]


def test_a_pattern_is_still_taken(tmp_path):
    (tmp_path / "a.toml").write_text('[[rule]]\nsymbol = "X"\nscore = 1.0\n[rule.when]\ntext_regex = "vay"\n')
    assert load_rules(tmp_path).by_symbol["X"]
