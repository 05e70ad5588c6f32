"""labels.jsonl and the grouping options as an analyst meets them: a bad line of labels.jsonl is named as a bad
line of the report store is (a line that is no JSON was said only in the decoder's words, "labels.jsonl:2: Expecting
value: line 1 column 1 (char 0)"), and a --similarity outside (0, 1] is refused, 0 included."""
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


def test_a_similarity_of_0_is_refused_not_taken_for_the_default(tmp_path):
    """`reports list --similarity 0` grouped at the default 0.5 (0 read as "not given"); 1.5 and nan were refused."""
    import subprocess
    import sys

    from .conftest import ROOT
    report = {"reporter": "+84912000001", "reported": "+84912000002", "content": "Vay tien nhanh",
              "time": "2026-12-01T10:00:00+07:00", "kind": "S", "label": None}
    (tmp_path / "reports.jsonl").write_text(json.dumps(report) + "\n")
    r = subprocess.run([sys.executable, "-m", "engine.cli", "reports", "list", "--similarity", "0", "--data-dir",
                        tmp_path], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "similarity must be in (0, 1], got 0.0" in r.stderr, (r.returncode, r.stderr)
