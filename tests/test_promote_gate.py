"""`ml promote --gate FILE`: a candidate is installed only if, on labelled gate messages, it drops no more ham and
catches no less spam (less a tolerance) than the model serve loads, language by language; otherwise exit 3 and
nothing changes (before, promote installed whatever loaded: a model dropping every tenth personal message went
live on one command)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.analyst.gate import gate

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "engine/ml/default_model"


def _m(fp, ham, caught, spam):
    return {"confusion": {"fp": fp}, "ham": ham, "spam": spam, "spam_caught_rate": caught}


def _summary(served: dict, cand: dict) -> dict:
    return {"models": [{"by_language": served}, {"by_language": cand}]}


def test_gate_refuses_more_blocked_ham_or_less_spam_per_language():
    same = _summary({"vi": _m(0, 100, 0.9, 100)}, {"vi": _m(0, 100, 0.9, 100)})
    assert gate(same)["passed"]
    worse_ham = gate(_summary({"vi": _m(0, 100, 0.9, 100)}, {"vi": _m(1, 100, 0.99, 100)}))
    assert not worse_ham["passed"] and worse_ham["reasons"] == [
        "vi: the candidate drops 1 of the 100 ham messages, the served model 0"]
    less_spam = gate(_summary({"en": _m(1, 100, 0.93, 100)}, {"en": _m(0, 100, 0.90, 100)}))
    assert not less_spam["passed"] and "catches 90.0% of the 100 spam messages, the served model 93.0%" \
        in less_spam["reasons"][0]
    assert gate(_summary({"en": _m(1, 100, 0.93, 100)}, {"en": _m(0, 100, 0.91, 100)}))["passed"]   # within 2%
    assert not gate(_summary({"en": _m(1, 100, 0.93, 100)}, {"en": _m(0, 100, 0.92, 100)}), 0.0)["passed"]
    # one language worse is enough, whatever the others gain
    mixed = gate(_summary({"en": _m(2, 9, 0.5, 9), "vi": _m(0, 9, 0.9, 9)}, {"en": _m(0, 9, 1.0, 9), "vi": _m(1, 9, 0.9, 9)}))
    assert not mixed["passed"] and [r[:3] for r in mixed["reasons"]] == ["vi:"]
    assert mixed["by_language"]["en"]["blocked_ham"] == [2, 0]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def _model_with_thresholds(d: Path, tag: float, drop: float) -> Path:
    """The bundled model with other thresholds in its card (the weights, and so their checksum, unchanged)."""
    shutil.copytree(BUNDLED, d)
    card = json.loads((d / "card.json").read_text())
    card["thresholds"].update(tag=tag, drop=drop)
    (d / "card.json").write_text(json.dumps(card))
    return d


@pytest.fixture
def setup(tmp_path):
    cfg = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", cfg)
    toml = cfg / "telfilter.toml"
    toml.write_text(toml.read_text().replace('model = ""', f'model = "{tmp_path / "model"}"'))
    rows = ["label\ttext"]
    src = (ROOT / "engine/ml/data/vi_sms_train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    ham = [l.split("\t") for l in src if l.startswith("ham\t")][:60]
    spam = [l.split("\t") for l in src if l.startswith("spam\t")][:60]
    rows += [f"{r[0]}\t{r[-1]}" for r in ham + spam]
    gate_file = tmp_path / "gate.tsv"
    gate_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return cfg, tmp_path, gate_file


def _promote(cfg, tmp_path, model, *extra):
    return _cli("ml", "promote", model, "--config", cfg, "--data-dir", tmp_path / "data", "--no-reload", *extra)


def test_a_candidate_that_drops_more_ham_is_refused_and_nothing_changes(setup):
    cfg, tmp_path, gate_file = setup
    r = _promote(cfg, tmp_path, BUNDLED, "--gate", gate_file)       # the first: against the bundled model itself
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["gate"]["passed"] and out["gate"]["served"] == str(BUNDLED) and out["gate"]["messages"] == 120
    installed = (tmp_path / "model").resolve()
    eager = _model_with_thresholds(tmp_path / "eager", 0.001, 0.002)
    r = _promote(cfg, tmp_path, eager, "--gate", gate_file)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "refused by --gate, nothing changed: vi: the candidate drops" in r.stderr
    # the status --help tells a cron job to expect (it said 2, which is "could not measure")
    assert "else exit 3, nothing changed" in " ".join(_cli("ml", "promote", "--help").stdout.split())
    out = json.loads(r.stdout)
    assert out["installed"] is False and not out["gate"]["passed"]
    lo, hi = out["gate"]["by_language"]["vi"]["blocked_ham"]
    assert hi > lo
    assert (tmp_path / "model").resolve() == installed                # still the model before
    r = _promote(cfg, tmp_path, eager)                                 # without --gate: the analyst's call
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "model").resolve() != installed


def test_a_candidate_that_catches_less_spam_is_refused_unless_tolerated(setup):
    cfg, tmp_path, gate_file = setup
    assert _promote(cfg, tmp_path, BUNDLED).returncode == 0
    shy = _model_with_thresholds(tmp_path / "shy", 0.9999998, 0.9999999)
    r = _promote(cfg, tmp_path, shy, "--gate", gate_file)
    assert r.returncode == 3 and "vi: the candidate catches" in r.stderr, (r.stdout, r.stderr)
    r = _promote(cfg, tmp_path, shy, "--gate", gate_file, "--spam-tolerance", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["gate"]["passed"]


def test_gate_needs_labelled_messages(setup, tmp_path):
    cfg, tmp_path, _ = setup
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"text": "xin chao"}) + "\n")
    r = _promote(cfg, tmp_path, BUNDLED, "--gate", corpus)
    assert r.returncode == 2 and "--gate needs labelled messages" in r.stderr
    assert not (tmp_path / "model").exists()
    r = _promote(cfg, tmp_path, BUNDLED, "--gate", tmp_path / "missing.tsv")
    assert r.returncode == 2 and not (tmp_path / "model").exists()


def test_spam_tolerance_is_a_share(setup):
    cfg, tmp_path, gate_file = setup
    r = _promote(cfg, tmp_path, BUNDLED, "--gate", gate_file, "--spam-tolerance", "2")
    assert r.returncode == 2 and "--spam-tolerance 2.0 is not a share in [0, 1]" in r.stderr
    assert not (tmp_path / "model").exists()


def test_the_first_promote_into_an_empty_model_directory_is_gated_against_the_bundled_model(setup):
    """[ml] model made ready as an empty directory (as an operator does, to own it) holds no model: serve loads the
    bundled one. --gate measured the empty directory and refused the first promote ("not a model directory")."""
    cfg, tmp_path, gate_file = setup
    (tmp_path / "model").mkdir()
    r = _promote(cfg, tmp_path, BUNDLED, "--gate", gate_file)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["gate"]["passed"] and out["gate"]["served"] == str(BUNDLED)
    assert (tmp_path / "model" / "card.json").exists()


def test_a_served_model_the_gate_cannot_read_says_so(setup):
    """A broken model at [ml] model: --gate cannot measure against it, exit 2 (not the refusal's 3), and says how
    to replace it."""
    cfg, tmp_path, gate_file = setup
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "card.json").write_text("{}")
    r = _promote(cfg, tmp_path, BUNDLED, "--gate", gate_file)
    assert r.returncode == 2 and "--gate cannot measure the served model" in r.stderr \
        and "promote without --gate" in r.stderr, r.stderr
