"""A 5656 DK DNC is taken only from a subscriber's whole number, as `lists import dnc` takes one (README, List CSV
formats): from a truncated number (84912345), one with a digit too many (849123456789) or a number of no country
(+999...) it was registered, so `lists export dnc` wrote rows `lists import dnc` refuses, and a restore of that
export with --replace (refused whole when a row is bad) failed. A HUY DNC from such a number still removes it (a
list an earlier version wrote may hold it)."""
import pytest

from engine.lists import ListStore
from engine.rules.shortcode import parse

from .conftest import run_cli


@pytest.mark.parametrize("sender", [84912345, 849123456789, 8491234567890, 999123456789, 841900123456])
def test_dk_dnc_from_a_number_no_subscriber_has_is_a_syntax_error(sender):
    c = parse("DK DNC", sender)
    assert (c.symbol, c.op) == ("SHORTCODE_SYNTAX_ERROR", None), c.detail
    assert "not a subscriber number" in c.detail


@pytest.mark.parametrize("sender", [84912345678, 842439998888, 14155552671])
def test_dk_dnc_from_a_whole_number_registers(sender):
    assert parse("DK DNC S", sender).op == "dnc_add"


def test_huy_dnc_from_such_a_number_still_removes_it():
    assert parse("HUY DNC", 84912345).op == "dnc_remove"


def test_an_export_after_5656_commands_imports_back(tmp_path):
    lines = "\n".join('{"kind": "sms", "id": %d, "sender": "%s", "recipient": "5656", "text": "DK DNC", '
                      '"time": "2026-03-02T10:00:00+07:00"}' % (i, s)
                      for i, s in enumerate(["84912345", "+999123456789", "0912345678"]))
    src = tmp_path / "in.jsonl"
    src.write_text(lines + "\n")
    run_cli("check", "--data-dir", tmp_path / "a", "--jsonl", src, check=True)
    out = tmp_path / "dnc.csv"
    run_cli("lists", "--data-dir", tmp_path / "a", "export", "dnc", "--out", out, check=True)
    r = run_cli("lists", "--data-dir", tmp_path / "b", "import", "dnc", out, "--replace")
    assert r.returncode == 0, r.stderr
    assert ListStore(tmp_path / "b").load().in_dnc(84912345678, "S")
