"""The TELFILTER_*_PURE switches (README, Dependencies): `=1` asks for the Python paths; any other value, `0` among
them, leaves the compiled ones in use, as TELFILTER_TABLES_PURE always did."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import engine.numbers, engine.stamps, engine.textnorm, engine.ml.features, engine._numbers, engine._stamps
import engine.smpp_proxy.codec.lean as lean
print(engine.numbers.bare_digits is engine._numbers.bare_digits, engine.stamps.second_key is engine._stamps.second_key,
      engine.textnorm._C is not None, engine.ml.features.normalise is not engine.ml.features.normalise_py,
      lean.view_sm is not lean._view_sm)
"""
SWITCHES = ("TELFILTER_NUMBERS_PURE", "TELFILTER_STAMPS_PURE", "TELFILTER_TEXT_PURE", "TELFILTER_ML_PURE",
            "TELFILTER_LEAN_PURE")


def probe(value):
    env = {"PATH": "/usr/bin:/bin", **{s: value for s in SWITCHES}}
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_a_pure_switch_set_to_0_leaves_the_compiled_paths_in_use():
    if len(list(ROOT.glob("engine/**/*.so"))) < 7:
        pytest.skip("the C extensions are not built here (setup.py build_ext --inplace)")
    # `TELFILTER_TEXT_PURE=0` in a unit's Environment= (to say "off") turned the Python paths on, 2-10x slower
    assert probe("0") == ["True"] * 5
    assert probe("1") == ["False"] * 5
