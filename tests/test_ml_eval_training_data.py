"""`ml eval` / `ml compare` on a file the model was trained on: the figures read as a perfect hold-out (the
bundled model on its own Vietnamese set: 100% caught, 0% blocked, MCC 1.0) and nothing said so, though the model
card keeps every training file's sha256. Now a warning on stderr and `in_training_data` in the JSON."""
import json

from .conftest import ROOT, run_cli

TRAIN = ROOT / "engine" / "ml" / "data" / "vi_sms_train.tsv"
MODEL = ROOT / "engine" / "ml" / "default_model"


def _other(tmp_path):
    f = tmp_path / "held_out.tsv"
    f.write_text("label\ttext\nspam\tVay tien nhanh 50 trieu khong the chap, lien he zalo 0912 345 678\n"
                 "ham\tChieu nay 5h anh qua don em nhe\n", encoding="utf-8")
    return f


def test_eval_says_a_file_is_in_the_models_training_data(tmp_path):
    p = run_cli("ml", "eval", "--model", MODEL, "--data", TRAIN)
    assert p.returncode == 0, p.stderr
    assert f"warning: {TRAIN} is in the training data of the model {MODEL}" in p.stderr, p.stderr
    assert json.loads(p.stdout)["in_training_data"] == [str(TRAIN)]
    p = run_cli("ml", "eval", "--model", MODEL, "--data", _other(tmp_path))
    assert p.returncode == 0 and "training data" not in p.stderr, p.stderr
    assert "in_training_data" not in json.loads(p.stdout)


def test_compare_says_it_per_model(tmp_path):
    p = run_cli("ml", "compare", "--model", MODEL, "--model", MODEL, "--data", TRAIN, "--data", _other(tmp_path))
    assert p.returncode == 0, p.stderr
    models = json.loads(p.stdout)["models"]
    assert [m.get("in_training_data") for m in models] == [[str(TRAIN)]] * 2
    assert p.stderr.count(f"{TRAIN} is in the training data") == 2, p.stderr
