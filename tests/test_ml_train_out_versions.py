"""`ml train --out` into a promoted model (through the [ml] model link, or a version directory kept for rollback) is
refused whatever --config names: the promote layout itself (`.<name>.versions/` beside a link `<name>` into it) says
what the directory is. Refused only when --config named the config whose [ml] model it is, a train with the
shipped config rewrote the served model in place (in force, ungated, at the next reload; its version directory
then held another model than its name and the rollback history said)."""
import json

from engine.analyst.promote import install

from .conftest import run_cli
from .test_analyst import BUNDLED
from .test_ops_cli_edges import _labelled


def _served(tmp_path):
    target = tmp_path / "live" / "model"
    install(BUNDLED, target)
    return target


def _card(d):
    return (d / "card.json").read_bytes()


def test_train_into_the_served_link_is_refused_without_its_config(tmp_path):
    data, target = _labelled(tmp_path), _served(tmp_path)
    before = _card(target)
    r = run_cli("ml", "train", "--data", data, "--out", target, "--no-progress", "--data-dir", tmp_path / "d")
    assert r.returncode == 2 and "kept for rollback" in r.stderr, r.stderr[-2000:]
    assert _card(target) == before


def test_train_into_a_version_directory_is_refused_without_its_config(tmp_path):
    data, target = _labelled(tmp_path), _served(tmp_path)
    version = target.resolve()
    before = _card(version)
    for out in (version, version.parent / "new-one"):
        r = run_cli("ml", "train", "--data", data, "--out", out, "--no-progress", "--data-dir", tmp_path / "d")
        assert r.returncode == 2 and "kept for rollback" in r.stderr, r.stderr[-2000:]
    assert _card(version) == before and not (version.parent / "new-one").exists()
    assert json.loads(before)["model_version"]


def test_train_into_an_ordinary_directory_named_like_one_still_works(tmp_path):
    data = _labelled(tmp_path)
    out = tmp_path / ".cand.versions" / "m"          # no `cand` link beside it: not a promote layout
    r = run_cli("ml", "train", "--data", data, "--out", out, "--no-progress", "--data-dir", tmp_path / "d")
    assert r.returncode == 0, r.stderr[-2000:]
