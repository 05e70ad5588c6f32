"""A DNC command in the quotes or brackets it was copied with (found by a Decree 91 probe): the instructions
subscribers copy write it quoted (Soạn "DK DNC" gửi 5656, a handset's “smart” quotes too), and only the closing
quote was ignored (trailing punctuation), so '"DK DNC"' was answered as a syntax error and the registration not
made. Quotes and brackets round the whole command are not part of it; other leading punctuation (".DK DNC") still
makes an error (test_shortcode_intake.py)."""
import json

import pytest

from engine.rules.shortcode import parse

from .conftest import run_cli

ME = 84912000001


@pytest.mark.parametrize("text, symbol, channel", [
    ('"DK DNC"', "DNC_REGISTERED", "SV"),
    ("\u201cDK DNC S\u201d", "DNC_REGISTERED", "S"),
    ("'dk dnc v'", "DNC_REGISTERED", "V"),
    ("(DK DNC)", "DNC_REGISTERED", "SV"),
    ("[HUY DNC S]", "DNC_CANCELLED", "S"),
    ("\u00abHỦY DNC\u00bb", "DNC_CANCELLED", "SV"),
    ('  "DK DNC".', "DNC_REGISTERED", "SV"),
])
def test_quotes_round_a_command_are_not_part_of_it(text, symbol, channel):
    c = parse(text, ME)
    assert (c.symbol, c.channel) == (symbol, channel), c.detail


@pytest.mark.parametrize("text", ['"DK DNCX"', '"DK" DNC', '.DK DNC', '"DK DNC Z"'])
def test_a_quoted_mistake_is_still_an_error(text):
    assert parse(text, ME).symbol == "SHORTCODE_SYNTAX_ERROR"


def test_a_quoted_registration_blocks_the_next_ad(tmp_path, data_dir):
    run_cli("lists", "add", "senders", "SHOPABC", "--owner", "Shop ABC", "--category", "QC", "--data-dir", data_dir)
    lines = [{"id": "dk", "kind": "sms", "sender": "0912000071", "recipient": "5656", "text": "\u201cDK DNC\u201d",
              "time": "2026-11-28T10:00:00+07:00"},
             {"id": "ad", "kind": "sms", "sender": "SHOPABC", "recipient": "0912000071",
              "text": "[QC] Giam gia. TC gui 5656", "time": "2026-11-28T10:00:01+07:00"}]
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    p = run_cli("check", "--jsonl", f, "--data-dir", data_dir)
    assert p.returncode == 0, p.stderr
    out = {v["id"]: v for v in map(json.loads, p.stdout.splitlines())}
    assert [h["symbol"] for h in out["dk"]["hits"]] == ["DNC_REGISTERED"]
    assert [h["symbol"] for h in out["ad"]["hits"]] == ["AD_TO_DNC"]
