"""Promotes past the five versions kept leave the running serves' notes (`.<name>.versions/serves/`) alone: the
prune took that directory for the oldest model version and removed it, so after a few promotes `ml promote --config`
no longer reached the serve that loads the path ("installed; ... serve loads it when it starts", exit 0, the old
model serving on), and it counted as one of the five versions kept."""
from engine.analyst.promote import KEEP, install, versions_dir
from engine.analyst.serves import register, registered

from .test_analyst import BUNDLED
from .test_analyst_promote import _fake_model


def test_promotes_past_the_versions_kept_leave_the_serves_notes_and_keep_five_versions(tmp_path):
    target = tmp_path / "model"
    install(_fake_model(BUNDLED, tmp_path / "first", "v-first"), target)
    sock = tmp_path / "data" / "control.sock"
    register(target, sock)                  # what a serve of this path writes at its start
    for i in range(KEEP + 2):
        install(_fake_model(BUNDLED, tmp_path / f"m{i}", f"v-{i}"), target)
    assert registered(target) == [sock]
    versions = [p for p in versions_dir(target).iterdir() if p.is_dir() and not p.is_symlink() and p.name != "serves"]
    assert len(versions) == KEEP
