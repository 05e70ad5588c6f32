"""A text argument that is not UTF-8 (a Latin-1 terminal or script) is one error naming it, exit 2 (found by the CLI
audit: `check --text 'café'` typed in Latin-1 was judged with the byte as a lone surrogate, its letter lost, exit 0;
`check --sender`, echoed in a hit's detail, stopped on a UnicodeEncodeError traceback under a strict UTF-8 stdout,
the en_US.UTF-8 locale's; `lists add senders` blamed "characters outside Latin-1")."""
import os
import subprocess
import sys

import pytest

from .conftest import ROOT


def _run(*argv, tmp_path):
    env = dict(os.environ, TELFILTER_DATA_DIR=str(tmp_path / "d"), PYTHONIOENCODING="utf-8:strict")
    return subprocess.run([sys.executable, "-m", "engine.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                          timeout=120)


@pytest.mark.parametrize("argv, says", [
    (["check", "--sender", "SHOP", "--recipient", "0912345678", "--text", b"caf\xe9 khuyen mai"],
     b"--text is not valid UTF-8: byte 0xe9 at character 4"),
    (["check", "--sender", b"SHOP\xe9", "--recipient", "0912345678", "--text", "khuyen mai"],
     b"--sender is not valid UTF-8: byte 0xe9 at character 5"),
    (["lists", "add", "senders", b"SHOP\xe9", "--owner", "Shop", "--category", "QC"],
     b"value is not valid UTF-8: byte 0xe9 at character 5"),
    (["ml", "predict", "--model", "engine/ml/default_model", "--text", b"\xe9"],
     b"--text is not valid UTF-8: byte 0xe9 at character 1"),
])
def test_a_text_argument_that_is_not_utf8_is_named(argv, says, tmp_path):
    p = _run(*argv, tmp_path=tmp_path)
    assert p.returncode == 2, p.stderr
    named = " ".join(argv[:1 if argv[0] == "check" else 2]).encode()
    assert p.stderr == b"telfilter " + named + b": error: " + says + b" (set the terminal or the script to UTF-8)\n"
    assert p.stdout == b""


def test_utf8_text_and_a_file_name_that_is_not_utf8_are_not_refused_for_it(tmp_path):
    p = _run("check", "--sender", "SHOP", "--recipient", "0912345678", "--text", "café ưu đãi", tmp_path=tmp_path)
    assert p.returncode == 0 and b'"action"' in p.stdout, p.stderr
    f = tmp_path / os.fsdecode(b"dnc\xe9.csv")          # a file name is bytes on Linux: any may be valid
    f.write_text("number,channel\n0912345678,S\n")
    p = _run("lists", "import", "dnc", os.fsencode(f), tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
