"""An SMS with an empty text is refused by `check`, named, as a missing text is: `--text ""` (a script's empty
variable) is a usage error, exit 2, and a `check --jsonl` line or a `rules test` corpus line with `"text": ""` is
refused as each file's other bad lines are (an error record; FILE:LINE: skipped). Judged, it was an allow that said
nothing of the text. A usage error of one message is said before --out is touched: it was replaced by an empty file."""
import json

import pytest

from engine.records import EMPTY_TEXT

from .conftest import run_cli

ONE = ["--sender", "0901234567", "--recipient", "0912999999"]
LINE = {"kind": "sms", "sender": "0901234567", "recipient": "0912999999", "time": "2026-03-02T10:00:00+07:00"}


def test_an_empty_text_is_a_usage_error_naming_it(data_dir):
    p = run_cli("check", "--data-dir", data_dir, *ONE, "--text", "")
    assert p.returncode == 2, p.stderr
    assert p.stdout == ""
    assert p.stderr.strip().splitlines()[-1].endswith("--text is empty: one message needs its text")


@pytest.mark.parametrize("argv", [["--text", ""], ["--text", "hi", "--time", "yesterday"], ["--sender", "X"]])
def test_a_usage_error_of_one_message_leaves_out_as_it_was(data_dir, tmp_path, argv):
    out = tmp_path / "verdicts.jsonl"
    out.write_text("earlier verdicts\n")
    p = run_cli("check", "--data-dir", data_dir, *(ONE if argv[0] != "--sender" else []), *argv, "--out", out)
    assert p.returncode == 2, p.stderr
    assert out.read_text() == "earlier verdicts\n"


def test_a_jsonl_line_with_an_empty_text_is_an_error_record_and_the_others_are_judged(data_dir, tmp_path):
    lines = [dict(LINE, id="a", text="hello"), dict(LINE, id="b", text=""), dict(LINE, id="c", text=" ")]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(x) + "\n" for x in lines))
    p = run_cli("check", "--data-dir", data_dir, "--jsonl", inp)
    assert p.returncode == 0, p.stderr
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert out[1] == {"line": 2, "id": "b", "error": EMPTY_TEXT}
    assert [o.get("id") for o in out] == ["a", "b", "c"] and "action" in out[0] and "action" in out[2]


def test_a_rules_test_corpus_line_with_an_empty_text_is_skipped_naming_its_line(data_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps(dict(LINE, text="hello")) + "\n" + json.dumps(dict(LINE, text="")) + "\n")
    p = run_cli("rules", "test", "--corpus", corpus, "--data-dir", data_dir)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["skipped_lines"] == 1
    assert f"{corpus}:2: skipped: {EMPTY_TEXT}" in p.stderr
