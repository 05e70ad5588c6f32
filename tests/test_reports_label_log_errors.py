"""A bad line of labels.jsonl is named as a bad line of the report store is: found by an analyst pass, a line
that is no JSON was said only in the decoder's words ("labels.jsonl:2: Expecting value: line 1 column 1 (char
0)"), beside "reports.jsonl:51: not JSON (...)" for the same kind of line in the store."""
import json

from engine.analyst.store import LabelLog


def test_a_label_line_that_is_no_json_says_so(tmp_path):
    (tmp_path / "labels.jsonl").write_text('{"id": "r1", "label": "maybe"}\nnot json\n'
                                           + json.dumps({"id": "r2", "label": "spam"}) + "\n")
    labels, errors = LabelLog(tmp_path).load()
    assert labels == {"r2": "spam"}
    p = tmp_path / "labels.jsonl"
    assert errors[0] == f"{p}:1: needs `id` and `label` spam, ham or null"
    assert errors[1].startswith(f"{p}:2: not JSON (Expecting value")
