"""`ml compare --report DIR` into a directory an earlier comparison wrote leaves none of that run's plots this one did
not draw (a third model's score scatter, per-language rates of labelled data): they stayed, read as this run's."""
import json
import subprocess
import sys

from .conftest import ROOT

BUNDLED = ROOT / "engine/ml/default_model"


def _compare(rep, data, n_models):
    r = subprocess.run([sys.executable, "-m", "engine.cli", "ml", "compare", *["--model", BUNDLED] * n_models,
                        "--data", data, "--report", rep, "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["plots"]


def test_a_second_comparison_leaves_only_its_own_plots(tmp_path):
    held, corpus = tmp_path / "held.tsv", tmp_path / "corpus.jsonl"
    held.write_text("label\ttext\nspam\tWINNER!! claim your prize now, call 09061234567\nham\tsee you at lunch\n")
    corpus.write_text(json.dumps({"id": "1", "kind": "sms", "text": "see you at lunch"}) + "\n")
    rep = tmp_path / "cmp"
    assert len(_compare(rep, held, 3)) == 3                   # two scatters and the per-language rates
    plots = _compare(rep, corpus, 2)
    assert sorted(p.name for p in rep.iterdir()) == sorted(p.rsplit("/", 1)[-1] for p in plots) == ["scores_1_vs_2.png"]
