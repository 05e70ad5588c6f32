"""`config check` never says OK for a file with an error, and [ml] model is checked even when another key of
telfilter.toml is wrong (probe 29, defect 2)."""
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
