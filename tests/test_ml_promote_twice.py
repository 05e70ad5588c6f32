"""`ml promote` of the model already served (a retry after serve did not answer, a cron job promoting the same
candidate again) installs no second copy: the model before stays the one `ml rollback` puts back. It used to become
`previous` itself, so rollback swapped two copies of one version and the model before was out of reach."""
import json

from engine.analyst.promote import install, previous, rollback, versions_dir

from .test_analyst import BUNDLED
from .test_analyst_promote import _fake_model


def _version(target):
    return json.loads((target / "card.json").read_text())["model_version"]


def test_promoting_the_served_model_again_keeps_the_model_before_for_rollback(tmp_path):
    target = tmp_path / "model"
    a = _fake_model(BUNDLED, tmp_path / "a", "v-a")
    b = _fake_model(BUNDLED, tmp_path / "b", "v-b")
    install(a, target)
    install(b, target)
    copies = sorted(p.name for p in versions_dir(target).iterdir())
    again = install(b, target)
    assert again.get("already_installed") is True and again["model_version"] == "v-b"
    assert again["previous_version"] == "v-a"
    assert sorted(p.name for p in versions_dir(target).iterdir()) == copies        # no second copy
    assert _version(target) == "v-b" and _version(previous(target)) == "v-a"
    assert rollback(target)["model_version"] == "v-a"
    assert _version(target) == "v-a"


def test_a_model_of_the_same_version_but_other_weights_is_installed(tmp_path):
    target = tmp_path / "model"
    a = _fake_model(BUNDLED, tmp_path / "a", "v-a")
    install(a, target)
    card = json.loads((a / "card.json").read_text())
    card["created"] = "2026-01-01T00:00:00+00:00"          # another card: not the same model
    (a / "card.json").write_text(json.dumps(card))
    out = install(a, target)
    assert not out.get("already_installed") and out["previous_version"] == "v-a"
