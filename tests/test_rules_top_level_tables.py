"""`actions` and `fixtures` written as a value, not a table (`actions = 5`, `fixtures = "lists/dnc.csv"`), are errors at
their line, as `rule = 5` is; they stopped `rules check` (and a reload) with an AttributeError traceback, exit 1."""
import pytest

from engine.rules.loader import RuleSetError, load_rules

from .conftest import run_cli

RULE = '[[rule]]\nsymbol = "VAY"\nscore = 5\n[rule.when]\nkeywords = ["vay tien"]\n'


@pytest.mark.parametrize("line, what", [('actions = 15.0', "actions"), ('fixtures = "lists/dnc.csv"', "fixtures")])
def test_a_top_level_table_written_as_a_value_is_an_error_at_its_line(tmp_path, line, what):
    (tmp_path / "a.toml").write_text(f"# tuned\n{line}\n\n" + RULE)
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    assert [str(x) for x in e.value.errors] == [f"{tmp_path / 'a.toml'}:2:1: `{what}` must be a table: [{what}]"]


def test_rules_check_exits_2_naming_it(tmp_path):
    (tmp_path / "a.toml").write_text('actions = "drop"\n' + RULE)
    p = run_cli("rules", "check", tmp_path)
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 2, p.stderr
    assert "a.toml:1:1: `actions` must be a table: [actions]" in p.stderr


def test_a_rule_written_as_one_table_is_named_at_its_header(tmp_path):
    # `[rule]` for `[[rule]]`: it was reported at 1:1, above the file's comments
    (tmp_path / "a.toml").write_text("# my rules\n\n[rule]\n" + RULE.removeprefix("[[rule]]\n"))
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    assert [str(x) for x in e.value.errors] == [f"{tmp_path / 'a.toml'}:3:2: `rule` must be an array of tables: [[rule]]"]
