"""The examples --help shows are real: every command line in them parses, every input line in them is read as the
command reads it (found by the CLI audit: no --help had an example, `lists import --help` did not name the header
a CSV must start with, `check --help` not what a --jsonl line holds)."""
import argparse
import json
import os
import shlex
import subprocess
import sys

import pytest

from engine.cli import parser
from engine.lists.csvio import HEADERS
from engine.records import parse_record

from .conftest import ROOT

COMMANDS = [(), ("check",), ("lists", "import"), ("lists", "add"), ("ml", "train"), ("ctl", "reload"), ("report",),
            ("ctl", "lists", "add"), ("ctl", "lists", "remove")]    # (the care desk's live edits: none had one)


def _help(path):
    p = parser()
    for name in path:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return p.format_help()


def _example_lines(path, prefix):
    return [line.strip() for line in _help(path).splitlines() if line.strip().startswith(prefix)]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "telfilter")
def test_every_example_command_parses(path):
    cmds = [c for c in _example_lines(path, "telfilter ") if "COMMAND" not in c]
    assert cmds, _help(path)
    for c in cmds:
        argv = shlex.split(c)[1:]
        try:
            parser().parse_args(argv)
        except SystemExit as e:
            pytest.fail(f"{c!r} does not parse (exit {e.code})")


def test_check_help_shows_jsonl_lines_check_reads():
    lines = _example_lines(("check",), "{")
    assert {parse_record(json.loads(x)).kind for x in lines} == {"sms", "call"}


def test_lists_import_help_names_every_header():
    text = _help(("lists", "import"))
    for kind, header in HEADERS.items():
        assert f"{kind:<10} {','.join(header)}" in text


def test_the_first_examples_work_on_the_shipped_config(tmp_path):
    """Run where a user of an installed telfilter would: not in the source checkout (its sample example was
    `config/sample/messages.jsonl`, a path that exists only there: "No such file or directory" anywhere else)."""
    cmds = _example_lines((), "telfilter check ")
    assert len(cmds) == 2
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TELFILTER_DATA_DIR=str(tmp_path / "data"))
    for c in cmds:
        p = subprocess.run([sys.executable, "-m", "engine.cli", *shlex.split(c)[1:]], capture_output=True, text=True,
                           cwd=elsewhere, env=env)
        assert p.returncode == 0 and '"action"' in p.stdout, (c, p.stderr)


def test_every_option_with_a_default_says_it():
    """Found by the CLI audit: check --out, lists export --out and --format, serve --log and reports list --min-size
    did not say what they are without the option."""
    unsaid = []

    def walk(p, path):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, path + [name])
            elif a.option_strings and a.default not in (None, False, argparse.SUPPRESS, [], "") \
                    and not isinstance(a, (argparse._HelpAction, argparse._VersionAction)) \
                    and "default" not in (a.help or "").lower():
                unsaid.append(" ".join(path + [a.option_strings[-1]]))
    walk(parser(), ["telfilter"])
    assert unsaid == []
