"""`ml predict` has nothing to score in an empty text: `--text ""` (or only blanks: a shell variable left unset,
`--text "$MSG"`) was scored, the model's bias alone given as the text's probability (0.0017, "allow"), exit 0. It is
refused now, exit 2, as `ml train` and `ml eval` take such a line of their data for a bad one ("empty text"); in
`--jsonl` such a line gets an error record, as a line without a string `text` does, and a blank line is skipped,
as everywhere else JSONL is read."""
import json

import pytest

from .conftest import run_cli

MODEL = "engine/ml/default_model"


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_an_empty_text_is_refused(text):
    p = run_cli("ml", "predict", "--model", MODEL, "--text", text)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("telfilter ml predict: error: --text is empty: there is nothing to score (a text of blanks "
                        "only is no message)\n")


def test_an_empty_text_in_jsonl_is_an_error_record_and_a_blank_line_is_skipped():
    p = run_cli("ml", "predict", "--model", MODEL, "--jsonl", "-",
                input='{"id": 1, "text": ""}\n\n{"id": 2, "text": "  "}\n{"id": 3, "text": "see you at 5"}\n')
    assert p.returncode == 0, p.stderr
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert out[:2] == [{"line": 1, "id": 1, "error": "empty text: there is nothing to score"},
                       {"line": 3, "id": 2, "error": "empty text: there is nothing to score"}]
    assert out[2]["id"] == 3 and "probability" in out[2] and len(out) == 3
