"""`ml train --data reports.jsonl`: a store whose first line is bad (a report a crash cut short, a line that is
not UTF-8, one a hand edit broke) is still the report store: read with the labels of labels.jsonl beside it and
that line named, not taken for a file of labelled records whose every report then counted as unlabelled."""
import json

from engine.analyst.store import Workspace
from engine.ml.data import read_dataset

SPAM = ["Ban da trung thuong 50.000.000d, nhan thuong tai http://bit.ly/abc truoc 12h",
        "Vay tien nhanh khong can the chap, giai ngan 30 phut, goi 0901234567"]
HAM = ["Anh oi toi nay an com o nha nhe, em nau canh chua", "Con da den truong roi, chieu me don con luc 5h nhe"]


def _store(d, first: bytes):
    lines = [json.dumps({"reporter": f"8491200{i:04d}", "reported": "84987654321", "content": t,
                         "time": "2026-11-30T10:00:00+07:00", "kind": "S", "label": None}) + "\n"
             for i, t in enumerate(SPAM + HAM)]
    (d / "reports.jsonl").write_bytes(first + "".join(lines).encode())
    ws = Workspace(d)
    ws.label([r.id for r in ws.reports[:len(SPAM)]], "spam")
    ws.label([r.id for r in ws.reports[len(SPAM):]], "ham")
    return d / "reports.jsonl"


def test_a_store_whose_first_line_a_crash_cut_short_is_read_with_its_labels(tmp_path):
    store = _store(tmp_path, b'{"reporter": "84912000999", "content": "cut sh\n')
    ds = read_dataset(store)
    assert ds.texts == SPAM + HAM and ds.labels == [1, 1, 0, 0]
    assert ds.info["unlabelled_skipped"] == 0
    assert len(ds.errors) == 1 and ds.errors[0].startswith(f"{store}:1: not JSON")


def test_a_store_whose_first_line_is_not_utf8_is_read_with_its_labels(tmp_path):
    store = _store(tmp_path, b'{"reporter": "84912000999", "content": "caf\xe9", "time": "", "kind": "S"}\n')
    ds = read_dataset(store)
    assert ds.texts == SPAM + HAM and ds.labels == [1, 1, 0, 0]
    assert len(ds.errors) == 1 and ds.errors[0].startswith(f"{store}:1: not valid UTF-8")
