"""contrib/acceptance.py's own command line: --help prints what it checks and exits (it ran the whole acceptance,
starting serve, whatever its arguments); an unknown argument is a usage error."""
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "contrib" / "acceptance.py"


def test_help_says_what_it_checks_and_runs_nothing():
    r = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Checks:" in r.stdout and "info  telfilter from" not in r.stdout


def test_an_unknown_argument_is_a_usage_error():
    r = subprocess.run([sys.executable, SCRIPT, "--quick"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage:" in r.stderr and r.stdout == ""
