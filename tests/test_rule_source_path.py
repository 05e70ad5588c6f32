"""How a rule file is named in a hit's `source` and in errors, by the working directory it is run from."""
from engine.rules.loader import rel_source
from tests.conftest import CONFIG


def test_a_rule_file_is_named_by_its_absolute_path_when_run_from_the_root(monkeypatch):
    # serve under systemd runs in / (no WorkingDirectory=): every verdict's source read
    # `etc/telfilter/rules/20-ads.toml:193`, a relative path that names nothing from anywhere else
    rule = CONFIG / "rules" / "20-advertising-sms.toml"
    monkeypatch.chdir("/")
    assert rel_source(rule) == str(rule.resolve())


def test_a_rule_file_below_the_working_directory_is_named_relative_to_it(monkeypatch):
    rule = CONFIG / "rules" / "20-advertising-sms.toml"
    monkeypatch.chdir(CONFIG.parent)
    assert rel_source(rule) == "config/rules/20-advertising-sms.toml"
