"""A rule file error is said once per reload attempt. serve's file watcher kept its own stamp of the files, so a
SIGHUP (or `ctl reload rules`) right after an edit read the broken set and logged its errors, and the watcher's
next tick (up to 1 s later) read the same files again and logged them again; a SIGHUP after the watcher's read
logged them a second time too. The watcher now looks for changes since the last read by any path, and a read of
unchanged files refused with the same errors says so in one line instead of repeating them."""
import asyncio
import logging
import shutil

from engine.config import load_settings
from engine.lists import Lists
from engine.pipeline import Pipeline, RuleWatcher
from engine.rules.loader import load_rules
from engine.serve_reload import reload_rules

from .conftest import CONFIG

BROKEN = "oops = [\n"


def _setup(tmp_path):
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    p = Pipeline(load_settings(CONFIG), load_rules(d), lists=Lists(), persist=False)
    return d, p, RuleWatcher(p)


def _said(caplog, f) -> list:
    return [r for r in caplog.records if f"{f.name}:" in r.getMessage()]


def test_sighup_then_the_watcher_say_the_error_once(tmp_path, caplog):
    d, p, w = _setup(tmp_path)
    f = d / "40-spam-senders.toml"
    with open(f, "a") as fh:
        fh.write(BROKEN)
    errors = asyncio.run(reload_rules(p))            # SIGHUP (or ctl reload) before the watcher's tick
    assert errors and p.rule_errors == errors
    assert not w.changed()                           # the files that read saw: nothing for the watcher to read
    assert len(_said(caplog, f)) == 1
    f.write_text(f.read_text().replace(BROKEN, ""))
    assert w.poll() is False and w.poll() is True and not p.rule_errors    # a later edit, read once settled


def test_the_watcher_then_sighup_say_the_error_once(tmp_path, caplog):
    d, p, w = _setup(tmp_path)
    f = d / "40-spam-senders.toml"
    with open(f, "a") as fh:
        fh.write(BROKEN)
    assert w.poll() is False and w.poll() is True and p.rule_errors    # read once settled
    with caplog.at_level(logging.INFO):
        errors = asyncio.run(reload_rules(p))        # the operator's SIGHUP after the watcher's read
    assert [str(e) for e in errors] == [str(e) for e in p.rule_errors]
    assert len(_said(caplog, f)) == 1                # the error with its file:line once
    again = [r for r in caplog.records if "refused again" in r.getMessage()]
    assert len(again) == 1 and "unchanged" in again[0].getMessage()
    with open(f, "a") as fh:                         # edited, still broken: a new attempt, said in full
        fh.write("# still\n")
    assert w.poll() is False and w.poll() is True    # read once settled
    assert len(_said(caplog, f)) == 2
