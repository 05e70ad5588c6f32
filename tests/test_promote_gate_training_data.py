"""`ml promote --gate FILE` says, as `ml eval` and `ml compare` do, when the candidate was trained on FILE (its sha256
in the card's training_data) and names it in the gate's JSON: a cron job that exports the labelled reports into both
the training data and the gate passed the gate by what the candidate had learnt, without a word."""
import hashlib
import json

from .test_analyst_promote import _fake_model
from .test_promote_gate import BUNDLED, _promote, setup  # noqa: F401  (setup: the fixture)


def test_a_gate_file_the_candidate_was_trained_on_is_said(setup):
    cfg, tmp_path, gate_file = setup
    cand = _fake_model(BUNDLED, tmp_path / "cand", "v-cand")
    card = json.loads((cand / "card.json").read_text())
    card["training_data"] = [{"path": "labelled.tsv", "sha256": hashlib.sha256(gate_file.read_bytes()).hexdigest()}]
    (cand / "card.json").write_text(json.dumps(card))
    r = _promote(cfg, tmp_path, cand, "--gate", gate_file)
    assert r.returncode == 0, r.stderr
    assert f"warning: {gate_file} is in the training data of the model {cand}" in r.stderr, r.stderr
    assert json.loads(r.stdout)["gate"]["in_training_data"] == [str(gate_file)]
    other = _fake_model(BUNDLED, tmp_path / "other", "v-other")          # one not trained on it: nothing said
    r = _promote(cfg, tmp_path, other, "--gate", gate_file)
    assert r.returncode == 0 and "training data" not in r.stderr, r.stderr
    assert "in_training_data" not in json.loads(r.stdout)["gate"]
