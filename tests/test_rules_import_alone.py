"""Every module of engine/rules imports on its own, first thing in a fresh interpreter (a what-if
tool or a test may import `textconds` or `stateful` before `conditions`, which registers them:
that was a circular ImportError)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(p.stem for p in (ROOT / "engine" / "rules").glob("*.py") if p.stem != "__init__")


def test_every_rules_module_imports_first():
    code = ("import importlib, sys, traceback\n"
            "name = sys.argv[1]\n"
            "try:\n"
            "    importlib.import_module(name)\n"
            "except Exception:\n"
            "    traceback.print_exc(); sys.exit(1)\n")
    failed = {}
    for m in MODULES:
        r = subprocess.run([sys.executable, "-c", code, f"engine.rules.{m}"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
        if r.returncode:
            failed[m] = r.stderr.strip().splitlines()[-1]
    assert not failed, failed


@pytest.mark.parametrize("m", ["textconds", "stateful"])
def test_registered_in_the_manifest_order_whatever_is_imported_first(m):
    code = (f"import engine.rules.{m}\nfrom engine.rules.conditions import CONDITIONS\nprint(' '.join(CONDITIONS))")
    first = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    plain = subprocess.run([sys.executable, "-c", "from engine.rules.conditions import CONDITIONS\n"
                            "print(' '.join(CONDITIONS))"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert first.stdout == plain.stdout and "text_regex" in plain.stdout and "counter" in plain.stdout
