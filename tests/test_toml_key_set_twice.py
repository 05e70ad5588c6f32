"""A key written twice in one table (`score = 20` added below `score = 15.0` instead of editing it) is named, at the
start of its second line, in rule files and config files alike; tomllib says only "Cannot overwrite a value", at
the end of the line."""
import shutil

import pytest

from engine.rules.loader import RuleSetError, load_rules

from .conftest import CONFIG, run_cli


def test_a_rule_key_set_twice_is_named(tmp_path):
    (tmp_path / "a.toml").write_text('[[rule]]\nsymbol = "VAY"\nscore = 15.0\n  score = 20\n[rule.when]\n'
                                     'keywords = ["vay tien"]\n')
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    assert [str(x).split("a.toml:", 1)[1] for x in e.value.errors] == [
        "4:3: TOML syntax: score is set twice in its table (a TOML key is set once): Cannot overwrite a value"]


def test_a_table_header_over_a_value_keeps_tomllib_s_words(tmp_path):
    (tmp_path / "a.toml").write_text('[[rule]]\nwhen = 1\n[rule.when]\n')
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    assert [str(x).split("a.toml:", 1)[1] for x in e.value.errors] == ["3:11: TOML syntax: Cannot overwrite a value"]


def test_a_config_key_set_twice_is_named(tmp_path):
    cfg = tmp_path / "cfg"
    shutil.copytree(CONFIG, cfg)
    (cfg / "telfilter.toml").write_text('[engine]\ntimezone = "UTC"\ntimezone = "Asia/Ho_Chi_Minh"\n')
    p = run_cli("config", "check", cfg)
    assert p.returncode == 2, p.stderr
    assert f"{cfg}/telfilter.toml:3:1: timezone is set twice in its table (a TOML key is set once): Cannot overwrite " \
           "a value" in p.stderr.splitlines(), p.stderr
