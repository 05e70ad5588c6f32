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


@pytest.mark.parametrize("kind", ["c", "r"])
def test_an_id_pasted_in_capitals_or_with_spaces_names_the_same_reports(tmp_path, kind):
    """An id copied from a spreadsheet or a ticket (`C380BE0FAAC`, ` c380be0faac `) was told "a campaign id starts
    with c, a report id with r", which it visibly does."""
    _store(tmp_path, [PRIZE, HOME])
    ws = Workspace(tmp_path)
    full = next(iter(ws.campaigns)) if kind == "c" else ws.reports[0].id
    want = ws.resolve(full)
    assert ws.resolve(full.upper()) == ws.resolve(f" {full} ") == ws.resolve(full[:7].upper()) == want
