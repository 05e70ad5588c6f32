"""[ml] tag_threshold / drop_threshold set one without the other: the other is the model card's. A pair that
comes out inverted (drop 0.5 under the bundled model's tag 0.90) let a score between them through: refused at
load with a clear error, and never an allow for a score at or above the drop threshold."""
import shutil

import pytest

from engine.app import build
from engine.config import ConfigError, shipped_config_dir
from engine.verdict import Message


def _config(tmp_path, line):
    cfg = tmp_path / "cfg"
    shutil.copytree(shipped_config_dir(), cfg)
    t = cfg / "telfilter.toml"
    t.write_text(t.read_text().replace("# drop_threshold = 0.9", line))
    return cfg


def test_a_drop_threshold_under_the_models_tag_threshold_is_refused(tmp_path):
    cfg = _config(tmp_path, "drop_threshold = 0.5")
    with pytest.raises(ConfigError) as e:
        build(config_dir=cfg, data_dir=tmp_path / "data")
    assert "drop_threshold 0.5" in str(e.value) and "set both" in str(e.value)


def test_a_consistent_one_sided_threshold_loads(tmp_path):
    pipe = build(config_dir=_config(tmp_path, "drop_threshold = 0.99"), data_dir=tmp_path / "data")
    assert pipe.model is not None and pipe.settings.ml_drop_threshold == 0.99


def test_a_score_at_the_drop_threshold_is_never_allowed(tmp_path):
    """A model swapped in under a one-sided [ml] threshold (the serve-time check is at load; this is the
    pipeline's own floor): p at or above drop is dropped even when under tag."""
    pipe = build(config_dir=_config(tmp_path, "drop_threshold = 0.99"), data_dir=tmp_path / "data")
    text = "Your bill at 3 is 33.65 pounds, pay now to claim"
    p = pipe.model.score(text)
    pipe.settings.ml_tag_threshold, pipe.settings.ml_drop_threshold = min(1.0, p + 0.01), max(0.0, p - 0.01)
    from datetime import datetime
    v = pipe.judge(Message("0912345678", "0912000111", text, datetime.fromisoformat("2026-03-02T10:00:00+07:00"),
                           "", "mt"))
    assert "ML_SPAM" in v.symbols and v.action.name == "DROP", (p, v)


def test_config_check_finds_the_inverted_pair(tmp_path):
    import subprocess
    import sys
    from .conftest import ROOT
    cfg = _config(tmp_path, "drop_threshold = 0.5")
    r = subprocess.run([sys.executable, "-m", "engine.cli", "config", "check", str(cfg)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "telfilter.toml:17:1: [ml] drop_threshold 0.5" in r.stderr + r.stdout, r
    assert "telfilter.toml: OK" not in r.stdout


def test_ml_eval_refuses_the_pair_serve_refuses(tmp_path):
    """`ml eval` without --model judges as serve would: with a pair serve refuses, it says so (exit 2), never a
    metric of a filter that cannot run."""
    import subprocess
    import sys
    from .conftest import ROOT
    cfg = _config(tmp_path, "drop_threshold = 0.5")
    data = tmp_path / "d.tsv"
    data.write_text("spam\tWIN a prize now call 09061701461 to claim\nham\thello how are you today my friend\n")
    r = subprocess.run([sys.executable, "-m", "engine.cli", "ml", "eval", "--config", str(cfg), "--data", str(data)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "set both" in r.stderr and "Traceback" not in r.stderr, r


def test_config_check_finds_the_inverted_pair_beside_another_error(tmp_path):
    """Every error at once: a wrong key elsewhere in telfilter.toml does not hide the pair."""
    from engine.configcheck import load_config
    cfg = _config(tmp_path, "drop_threshold = 0.5")
    t = cfg / "telfilter.toml"
    t.write_text(t.read_text().replace('timezone = "Asia/Ho_Chi_Minh"', 'timezone = "Mars/Olympus"'))
    errors = load_config(cfg, rules=False).errors
    assert any("unknown time zone" in e for e in errors), errors
    assert any("telfilter.toml:17:1: [ml] drop_threshold 0.5" in e and "set both" in e for e in errors), errors
