"""`ml compare --data` on unlabelled text (the report store nobody has labelled, a `check` corpus): a line whose JSON
has a `\\ud83d` escape without the other half of its pair, or bytes that are not UTF-8, is a bad line named
`FILE:LINE: why` and skipped, as the labelled readers and `reports` do. The surrogate was scored and then stopped
--changes on a traceback (UnicodeEncodeError, exit 1, after the scoring); the bytes were scored as U+FFFD."""
import json

from engine.analyst.compare import read_messages

from .conftest import run_cli
from .test_analyst import BUNDLED

TEXTS = ["Ban da trung thuong 50.000.000d, nhan thuong tai http://bit.ly/abc truoc 12h",
         "Anh oi toi nay an com o nha nhe", "Con da den truong roi, chieu me don con luc 5h nhe"]


def _store(tmp_path):
    lines = [json.dumps({"reporter": f"+8491200000{i}", "reported": "+84987654321", "content": t,
                         "time": "2026-12-01T10:00:00+07:00", "kind": "S", "label": None}).encode()
             for i, t in enumerate(TEXTS)]
    lines.insert(1, b'{"reporter": "+84912000009", "content": "WIN \\ud83d a prize now", "time": "t", "kind": "S"}')
    lines.insert(3, b'{"reporter": "+84912000008", "content": "caf\xe9 khuyen mai", "time": "t", "kind": "S"}')
    store = tmp_path / "reports.jsonl"
    store.write_bytes(b"\n".join(lines) + b"\n")
    return store


def test_unlabelled_lines_no_utf8_output_can_hold_are_bad_lines(tmp_path):
    store = _store(tmp_path)
    m = read_messages([store])
    assert m.labels is None and m.texts == TEXTS
    assert [e.split(": ", 1)[0] for e in m.errors] == [f"{store}:2", f"{store}:4"], m.errors
    assert "half of a surrogate pair" in m.errors[0] and "not valid UTF-8: byte 0xe9" in m.errors[1]


def test_compare_with_changes_on_such_a_store_writes_them(tmp_path):
    store, changes = _store(tmp_path), tmp_path / "changes.csv"
    r = run_cli("ml", "compare", "--model", BUNDLED, "--model", BUNDLED, "--data", store, "--changes", changes,
                "--no-progress", "--data-dir", tmp_path / "d")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["messages"] == 3 and changes.exists()
    assert f"{store}:2: not valid Unicode" in r.stderr


def test_unlabelled_empty_texts_and_calls_are_counted_not_dropped_unsaid(tmp_path):
    # a `check` corpus line whose text is empty (or blanks) was skipped and counted nowhere, and so were its call
    # records: said as `ml eval` / `ml train` say them (a bad line "empty text"; call records skipped, counted)
    corpus = tmp_path / "corpus.jsonl"
    recs = [{"kind": "sms", "text": TEXTS[0]}, {"kind": "sms", "text": ""}, {"kind": "call", "caller": "0901"},
            {"kind": "sms", "text": "  \t"}, {"kind": "sms", "text": TEXTS[1]}, {"kind": "call", "caller": "0902"}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in recs))
    m = read_messages([corpus])
    assert m.labels is None and m.texts == TEXTS[:2]
    assert m.errors == [f"{corpus}:2: empty text", f"{corpus}:4: empty text"]
    assert m.notes == [f"{corpus}: 2 call records skipped (no text to classify)"]
    r = run_cli("ml", "compare", "--model", BUNDLED, "--model", BUNDLED, "--data", corpus, "--no-progress",
                "--data-dir", tmp_path / "d")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["messages"] == 2
    assert f"telfilter ml compare: skipped bad line: {corpus}:2: empty text" in r.stderr
    assert f"telfilter ml compare: {corpus}: 2 call records skipped" in r.stderr
