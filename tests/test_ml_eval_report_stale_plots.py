"""`ml eval --report DIR` run again into the same directory on data with one class only (no curve to draw) leaves no
precision-recall or ROC plot of the run before beside its summary: they stayed, another model's or data's curves
among this evaluation's files."""
import subprocess
import sys

from .conftest import ROOT

BUNDLED = ROOT / "engine/ml/default_model"


def _eval(data, rep):
    r = subprocess.run([sys.executable, "-m", "engine.cli", "ml", "eval", "--model", BUNDLED, "--data", data,
                        "--report", rep], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_a_one_class_evaluation_leaves_no_curves_of_the_run_before(tmp_path):
    both, ham = tmp_path / "both.tsv", tmp_path / "ham.tsv"
    both.write_text("label\ttext\nspam\tWINNER!! claim your prize now, call 09061234567\nham\tsee you at lunch\n")
    ham.write_text("label\ttext\nham\tsee you at lunch\nham\tok, on my way\n")
    rep = tmp_path / "rep"
    _eval(both, rep)
    assert (rep / "roc.png").exists() and (rep / "precision_recall.png").exists()
    _eval(ham, rep)
    assert not (rep / "roc.png").exists() and not (rep / "precision_recall.png").exists()
    assert (rep / "score_histogram.png").exists() and "roc.png" not in (rep / "summary.md").read_text()
