"""Which engine runs a rule's regex (engine/rules/linear.py): RE2, linear in the text whatever the pattern, wherever
the pattern can be written there exactly; Python's re (redos-checked at load) otherwise, said by `rules check`; and
re for every pattern, with a warning, when google-re2 is not installed. (The cost itself is measured by
benchmarks/regex_engines.py, never asserted here; parity with re: test_rules_regex_parity.py.)"""
import logging
import re

import pytest

from engine.rules import linear
from engine.rules.linear import engine_missing
from engine.rules.loader import load_rules
from engine.rules import textconds
from engine.rules.textconds import _regex

from .conftest import CONFIG, run_cli

needs_re2 = pytest.mark.skipif(engine_missing() is not None, reason="google-re2 is not installed")


def _regexes(rs):
    return [m for r in rs.rules for _, pred, _ in r.preds for m in getattr(pred, "regexes", ())]


@needs_re2
def test_the_shipped_pack_runs_no_regex_that_backtracks_without_bound():
    # its two are anchored at the start: re tries them at one position (cheaper than an RE2 call, whose binding
    # gives the GIL up and takes it back: +33% CPU per submit_sm with them on RE2)
    ms = _regexes(load_rules(CONFIG / "rules"))
    assert len(ms) >= 2 and [m.engine for m in ms] == ["re-anchored"] * len(ms), [(m.pattern, m.why) for m in ms]


@needs_re2
@pytest.mark.parametrize("pattern, engine", [(r"^\s*dkqc\b", "re-anchored"), (r"\Aqc", "re-anchored"),
                                             (r"(?m)^qc", "re2"), (r"qc.*tu choi", "re2"), (r"x|^qc", "re2")])
def test_a_pattern_anchored_at_the_start_stays_on_re(pattern, engine):
    m = _regex(pattern, "text_regex")
    assert m.engine == engine and m.why is None
    assert m.search("qc dkqc") == (lambda x: x and x.group(0))(re.search(pattern, "qc dkqc", re.I))


@needs_re2
def test_a_pattern_that_backtracks_quadratically_on_re_goes_to_re2():
    # re: ~6 s of CPU on this 64 KB message_payload (benchmarks/regex_engines.py); RE2: well under a millisecond
    m = _regex("qc.*tu choi", "text_regex")
    assert m.engine == "re2" and m.why is None
    assert m.search("qc" * 32000) is None
    assert m.search("qc" * 50 + " tu choi") == re.search("qc.*tu choi", "qc" * 50 + " tu choi").group(0)


@needs_re2
@pytest.mark.parametrize("pattern, why", [
    (r"(?<![^\W_])vay", "a look-behind"),
    (r"(vay)\s+\1", "a backreference"),
    (r"qc(?!\d)x", "a look-ahead before the end of the pattern"),
    (r"qc(?!\d\d)", "a negative look-ahead of more than one character"),
    (r"(?>vay)+", "an atomic group"),
    (r"\d++x", "a possessive repeat"),
    (r"x{1001}", "a repeat count over 1000"),
    (r"qc$x", "`$` before the end of the pattern"),
    (r"\W*\bvay", "`\\b` or `\\B` inside the pattern next to what may or may not be a word character"),
])
def test_what_re2_cannot_say_exactly_stays_on_re_and_says_why(pattern, why):
    m = _regex(pattern, "text_regex")
    assert (m.engine, m.why) == ("re", why)
    assert m.search("vay vay qcx") == (lambda x: x and x.group(0))(re.search(pattern, "vay vay qcx", re.I))


@needs_re2
@pytest.mark.parametrize("pattern, text, want", [
    (r"^\s*dkqc\b", "dkqc: x", "dkqc"),          # the trailing \b reads the next character; evidence stops before it
    (r"^\s*dkqc\b", "dkqcя x", None),            # я is a word character to Python (to RE2's own \b it is not)
    (r"\bvay\b", "cho vay.", "vay"),
    (r"\bvay\b", "chovay", None),
    (r"tin", "tın", "tın"),                      # Python's IGNORECASE reads dotless ı as i (RE2's (?i) does not)
    (r"qc$", "qc\n", "qc"),                      # Python's $ also matches before a final newline
    (r"qc.", "qc\ud800", "qc\ud800"),            # a lone surrogate (check --jsonl): read through its stand-in
])
def test_translated_patterns_give_what_re_gives(pattern, text, want):
    rx = re.compile(textconds._fold_pattern(pattern), re.IGNORECASE)
    m = linear.LinearRegex(rx.pattern, rx.flags)           # (an anchored one would stay on re: its translation here)
    assert m.search(text) == want == (lambda x: x and x.group(0))(re.search(pattern, text, re.I))


def test_without_google_re2_every_pattern_runs_on_re_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(linear, "_re2", None)
    monkeypatch.setattr(linear, "_said_missing", False)
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        ms = [_regex(p, "text_regex") for p in (r"^\s*dkqc\b", "qc.*tu choi")]
    assert [(m.engine, m.why) for m in ms] == [("re", "google-re2 is not installed")] * 2
    assert len([r for r in caplog.records if "google-re2 is not installed" in r.getMessage()]) == 1   # once
    assert ms[0].search("dkqc shop") == "dkqc" and ms[1].search("qc" * 9 + " tu choi") is not None
    rs = load_rules(CONFIG / "rules")          # the product still loads and judges
    assert {m.engine for m in _regexes(rs)} == {"re"}


def test_rules_check_names_each_pattern_left_on_re_and_strict_does_not_fail_on_it(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "a.toml").write_text('[[rule]]\nsymbol = "X"\naction = "tag"\n[rule.when]\n'
                              "text_regex = ['vay', '(?<![^\\W_])tien']\n")
    p = run_cli("rules", "check", "--strict", d)
    assert p.returncode == 0, p.stderr
    notes = [ln for ln in p.stderr.splitlines() if ": note: " in ln]
    why = "google-re2 is not installed" if engine_missing() else "a look-behind"
    assert len(notes) == (2 if engine_missing() else 1) and notes[-1].startswith(f"{d / 'a.toml'}:5:")
    assert "(?<![^\\W_])tien" in notes[-1] and why in notes[-1] and "not in linear time" in notes[-1]
    shipped = run_cli("rules", "check", "--no-examples", CONFIG / "rules")
    assert shipped.returncode == 0 and (": note: " in shipped.stderr) == bool(engine_missing())


@needs_re2
def test_a_reload_logs_each_pattern_left_on_re(tmp_path, caplog):
    import asyncio
    import shutil

    from engine.config import load_settings
    from engine.lists import Lists
    from engine.pipeline import Pipeline
    from engine.serve_reload import reload_rules
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    p = Pipeline(load_settings(CONFIG), load_rules(d), lists=Lists(), persist=False)
    assert p.rules.notes == []                       # the shipped pack: every regex on RE2
    (d / "90-x.toml").write_text('[[rule]]\nsymbol = "X"\naction = "tag"\n[rule.when]\ntext_regex = "(vay)\\\\s+\\\\1"\n')
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        assert not asyncio.run(reload_rules(p))
    said = [r.getMessage() for r in caplog.records if ": note: " in r.getMessage()]
    assert len(said) == 1 and "90-x.toml:5:1: note: X: text_regex '(vay)\\s+\\1'" in said[0]
    assert "a backreference" in said[0]
