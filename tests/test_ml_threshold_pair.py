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


@pytest.mark.parametrize("pair", [(0.95, 0.5), (0.5, float("nan"))])
def test_promote_blames_the_card_for_its_own_inverted_pair_not_telfilter_toml(tmp_path, pair):
    """Found by analyst2 promoting a model whose card had tag 0.95 above drop 0.5 (and one with drop NaN), with
    no threshold in [ml]: refused, but as "telfilter.toml: [ml] drop_threshold None with the model's tag threshold
    ... makes tag 0.9500 above drop 0.5000: set both" (sending the analyst to edit a file that set nothing);
    the card is what is wrong, as the model loader says for a drop above 1."""
    import json
    import subprocess
    import sys
    from .conftest import ROOT
    cfg = tmp_path / "cfg"
    shutil.copytree(shipped_config_dir(), cfg)
    t = cfg / "telfilter.toml"
    t.write_text(t.read_text().replace('model = ""', f'model = "{tmp_path / "served"}"'))
    bad = tmp_path / "bad"
    shutil.copytree(ROOT / "engine/ml/default_model", bad)
    card = json.loads((bad / "card.json").read_text())
    card["thresholds"]["tag"], card["thresholds"]["drop"] = pair
    (bad / "card.json").write_text(json.dumps(card))
    r = subprocess.run([sys.executable, "-m", "engine.cli", "ml", "promote", bad, "--config", cfg, "--data-dir",
                        tmp_path / "data", "--no-reload"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "telfilter.toml" not in r.stderr and "set both" not in r.stderr, r.stderr
    assert f"{bad / 'card.json'}: thresholds must satisfy 0 <= tag <= drop <= 1" in r.stderr, r.stderr
    assert not (tmp_path / "served").exists()


def test_predict_without_a_model_scores_as_serve_judges(tmp_path):
    """`ml predict` required --model while `ml eval` and `ml compare` default to the model serve loads (first-use
    review): without it now the same model, with telfilter.toml's [ml] thresholds."""
    import json

    from .conftest import run_cli
    text = "WINNER!! claim your prize now, call 09061701461"
    shipped = json.loads(run_cli("ml", "predict", "--model", "engine/ml/default_model", "--text", text,
                                 check=True).stdout)
    assert shipped["action"] == "drop"
    same = json.loads(run_cli("ml", "predict", "--text", text, check=True).stdout)
    assert same == shipped
    cfg = _config(tmp_path, "drop_threshold = 1.0")           # (the card's tag threshold stays under it)
    served = json.loads(run_cli("ml", "predict", "--config", cfg, "--text", text, check=True).stdout)
    assert served["probability"] == shipped["probability"] and served["action"] == "tag", served
