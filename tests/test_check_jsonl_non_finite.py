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
