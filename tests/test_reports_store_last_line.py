"""A report store whose last line has no newline after it: a whole JSON object there is a report (a store written by
hand or with "\\n".join, as the analyst's loop allows: its last report was left out of `reports list`, `label`,
`export` and `ml train` without a word); a line not yet whole is still one serve is writing, skipped unsaid."""
import json

from engine.analyst.store import Workspace
from engine.ml.data import read_dataset

from .test_analyst import HOME, LOAN


def _line(text, label=None):
    return json.dumps({"reporter": "+84912000001", "reported": "+84987654321", "content": text,
                       "time": "2026-11-30T10:00:00+07:00", "kind": "S", "label": label})


def test_a_whole_last_line_without_a_newline_is_a_report_with_the_id_it_keeps(tmp_path):
    store = tmp_path / "reports.jsonl"
    store.write_text("\n".join([_line(HOME, "ham"), _line(LOAN, "spam")]))
    ws = Workspace(tmp_path)
    assert [r.content for r in ws.reports] == [HOME, LOAN] and ws.errors == []
    assert read_dataset(store).labels == [0, 1]
    ids = [r.id for r in ws.reports]
    with open(store, "a") as f:
        f.write("\n")
    assert [r.id for r in Workspace(tmp_path).reports] == ids


def test_a_last_line_not_yet_whole_is_skipped_unsaid(tmp_path):
    (tmp_path / "reports.jsonl").write_text(_line(HOME) + "\n" + _line(LOAN)[:40])
    ws = Workspace(tmp_path)
    assert [r.content for r in ws.reports] == [HOME] and ws.errors == []
