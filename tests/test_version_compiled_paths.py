"""`telfilter --version` says whether the optional C extensions were built (a pip install without a C compiler
falls back to pure Python, and pip says so only under -v)."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

# the CLI with the compiled text normaliser and number reader unimportable, as in an install built without gcc
WITHOUT = ("import sys; sys.modules['engine._textnorm'] = None; sys.modules['engine._numbers'] = None; "
           "from engine.cli import main; sys.argv = ['telfilter', '--version']; main()")


def test_version_names_the_compiled_paths_not_built():
    r = subprocess.run([sys.executable, "-c", WITHOUT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first.startswith("telfilter 0.")
    assert second.startswith("compiled paths: ") and " of 7 not built (" in second, r.stdout
    assert "engine._textnorm" in second and "engine._numbers" in second and "pure-Python fallbacks run" in second


def test_version_says_all_compiled_paths_are_built_in_a_built_tree():
    if len(list(ROOT.glob("engine/**/*.so"))) < 7:
        pytest.skip("the C extensions are not built here (setup.py build_ext --inplace)")
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.splitlines()[1:] == ["compiled paths: all 7 built"], r.stdout
