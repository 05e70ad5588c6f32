"""`config check` never says OK for a file with an error, and [ml] model is checked even when another key of
telfilter.toml is wrong."""
import shutil

import pytest

from .conftest import CONFIG, run_cli


@pytest.fixture
def cfg(tmp_path):
    d = tmp_path / "config"
    shutil.copytree(CONFIG, d)
    return d


def _edit(p, old, new):
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))


def test_a_file_with_an_error_is_not_ok(cfg):
    _edit(cfg / "telfilter.toml", 'model = ""', 'model = "nope/model"')
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2
    assert "telfilter.toml:15:1: [ml] model" in r.stderr and "is not a model directory" in r.stderr
    assert "telfilter.toml: OK" not in r.stdout, r.stdout
    assert "smpp.toml: OK" in r.stdout and "sip.toml: OK" in r.stdout


def test_the_model_is_checked_beside_a_bad_time_zone(cfg):
    _edit(cfg / "telfilter.toml", 'model = ""', 'model = "nope/model"')
    _edit(cfg / "telfilter.toml", '\ntimezone = "Asia/Ho_Chi_Minh"', '\ntimezone = "Mars/Olympus"')
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and "2 error(s)" in r.stderr, r.stderr
    assert "telfilter.toml:10:1: unknown time zone 'Mars/Olympus'" in r.stderr
    assert "telfilter.toml:15:1: [ml] model" in r.stderr
    assert "telfilter.toml: OK" not in r.stdout


def test_every_error_of_a_file_at_once(tmp_path):
    """A wrong type no longer hides the bad values beside it (a bad time zone behind [ml] enabled = 3,
    window = -5 behind a bad bind_timeout)."""
    import re
    import shutil
    import subprocess
    import sys
    from engine.config import shipped_config_dir
    from tests.conftest import ROOT
    d = tmp_path / "c"
    shutil.copytree(shipped_config_dir(), d)
    t = d / "telfilter.toml"
    t.write_text(t.read_text().replace("enabled = true", "enabled = 3")
                 .replace('timezone = "Asia/Ho_Chi_Minh"', 'timezone = "Mars/Base"').replace("min_words = 4", "min_words = 0"))
    sm = d / "smpp.toml"
    x = re.sub(r"^bind_timeout.*$", 'bind_timeout = "x"', sm.read_text(), flags=re.M)
    sm.write_text(re.sub(r"^window.*$", "window = -5", x, count=1, flags=re.M))
    r = subprocess.run([sys.executable, "-m", "engine.cli", "config", "check", str(d)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 2
    for want in ("[ml] enabled must be", "unknown time zone 'Mars/Base'", "min_words must be at least 1",
                 "bind_timeout must be", "window must be 1 to 65535"):
        assert want in out, (want, out)
