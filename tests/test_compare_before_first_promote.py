"""`ml compare --model CAND` (given once) and `ml eval` without --model measure "the model serve loads"; with
[ml] model set (the README: set it before a first `ml promote`) and nothing installed there yet, both exited 2
"not a model directory", while `ml promote --gate` in the same state measures the bundled model (the README: "the
bundled one before a first promote"). Found by an analyst pass following the README's loop in its order."""
import json
import shutil

from .conftest import CONFIG, ROOT, run_cli

BUNDLED = ROOT / "engine/ml/default_model"


def test_compare_and_eval_before_a_first_promote_measure_the_bundled_model(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    toml = (cfg / "telfilter.toml").read_text()
    (cfg / "telfilter.toml").write_text(toml.replace('model = ""', f'model = "{tmp_path / "model"}"'))
    src = (ROOT / "engine/ml/data/vi_sms_train.tsv").read_text(encoding="utf-8").splitlines()
    data = tmp_path / "held_out.tsv"
    data.write_text("\n".join(src[:1] + src[1:40] + src[-40:]) + "\n", encoding="utf-8")
    for args in (("ml", "compare", "--model", BUNDLED), ("ml", "eval")):
        r = run_cli(*args, "--data", data, "--config", cfg, "--data-dir", tmp_path / "d")
        assert r.returncode == 0, (args, r.stderr)
        out = json.loads(r.stdout)
        served = out["models"][0]["model"] if args[1] == "compare" else out["model"]
        assert served == str(BUNDLED), args
        assert f"nothing is installed at [ml] model {tmp_path / 'model'} yet" in r.stderr


def test_the_bundled_model_note_names_the_command_it_comes_from(tmp_path):
    # it said `telfilter ml: note:` whichever of eval, predict, compare the user ran; every other line of theirs
    # on stderr names the command as argparse does (`telfilter ml eval: ...`)
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    toml = (cfg / "telfilter.toml").read_text()
    (cfg / "telfilter.toml").write_text(toml.replace('model = ""', f'model = "{tmp_path / "model"}"'))
    r = run_cli("ml", "predict", "--text", "WIN a prize now", "--config", cfg, "--data-dir", tmp_path / "d")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("telfilter ml predict: note: nothing is installed at [ml] model"), r.stderr
