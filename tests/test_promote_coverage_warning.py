"""`ml promote` warns (and still installs) when the candidate's card covers a language the served model was
trained on with far fewer examples: a model trained on English only blocks Vietnamese ham."""
import json
import shutil

from .conftest import CONFIG, ROOT, run_cli

BUNDLED = ROOT / "engine/ml/default_model"


def _setup(tmp_path, vi_messages):
    cfg, served = tmp_path / "config", tmp_path / "served_model"
    shutil.copytree(CONFIG, cfg)
    toml = (cfg / "telfilter.toml").read_text()
    (cfg / "telfilter.toml").write_text(toml.replace('model = ""', f'model = "{served}"'))
    r = run_cli("ml", "promote", BUNDLED, "--config", cfg, "--data-dir", tmp_path / "data", "--no-reload")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    cand = tmp_path / "cand"
    shutil.copytree(BUNDLED, cand)
    card = json.loads((cand / "card.json").read_text())
    card["model_version"] = "sms-candidate"
    card["languages"]["vi"].update(messages=vi_messages, spam=0)
    (cand / "card.json").write_text(json.dumps(card))
    return cfg, cand


def test_promote_warns_of_a_language_the_candidate_barely_saw(tmp_path):
    cfg, cand = _setup(tmp_path, 4)
    served_vi = json.loads((BUNDLED / "card.json").read_text())["languages"]["vi"]
    r = run_cli("ml", "promote", cand, "--config", cfg, "--data-dir", tmp_path / "data", "--no-reload")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model_version"] == "sms-candidate"                       # installed all the same
    assert "warning" in r.stderr and "4 vi messages (0 spam)" in r.stderr
    assert f"{served_vi['messages']:,} ({served_vi['spam']:,} spam)" in r.stderr
    assert len(out["warnings"]) == 1 and "en messages" not in r.stderr


def test_no_warning_when_the_candidate_covers_the_language(tmp_path):
    served_vi = json.loads((BUNDLED / "card.json").read_text())["languages"]["vi"]["messages"]
    cfg, cand = _setup(tmp_path, served_vi // 5)
    r = run_cli("ml", "promote", cand, "--config", cfg, "--data-dir", tmp_path / "data", "--no-reload")
    assert r.returncode == 0 and "warning" not in r.stderr and "warnings" not in json.loads(r.stdout), r.stderr


def test_promote_refuses_a_model_whose_thresholds_invert_the_configured_one(tmp_path):
    """[ml] tag_threshold 0.93 alone and a candidate whose card drops at 0.90: serve would refuse to start with
    it. Refused before anything is installed (it used to install, exit 0, and the next restart was an outage)."""
    cfg, cand = _setup(tmp_path, 10_000)
    toml = (cfg / "telfilter.toml").read_text()
    (cfg / "telfilter.toml").write_text(toml.replace("# tag_threshold = 0.5", "tag_threshold = 0.93"))
    card = json.loads((cand / "card.json").read_text())
    card["thresholds"]["drop"] = 0.90
    (cand / "card.json").write_text(json.dumps(card))
    served = tmp_path / "served_model"
    before = served.resolve()
    r = run_cli("ml", "promote", cand, "--config", cfg, "--data-dir", tmp_path / "data", "--no-reload")
    assert r.returncode == 2 and "tag_threshold 0.93" in r.stderr and "set both" in r.stderr, r.stderr
    assert served.resolve() == before


def test_a_promote_while_another_promote_or_rollback_of_the_path_runs_is_refused_nothing_changed(tmp_path):
    """Known gap of stop 35: `ml promote` / `rollback` had no lock; two at once each took the other's model for the
    one to keep. The second is refused (exit 2) while the first holds the model path's lock."""
    from engine.analyst.promote import versions_dir
    from engine.lists.journal import flocked
    cfg, cand = _setup(tmp_path, 10_000)
    served = tmp_path / "served_model"
    before = served.resolve()
    with flocked(versions_dir(served.absolute()) / ".lock"):
        for args in (("promote", cand), ("rollback",)):
            r = run_cli("ml", *args, "--config", cfg, "--data-dir", tmp_path / "data", "--no-reload")
            assert r.returncode == 2 and "another `telfilter ml promote` or `rollback`" in r.stderr, r.stderr
            assert served.resolve() == before
    r = run_cli("ml", "promote", cand, "--config", cfg, "--data-dir", tmp_path / "data", "--no-reload")
    assert r.returncode == 0 and json.loads(r.stdout)["model_version"] == "sms-candidate", r.stderr
