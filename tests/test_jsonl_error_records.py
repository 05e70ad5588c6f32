"""`check --jsonl` and `ml predict --jsonl` write a refused line's record alike: {"line", "id", "error"}, the id
when the line had one that can be written back. `ml predict` left the id out (`{"id": "b"}` without text gave
`{"line": 2, "error": ...}`), so its errors could not be joined back to the input by id as check's can."""
import json

from .conftest import run_cli

SMS = '"kind": "sms", "sender": "0901234567", "recipient": "0912345678", "text": "hi", "time": "2026-03-02T10:00:00Z"'


def _lines(p):
    assert p.returncode == 0, p.stderr
    return [json.loads(x) for x in p.stdout.splitlines()]


def test_predict_error_records_carry_the_id_as_checks_do(data_dir):
    bad = ['{"id": "b"}', '{"id": "c", "text": 5}', '{"id": "d\\ud800", "text": "x"}', '{"id": "e", "k": "\\udc00"}',
           '{"text": 5}']
    pred = _lines(run_cli("ml", "predict", "--model", "engine/ml/default_model", "--jsonl", "-",
                          input="\n".join(['{"id": "a", "text": "see you at 5"}'] + bad) + "\n"))
    assert pred[0]["id"] == "a" and "probability" in pred[0]
    assert [(o["line"], o.get("id"), list(o)) for o in pred[1:]] == [
        (2, "b", ["line", "id", "error"]), (3, "c", ["line", "id", "error"]), (4, None, ["line", "error"]),
        (5, "e", ["line", "id", "error"]), (6, None, ["line", "error"])]
    chk = _lines(run_cli("check", "--jsonl", "-", "--data-dir", data_dir,
                         input="\n".join(['{"id": "a", %s}' % SMS] + bad) + "\n"))
    assert [(o["line"], o.get("id"), list(o)) for o in chk[1:]] == [(o["line"], o.get("id"), list(o)) for o in pred[1:]]
