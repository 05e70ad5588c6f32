"""Backreference shapes that backtrack for seconds to hours are refused at load (engine/rules/redos_backref.py).

A pattern with a backreference runs on Python's `re` (RE2 has none). These were accepted by `rules check` and a
reload of a running serve: `([a-z]+)\\1z` took 2.4 s of one core on 4,000 characters (cubic: hours on a 65,536-
character message, held on serve's event loop), `(\\w{2,30})\\1{2,}!` 148 s on 64 KB."""
import re
import subprocess
import sys

import pytest

from engine.rules.redos import UnsafeRegex, check

from .conftest import run_cli

SLOW = [r"([a-z]+)\1z", r"(\w+)\1!", r"([a-z]+)\s*\1z", r"([a-z]+)\1+z", r"(?P<w>\w+)(?P=w)!", r"(\w+)(?:\1|x)!",
        r"((\w+))\2!", r"(\w{2,30})\1{2,}!", r"(\w)\1+x", r"(\w+)(?:\1|-)*!", r"(\w+)(?:(?!x)\1)!"]
STILL_SAFE = [r"(\w+)\s+\1", r"(\w+)\s+\1\s+\w+!", r"(vay)\s+\1", r"(\w{1,30})\1!", r"(\w+)(?:-\1)", r"(.)\1{5}",
              r"(\w)\1\1", r"(x)(?:y\1|az)+!", r"(\d+)\D\1#", r"(a(\w+)b)\2!", r"(\w+)(?:-\1)*!", r"(\w)\1{2,5}x"]


@pytest.mark.parametrize("pattern", SLOW)
def test_backreference_shapes_that_backtrack_for_long_are_refused(pattern):
    with pytest.raises(UnsafeRegex):
        check(pattern, re.IGNORECASE)


@pytest.mark.parametrize("pattern", STILL_SAFE)
def test_bounded_or_separated_backreferences_pass(pattern):
    check(pattern, re.IGNORECASE)


def test_the_refused_shapes_are_really_slow():
    # the reason for the refusals: 4,000 characters and no match hold a core for seconds (each alone)
    for code in ("import re; re.search(r'([a-z]+)\\1z', 'a' * 4000)",
                 "import re; re.search(r'(\\w{2,30})\\1{2,}!', 'a' * 8000)"):
        with pytest.raises(subprocess.TimeoutExpired):
            subprocess.run([sys.executable, "-c", code], timeout=1.5)


def test_rules_check_names_the_file_and_line(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "50-x.toml").write_text('[[rule]]\nsymbol = "REPEATED_WORD"\nscore = 1.0\n[rule.when]\n'
                                 "text_regex = '([a-z]+)\\1z'\n")
    r = run_cli("rules", "check", d, "--no-examples")
    assert r.returncode == 2 and f"{d / '50-x.toml'}:5:14: unsafe regex in text_regex" in r.stderr, r.stderr
    assert "bound the group (`(\\w{1,30})\\1`)" in r.stderr, r.stderr
