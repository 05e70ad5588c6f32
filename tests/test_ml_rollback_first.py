"""`ml rollback` after the first promote (serve ran the bundled model before it) has no version to put back, and
says how to serve the bundled model again (promote it) instead of leaving the analyst with "nothing promoted over
one yet" and a model just found wanting in force."""
import pytest

from engine.analyst.promote import PromoteError, install, rollback
from engine.ml.model import default_model_dir

from .test_analyst import BUNDLED
from .test_analyst_promote import _fake_model


def test_rollback_after_the_first_promote_says_how_to_serve_the_bundled_model_again(tmp_path):
    target = tmp_path / "model"
    install(_fake_model(BUNDLED, tmp_path / "a", "v-a"), target)
    with pytest.raises(PromoteError, match="no previous model") as e:
        rollback(target)
    assert f"telfilter ml promote {default_model_dir()}" in str(e.value)
