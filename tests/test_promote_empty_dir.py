"""`[ml] model` made ready as an empty directory before the first `ml promote` (as an operator does, to own the
path; the README names the case): found by an analyst pass, the empty directory was kept as the first previous
version ("unknown-manual", previous_version "unknown"), so `ml rollback` after the first promote tried to put it
back and was refused "not a model directory" rather than saying there is no model before; and the coverage warning
compared the candidate with the empty directory (no languages) instead of the bundled model serve runs until then."""
import json
import os
import shutil

import pytest

from engine.analyst.promote import PromoteError, coverage_warnings, install

from .conftest import CONFIG, ROOT, run_cli

BUNDLED = ROOT / "engine/ml/default_model"


def _config(tmp_path):
    cfg, served = tmp_path / "config", tmp_path / "served_model"
    shutil.copytree(CONFIG, cfg)
    toml = (cfg / "telfilter.toml").read_text()
    (cfg / "telfilter.toml").write_text(toml.replace('model = ""', f'model = "{served}"'))
    served.mkdir()
    return cfg, served


def test_the_first_promote_into_an_empty_directory_keeps_no_empty_previous_version(tmp_path):
    cfg, served = _config(tmp_path)
    r = run_cli("ml", "promote", BUNDLED, "--config", cfg, "--data-dir", tmp_path / "data", "--no-reload")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["previous"] is None and out["previous_version"] is None
    assert (served / "card.json").exists()
    vd = tmp_path / ".served_model.versions"
    assert not (vd / "previous").is_symlink()
    assert [p.name for p in vd.iterdir() if not p.name.startswith(".")] == [served.resolve().name]
    r = run_cli("ml", "rollback", "--config", cfg, "--data-dir", tmp_path / "data", "--no-reload")
    assert r.returncode == 2 and "no previous model to roll back to" in r.stderr, r.stderr
    assert (served / "card.json").exists()


def test_a_first_promote_that_fails_copying_leaves_the_empty_directory_where_it_was(tmp_path, monkeypatch):
    import engine.analyst.promote as promote
    _, served = _config(tmp_path)
    served.chmod(0o750)

    def full(src, dst, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(promote.shutil, "copyfile", full)
    with pytest.raises(PromoteError) as e:
        install(BUNDLED, served)
    assert "nothing changed" in str(e.value)
    assert served.is_dir() and not served.is_symlink() and not any(served.iterdir())
    assert served.stat().st_mode & 0o777 == 0o750


def test_the_coverage_warning_compares_with_the_bundled_model_before_the_first_promote(tmp_path):
    _, served = _config(tmp_path)
    small = tmp_path / "small"
    shutil.copytree(BUNDLED, small)
    card = json.loads((small / "card.json").read_text())
    card["languages"] = {k: {**v, "messages": 1, "spam": 1} for k, v in card["languages"].items()}
    (small / "card.json").write_text(json.dumps(card))
    warned = coverage_warnings(small, served)
    assert warned and all("the served model" in w for w in warned)


def test_a_failed_first_promote_puts_back_a_group_writable_directory_as_it_was(tmp_path, monkeypatch):
    """The directory an operator made ready for the analysts' group (0770) came back 0750 after a failed copy: mkdir's
    mode goes through the umask, and the group could no longer promote into it."""
    import engine.analyst.promote as promote
    _, served = _config(tmp_path)
    served.chmod(0o770)

    def full(src, dst, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(promote.shutil, "copyfile", full)
    old = os.umask(0o027)
    try:
        with pytest.raises(PromoteError):
            install(BUNDLED, served)
    finally:
        os.umask(old)
    assert served.stat().st_mode & 0o777 == 0o770
