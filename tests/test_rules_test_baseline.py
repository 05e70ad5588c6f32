"""`rules test --rules EDITED` without --baseline compares the edit with the rules in force (CONFIG/rules), so a
network engineer sees what the edit changes, not every local change the config already made to the shipped pack (it
compared with the shipped rules always). Without --rules the edited set is the rules in force, and the baseline the
shipped rules: what this config changed from the default."""
import json
import shutil

from .conftest import CONFIG, run_cli

CORPUS = str(CONFIG / "sample" / "messages.jsonl")


def _config_with_a_local_change(tmp_path):
    cfg = tmp_path / "cfg"
    shutil.copytree(CONFIG, cfg)
    (cfg / "rules" / "20-advertising-sms.toml").unlink()        # this carrier runs without the advertising SMS rules
    return cfg


def test_an_edited_copy_is_compared_with_the_rules_in_force(tmp_path, data_dir):
    cfg = _config_with_a_local_change(tmp_path)
    edited = tmp_path / "edited"
    shutil.copytree(cfg / "rules", edited)                      # an edit that changes nothing yet
    p = run_cli("--config", cfg, "rules", "test", "--corpus", CORPUS, "--rules", edited, "--data-dir", data_dir)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["baseline"] == str(cfg / "rules")
    assert report["changed_verdicts"] == 0, report


def test_the_rules_in_force_are_compared_with_the_shipped_rules(tmp_path, data_dir):
    cfg = _config_with_a_local_change(tmp_path)
    p = run_cli("--config", cfg, "rules", "test", "--corpus", CORPUS, "--data-dir", data_dir)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["baseline"] == str(CONFIG / "rules") and report["edited"] == str(cfg / "rules")
    assert report["changed_verdicts"] > 0, report


def test_an_explicit_baseline_is_used(tmp_path, data_dir):
    cfg = _config_with_a_local_change(tmp_path)
    p = run_cli("--config", cfg, "rules", "test", "--corpus", CORPUS, "--rules", cfg / "rules",
                "--baseline", CONFIG / "rules", "--data-dir", data_dir)
    report = json.loads(p.stdout)
    assert report["baseline"] == str(CONFIG / "rules") and report["changed_verdicts"] > 0, report
