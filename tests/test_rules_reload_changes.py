"""A rules reload says what it changed. `ctl reload rules` answered the rule count and the generation only, and
serve logged "N rules": an edit that changed a score, a rule taken out and put back, or a file saved in the wrong
directory all read "46 rules", so the engineer could not tell whether the edit was in force. The answer (and the
log line) now names the symbols added, removed, changed (scope, score, action, answer or conditions), enabled and
disabled, and the [actions] thresholds that moved; a reload of the files in force says nothing changed."""
import asyncio
import logging
import shutil

from engine.config import load_settings
from engine.control import ControlServer
from engine.lists import Lists
from engine.pipeline import Pipeline
from engine.rules.loader import load_rules

from .conftest import CONFIG

EXTRA = '[[rule]]\nsymbol = "CRYPTO_SCAM"\nscore = 20.0\n[rule.when]\nkeywords = ["usdt"]\n'


def _setup(tmp_path):
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    pipe = Pipeline(load_settings(CONFIG), load_rules(d), lists=Lists(), persist=False)
    return d, pipe, ControlServer(pipe, tmp_path / "ctl.sock", on_drain=lambda: None)


def _reload(ctl) -> dict:
    return asyncio.run(ctl.handle({"cmd": "reload", "what": ["rules"]}))["rules"]


def test_ctl_reload_rules_names_what_changed(tmp_path, caplog):
    d, pipe, ctl = _setup(tmp_path)
    ans = _reload(ctl)
    assert ans["ok"] is True and ans["changes"] == {}, ans          # the files in force: nothing changed
    (d / "50-local.toml").write_text(EXTRA + "[actions]\ntag = 5.0\n")
    f = d / "20-advertising-sms.toml"
    text = f.read_text()
    text = text.replace('symbol = "AD_NO_OPTOUT"', 'symbol = "AD_NO_OPTOUT"\nenabled = false')
    head, sep, tail = text.partition('\nsymbol = "AD_OUTSIDE_HOURS"')
    text = head + sep + tail.replace('local_time_outside = "07:00-22:00"', 'local_time_outside = "08:00-21:00"', 1)
    f.write_text(text)
    with caplog.at_level(logging.INFO):
        ans = _reload(ctl)
    assert ans["ok"] is True, ans
    assert ans["changes"] == {"added": ["CRYPTO_SCAM"], "changed": ["AD_OUTSIDE_HOURS"],
                              "disabled": ["AD_NO_OPTOUT"], "thresholds": {"tag": [3.0, 5.0]}}, ans
    said = [r.getMessage() for r in caplog.records if "rules reloaded" in r.getMessage()]
    assert said and "added CRYPTO_SCAM" in said[-1] and "disabled AD_NO_OPTOUT" in said[-1], said
    (d / "50-local.toml").unlink()
    f.write_text(f.read_text().replace('symbol = "AD_NO_OPTOUT"\nenabled = false', 'symbol = "AD_NO_OPTOUT"'))
    ans = _reload(ctl)
    assert ans["changes"] == {"removed": ["CRYPTO_SCAM"], "enabled": ["AD_NO_OPTOUT"],
                              "thresholds": {"tag": [5.0, 3.0]}}, ans


def test_a_moved_rule_or_an_edited_example_is_no_change(tmp_path):
    # a rule's line (its source) moves with every edit above it, and examples never reach a verdict
    d, pipe, ctl = _setup(tmp_path)
    f = d / "10-lists.toml"
    f.write_text("# a comment line more\n" + f.read_text().replace('text = "hello"', 'text = "hello there"', 1))
    ans = _reload(ctl)
    assert ans["ok"] is True and ans["changes"] == {}, ans
