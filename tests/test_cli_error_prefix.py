"""Every command says an error that stops it as argparse says a usage error: `telfilter COMMAND: error: why`, COMMAND
as argparse names it (`lists import`, `ctl reload`), exit 2. The prefixes varied: `telfilter: error:` (the command
not named), `telfilter check:`, `telfilter serve:`, `telfilter ctl:`, `telfilter report:`, `telfilter ml:` (the
action not named) without `error:`."""
import pytest

from .conftest import run_cli

CASES = [
    # (command as named, its arguments after it)
    ("check", ["--direction", "xx"]),                           # argparse's own: the convention's source
    ("check", ["--sender", "X", "--text", "hi"]),
    ("check", ["--jsonl", "{tmp}/nope"]),
    ("check", ["--sender", "X", "--recipient", "1", "--text", "hi", "--time", "bogus"]),
    ("lists import", ["dnc", "{tmp}/nope"]),
    ("lists import", ["dnc", "{tmp}/nope", "--allow-partial"]),
    ("lists add", ["dnc", "0912345678", "--owner", "x"]),
    ("lists export", ["dnc", "--format", "hosts"]),
    ("report", ["--log", "{tmp}/nope", "--out", "{tmp}/r"]),
    ("report", ["--log", "{tmp}/nope", "--from", "2026-13-01"]),
    ("ml predict", ["--text", "hi", "--model", "{tmp}"]),
    ("ctl stats", ["--socket", "{tmp}/nope.sock"]),
    ("ctl reload", ["rules", "--full", "--socket", "{tmp}/nope.sock"]),
    ("ctl lists add", ["dnc", "0912345678", "--owner", "x", "--socket", "{tmp}/nope.sock"]),
    ("serve", ["--workers", "0"]),
    ("serve", ["--smpp-listen", "nope", "--control-socket", "off"]),
    # words no parser takes: the top parser said them, `telfilter: error: unrecognized arguments: …`
    ("rules check", ["{tmp}", "extra"]),
    ("check", ["--jsonl", "{tmp}/nope", "--bogus"]),
    ("ctl reload", ["rules", "--bogus"]),
]


@pytest.mark.parametrize("command, argv", CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_an_error_names_its_command_as_argparse_does(tmp_path, data_dir, command, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    p = run_cli(*command.split(), *argv, "--data-dir", data_dir, timeout=60)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith(f"telfilter {command}: error: "), p.stderr
