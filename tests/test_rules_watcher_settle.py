"""serve's rule-file watcher reads a change once it has settled (the files look the same at two looks in a row).

It read the files at the first look that saw a change: a rule file being written in place (cp or scp over it, a
shell redirect, a generator: truncated, then written) was read empty, which loads (a warning), and for a second the
21 advertising rules were out of force in a running serve (41 -> 20 -> 41 rules in its log); a rules directory being
filled file by file loaded the files there so far. SIGHUP and `ctl reload rules` still read at once."""
import asyncio
import shutil

from engine.config import load_settings
from engine.lists import Lists
from engine.pipeline import Pipeline, RuleWatcher
from engine.rules.loader import load_rules
from engine.serve_reload import reload_rules

from .conftest import CONFIG


def _setup(tmp_path):
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    p = Pipeline(load_settings(CONFIG), load_rules(d), lists=Lists(), persist=False)
    return d, p, RuleWatcher(p)


def test_a_file_being_written_in_place_is_not_read_until_it_settles(tmp_path):
    d, p, w = _setup(tmp_path)
    whole, n = len(p.rules.rules), len(load_rules(CONFIG / "rules").rules)
    f = d / "20-advertising-sms.toml"
    text = f.read_text()
    with open(f, "w") as out:                   # truncated: the writer has not written yet
        assert w.poll() is False                # a change seen for the first time: looked at again next tick
        assert len(p.rules.rules) == whole
        out.write(text[: len(text) // 2])       # half written, still open
        out.flush()
        assert w.poll() is False
        out.write(text[len(text) // 2:])
    assert w.poll() is False                    # changed since the last look: not settled yet
    assert len(p.rules.rules) == whole and p.rules_generation == 1
    assert w.poll() is True and not p.rule_errors   # the same at two looks: read, whole
    assert len(p.rules.rules) == whole == n and p.rules_generation == 2
    assert w.poll() is False                    # read: nothing new


def test_a_directory_filled_file_by_file_is_read_once_filled(tmp_path):
    d, p, w = _setup(tmp_path)
    whole = len(p.rules.rules)
    files = sorted(d.glob("*.toml"))
    saved = {f.name: f.read_bytes() for f in files}
    for f in files:
        f.unlink()
    for name in sorted(saved)[:2]:              # a deploy copying the new set in, file by file
        (d / name).write_bytes(saved[name])
        assert w.poll() is False
    for name in sorted(saved)[2:]:
        (d / name).write_bytes(saved[name])
    assert w.poll() is False
    assert len(p.rules.rules) == whole and p.rules_generation == 1
    assert w.poll() is True and len(p.rules.rules) == whole and p.rules_generation == 2


def test_sighup_reads_at_once_and_the_watcher_does_not_read_it_again(tmp_path):
    d, p, w = _setup(tmp_path)
    f = d / "40-spam-senders.toml"
    f.write_text(f.read_text().replace('window = "5m", limit = 3', 'window = "5m", limit = 2'))
    assert not asyncio.run(reload_rules(p)) and p.rules_generation == 2    # no settling for an operator's reload
    assert w.poll() is False and w.poll() is False and p.rules_generation == 2


def test_a_rule_file_changed_while_serve_starts_is_read_by_the_watcher(tmp_path):
    """serve reads its rules first thing (app.build) and makes the watcher once it listens, seconds later (the
    lists, the state, the --state server's catch-ups): the watcher took the files as they were then for the last
    read. An edit in between was never read, and its SIGHUP came while serve still ignored the signal (the default
    action ends the process): the rules in force were not the files' until the next edit. The watcher now starts
    from the files the start read."""
    from engine.app import build
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    p = build(cfg, tmp_path / "data", seed=False, with_model=False, persist=False)
    f = cfg / "rules" / "20-advertising-sms.toml"
    f.write_text(f.read_text() + "\n# edited while serve started\n")     # after the read, before the watcher
    w = RuleWatcher(p)
    assert w.poll() is False                    # a change seen for the first time: looked at again next tick
    assert w.poll() is True and p.rules_generation == 2 and not p.rule_errors
