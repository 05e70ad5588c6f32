"""`reports tui`'s e key: an export that cannot be written (--export names a directory, or a place the analyst may
not write) is said on the status line, as `reports export` says it, and the UI stays open; an OSError there ended
the app with a traceback."""
import asyncio

import pytest

pytest.importorskip("textual")

from engine.analyst.store import Workspace
from engine.analyst.tui import ReportsApp

from .test_analyst import HOME, PRIZE, _store


def _export_status(tmp_path, out):
    _store(tmp_path, [PRIZE, HOME])
    Workspace(tmp_path).label([r.id for r in Workspace(tmp_path).reports], "spam")
    app = ReportsApp(Workspace(tmp_path), out)

    async def drive():
        async with app.run_test() as pilot:
            await pilot.press("e")
            await pilot.pause()
            status = str(app.query_one("#status").render())
            await pilot.press("s")                  # still running: keys still label
            await pilot.pause()
            return status, app.is_running
    return asyncio.run(drive())


def test_an_export_to_a_directory_is_said_on_the_status_line(tmp_path):
    (tmp_path / "outdir").mkdir()
    status, running = _export_status(tmp_path, tmp_path / "outdir")
    assert running and "not exported" in status and "outdir" in status


def test_an_export_where_it_cannot_be_written_is_said_on_the_status_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    status, running = _export_status(tmp_path, tmp_path / "afile" / "out.tsv")      # a file as its directory
    assert running and "not exported" in status and "afile" in status


def test_the_e_key_says_the_labelled_reports_with_no_text_it_left_out(tmp_path):
    """`reports export` names the labelled reports it leaves out for having no text (a 5656 `S 0912345678` with no
    content); the e key, "the same in a terminal UI", said only how many rows it wrote."""
    _store(tmp_path, [""])
    status, running = _export_status(tmp_path, tmp_path / "out.tsv")
    assert running and "wrote 2 rows (2 spam, 0 ham)" in status, status
    assert "1 labelled report(s) with no text left out" in status, status
