"""`ml rollback` validates the model it puts back, as `ml promote` validates a candidate (card, checksum,
self-check): found by an analyst pass, a previous version damaged on disk was linked in with no serve running,
exit 0 and "serve loads it when it starts", and serve then refused to start on it."""
import json
import shutil

from .conftest import CONFIG, ROOT, run_cli

BUNDLED = ROOT / "engine/ml/default_model"


def test_rollback_to_a_damaged_previous_model_is_refused_and_changes_nothing(tmp_path):
    cfg, served, data = tmp_path / "config", tmp_path / "served_model", tmp_path / "data"
    shutil.copytree(CONFIG, cfg)
    toml = (cfg / "telfilter.toml").read_text()
    (cfg / "telfilter.toml").write_text(toml.replace('model = ""', f'model = "{served}"'))
    cand = tmp_path / "cand"
    shutil.copytree(BUNDLED, cand)
    card = json.loads((cand / "card.json").read_text())
    card["model_version"] = "sms-candidate"
    (cand / "card.json").write_text(json.dumps(card))
    for m in (BUNDLED, cand):
        r = run_cli("ml", "promote", m, "--config", cfg, "--data-dir", data, "--no-reload")
        assert r.returncode == 0, r.stderr
    vd = tmp_path / ".served_model.versions"
    prev, cur = (vd / "previous").resolve(), served.resolve()
    w = prev / "weights.npz"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])          # damaged since it was served
    r = run_cli("ml", "rollback", "--config", cfg, "--data-dir", data, "--no-reload")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "refused, nothing changed" in r.stderr and "Traceback" not in r.stderr
    assert served.resolve() == cur and (vd / "previous").resolve() == prev
    # the link still names the model it named before
    assert json.loads((served / "card.json").read_text())["model_version"] == "sms-candidate"
