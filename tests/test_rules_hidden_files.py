"""Hidden files in a rules directory are no rule files: Emacs keeps `.#NAME.toml`, a link to nowhere, beside a
file being edited; with it, `rules check` failed naming the link's target (`user@host.1234:…:1:1: cannot read`)
and serve's watcher refused a reload until the file was saved."""
import os
import shutil

from engine.config import load_settings
from engine.lists import Lists
from engine.pipeline import Pipeline, RuleWatcher
from engine.rules.loader import load_rules

from .conftest import CONFIG, run_cli


def test_an_editor_lock_link_is_not_read_and_does_not_trigger_a_reload(tmp_path):
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    p = Pipeline(load_settings(CONFIG), load_rules(d), lists=Lists(), persist=False)
    w = RuleWatcher(p)
    os.symlink("root@host.1234:1700000000", d / ".#20-advertising-sms.toml")
    (d / ".50-draft.toml").write_text("[[rule]]\nsymbol = broken\n")
    assert not w.changed()
    assert len(load_rules(d).rules) == len(p.rules.rules)
    r = run_cli("rules", "check", d, "--no-examples")
    assert r.returncode == 0, r.stderr
