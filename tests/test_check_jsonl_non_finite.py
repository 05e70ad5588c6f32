"""`check --jsonl` writes JSON: a line whose `id` (written back) holds NaN, Infinity or a number too large for a
float (`1e400`, which json.loads reads as inf) is refused as that line's error. It was judged and its verdict written
with `"id": Infinity` / `"id": NaN`, which no strict JSON reader takes (RFC 8259 has no such numbers)."""
import json

import pytest

from .conftest import run_cli

SMS = '"kind": "sms", "sender": "0901234567", "recipient": "0912345678", "text": "hi", "time": "2026-03-02T10:00:00Z"'


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "[1, -1e400]", '{"a": NaN}'])
def test_check_output_stays_json(tmp_path, data_dir, number):
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": %s, %s}\n{"id": "ok", %s}\n' % (number, SMS, SMS))
    p = run_cli("check", "--jsonl", f, "--data-dir", data_dir)
    assert p.returncode == 0, p.stderr
    out = [json.loads(x, parse_constant=lambda c: pytest.fail(f"{c} in the output: {x}"))
           for x in p.stdout.splitlines()]
    assert out[0] == {"line": 1, "error": out[0]["error"]} and "id must be a string or a finite number" in out[0]["error"]
    assert out[1]["id"] == "ok" and out[1]["action"] == "allow"


def test_rules_test_skips_such_a_line(tmp_path, data_dir):
    f = tmp_path / "corpus.jsonl"
    f.write_text('{"id": NaN, %s}\n{"id": "ok", %s}\n' % (SMS, SMS))
    p = run_cli("rules", "test", "--corpus", f, "--data-dir", data_dir)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the output"))
    assert report["messages"] == 1 and report["skipped_lines"] == 1
    assert f"{f}:1: skipped: id must be a string or a finite number" in p.stderr


def test_ml_predict_refuses_such_a_line():
    p = run_cli("ml", "predict", "--model", "engine/ml/default_model", "--jsonl", "-",
                input='{"id": Infinity, "text": "see you at 5"}\n{"id": 2, "text": "see you at 5"}\n')
    assert p.returncode == 0, p.stderr
    out = [json.loads(x, parse_constant=lambda c: pytest.fail(f"{c} in the output: {x}")) for x in p.stdout.splitlines()]
    assert out[0]["line"] == 1 and "id must be a string or a finite number" in out[0]["error"]
    assert out[1]["id"] == 2
