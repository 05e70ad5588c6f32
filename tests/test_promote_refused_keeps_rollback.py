"""A promote the running serve refuses puts the model path back to the model serve still runs, and leaves `ml
rollback` as it was: it still puts back the model before that one. The put-back swapped the path and `previous`, as
a rollback does, so `previous` named the refused model: the next `ml rollback` installed the model serve had just
refused (exit 0 with no serve to ask, "serve loads it when it starts") and the model before was out of reach."""
import json

from engine.analyst.promote import current, previous

from .test_analyst import BUNDLED, _cli
from .test_analyst_promote import _FakeServe, _config_naming_model, _fake_model, promote_with_serve


def _version(d):
    return json.loads((d / "card.json").read_text())["model_version"]


def test_a_refused_promote_leaves_rollback_to_the_model_before(tmp_path):
    cfg, data, target = _config_naming_model(tmp_path)
    for v in ("v-a", "v-b"):
        r = _cli("ml", "promote", _fake_model(BUNDLED, tmp_path / v, v), "--config", cfg, "--data-dir", data,
                 "--no-reload")
        assert r.returncode == 0, r.stderr
    assert (_version(current(target)), _version(previous(target))) == ("v-b", "v-a")
    refused = _fake_model(BUNDLED, tmp_path / "v-c", "v-c")
    r, _ = promote_with_serve(_FakeServe, refused, cfg, data)
    assert r.returncode == 1 and "refused the model" in r.stderr, r.stderr
    assert json.loads(r.stdout)["rolled_back"] is True
    assert (_version(current(target)), _version(previous(target))) == ("v-b", "v-a")     # before: previous v-c
    r = _cli("ml", "rollback", "--config", cfg, "--data-dir", data, "--no-reload")
    assert r.returncode == 0 and json.loads(r.stdout)["model_version"] == "v-a", r.stdout + r.stderr


def test_a_refused_first_promote_leaves_no_previous(tmp_path):
    """The first promote over a hand-installed model, refused: the hand-installed one is served again and is still
    the only model there; a rollback has nothing to put back (before: it put back the refused model)."""
    cfg, data, target = _config_naming_model(tmp_path)
    _fake_model(BUNDLED, target, "v-manual")
    r, _ = promote_with_serve(_FakeServe, _fake_model(BUNDLED, tmp_path / "v-c", "v-c"), cfg, data)
    assert r.returncode == 1 and json.loads(r.stdout)["rolled_back"] is True, r.stderr
    assert _version(current(target)) == "v-manual" and previous(target) is None
    r = _cli("ml", "rollback", "--config", cfg, "--data-dir", data, "--no-reload")
    assert r.returncode == 2 and "no previous model" in r.stderr, r.stdout + r.stderr

