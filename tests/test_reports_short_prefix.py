"""`reports show|label` with an id prefix shorter than the 5 characters they accept: said as too short, not as
"no campaign with this id" while `reports list` shows a campaign that begins with it."""
import pytest

from engine.analyst.store import StoreError, Workspace

from .test_analyst import HOME, PRIZE, _store


@pytest.mark.parametrize("kind", ["c", "r"])
def test_a_prefix_too_short_is_said_as_too_short(tmp_path, kind):
    _store(tmp_path, [PRIZE, HOME])
    ws = Workspace(tmp_path)
    full = next(iter(ws.campaigns)) if kind == "c" else ws.reports[0].id
    with pytest.raises(StoreError, match="5 characters") as e:
        ws.resolve(full[:3])
    assert "no campaign" not in str(e.value) and "no report" not in str(e.value)
    assert ws.resolve(full[:5])                # 5 will do, as the help says
