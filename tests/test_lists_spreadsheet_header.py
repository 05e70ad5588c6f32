"""A CSV saved by a spreadsheet whose header is the right one underneath is refused with what to do about it: its
cells separated by ';' (Excel's CSV where the decimal mark is a comma, as in Vietnam's locale) or by tabs, or
empty columns after the last (cells right of the table once touched). It said only "header must be
number,channel, got 'number;channel'", and the engineer was left to compare the two."""
import pytest

from .conftest import run_cli


@pytest.mark.parametrize("body, hint", [
    (b"\xef\xbb\xbfnumber;channel\r\n0912345678;S\r\n", "separated by ';'"),
    (b"Number;Channel;;\r\n0912345678;S;;\r\n", "separated by ';'"),
    (b"number\tchannel\n0912345678\tS\n", "separated by tabs"),
    (b"Number,Channel,,\r\n0912345678,S,,\r\n", "2 empty column(s) after channel"),
])
def test_a_spreadsheets_header_is_refused_saying_why(tmp_path, body, hint):
    f = tmp_path / "dnc.csv"
    f.write_bytes(body)
    r = run_cli("lists", "import", "dnc", str(f), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2
    assert f"dnc.csv:1: header must be number,channel" in r.stderr and hint in r.stderr, r.stderr


@pytest.mark.parametrize("body", [b"number,channel,note\n0912345678,S,x\n", b"0912345678,S\n"])
def test_another_header_gets_no_hint(tmp_path, body):
    f = tmp_path / "dnc.csv"
    f.write_bytes(body)
    r = run_cli("lists", "import", "dnc", str(f), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "header must be" in r.stderr and "(" not in r.stderr.split("got")[1], r.stderr
