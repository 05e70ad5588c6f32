"""The house rule: engine/rules/ never imports the pipeline, the app, a message context or the tools that run rule
sets through them (examples, what-if run above it, in engine/ruletools/). Read from the source, imports inside
functions included: rules are data the pipeline judges with, and a rule module that reached the pipeline made the
layers one (stop 47: examples.py and whatif.py lived in engine/rules/ and imported the pipeline)."""
import ast
from pathlib import Path

from .conftest import ROOT

ABOVE = {"engine.pipeline", "engine.app", "engine.context", "engine.serve", "engine.ruletools", "engine.smpp_proxy",
         "engine.sip_screen", "engine.commands", "engine.cli"}


def _imports(path: Path):
    pkg = "engine.rules"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield node.lineno, mod
            for a in node.names:                    # `from .. import pipeline`
                yield node.lineno, f"{mod}.{a.name}"


def test_engine_rules_never_imports_what_runs_above_it():
    bad = []
    for f in sorted((ROOT / "engine" / "rules").glob("*.py")):
        for line, mod in _imports(f):
            if any(mod == a or mod.startswith(a + ".") for a in ABOVE):
                bad.append(f"{f.relative_to(ROOT)}:{line}: imports {mod}")
    assert not bad, "\n".join(bad)


def test_the_reader_sees_a_relative_import_of_the_pipeline(tmp_path):
    """(the check itself can fail: a module written as the old examples.py was is caught)"""
    f = tmp_path / "x.py"
    f.write_text("def run():\n    from ..pipeline import Pipeline\n    from .. import app\n", encoding="utf-8")
    got = [m for _, m in _imports(f)]
    assert "engine.pipeline" in got and "engine.app" in got
