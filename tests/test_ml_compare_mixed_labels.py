"""`ml compare --data held_out.tsv --data corpus.jsonl`: a labelled file beside an unlabelled one gives no metrics
(they need every message labelled), and that is said; the labelled file's metrics went without a word, the
analyst's held-out figures missing from the JSON with nothing on stderr."""
import json
import subprocess
import sys

from .conftest import ROOT

BUNDLED = ROOT / "engine/ml/default_model"


def _compare(*data):
    return subprocess.run([sys.executable, "-m", "engine.cli", "ml", "compare", "--model", BUNDLED, "--model", BUNDLED,
                           *[a for d in data for a in ("--data", d)]], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_labels_left_unused_beside_an_unlabelled_file_are_said(tmp_path):
    held = tmp_path / "held.tsv"
    held.write_text("label\ttext\nspam\tWINNER!! claim your prize now\nham\tsee you at lunch\n")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "1", "kind": "sms", "text": "Anh oi toi nay an com o nha nhe"}) + "\n")
    r = _compare(held, corpus)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["messages"] == 3 and not out["labelled"]
    assert f"the labels of {held} are not used: {corpus} has none" in r.stderr, r.stderr
    r = _compare(held)                      # on its own: labelled, nothing said
    assert json.loads(r.stdout)["labelled"] and "not used" not in r.stderr
