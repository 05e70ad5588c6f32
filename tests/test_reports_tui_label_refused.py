"""The TUI's s / h / c when the label log cannot be written (a labels.jsonl another analyst's account owns, a full
disk): the reason is shown in the status line and the UI stays, its place kept. The OSError went up through textual,
which closed the UI on a traceback; the keys after it went nowhere."""
import asyncio

import pytest

from engine.analyst.store import Workspace

from .test_analyst import HOME, LOAN, PRIZE, PRIZE_VI, _store


def test_a_label_the_log_refuses_is_said_and_the_ui_stays(tmp_path):
    pytest.importorskip("textual")
    from engine.analyst.tui import ReportsApp
    _store(tmp_path, [PRIZE, PRIZE_VI, HOME, LOAN])
    app = ReportsApp(Workspace(tmp_path), tmp_path / "out.tsv")
    log = tmp_path / "labels.jsonl"

    async def drive():
        async with app.run_test() as pilot:
            log.mkdir()                         # what open() says of it stands for EACCES / ENOSPC alike
            await pilot.press("s")
            await pilot.pause()
            refused = str(app.query_one("#status").render())
            log.rmdir()
            await pilot.press("s")              # the same campaign (the cursor did not move on): labelled now
            await pilot.pause()
            return refused, str(app.query_one("#status").render())
    refused, then = asyncio.run(drive())
    assert "not labelled" in refused and str(log) in refused
    assert "2 report(s) labelled spam" in then
    assert [r.label for r in Workspace(tmp_path).reports] == ["spam", "spam", None, None]
