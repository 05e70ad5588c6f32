"""The 5656 intake's number parsing and the DNC journal's durability, each case a defect once:

- a reported number written in digit groups and ended by a full stop / "!" / "?" ("S 0912 345 678. Lua dao")
  was read as the short code 912; an area code in parentheses ("V (024) 3999 8888 ...", "S (098) 7654321 ...")
  as the short code 24 / 98; "+84 (0) 912 345 678" was a syntax error;
- "DK DNC" padded with NUL (an SMSC that sends short_message as a C string) was a syntax error, and so was one in
  UCS-2 with one NUL octet after it (an odd length: the octet reads as U+FFFD);
- "DK DNC" from a short code put the short code on the DNC list (`lists import` refuses such rows);
- a JSON-valid journal line whose number is not an E.164 int (-1, 2**64, true, 1.9, "0912...") crashed
  every load (`serve` would not start, `lists export` a traceback) or put a wrong number on the list;
- the journal and reports.jsonl were created without fsyncing their directory (a power cut could lose the
  file with the first confirmed registration / report in it)."""
import json
import subprocess
import sys

import pytest

from engine.lists import ListStore
from engine.lists import journal as journal_mod
from engine.lists import reports as reports_mod
from engine.lists.reports import ReportStore
from engine.rules.shortcode import parse
from engine.smpp_proxy.codec.text import read_text

from .conftest import ROOT

ME = 84912000001


@pytest.mark.parametrize("text, number, content", [
    ("S 0912 345 678. Lua dao", 84912345678, "Lua dao"),
    ("S 0987 654 321! Vay tien", 84987654321, "Vay tien"),
    ("S 0912 345 678? la ai", 84912345678, "la ai"),
    ("S 0912345678... qc", 84912345678, "qc"),
    ("S (098) 7654321 vay tien", 84987654321, "vay tien"),
    ("V (024) 3999 8888 goi lua dao", 842439998888, "goi lua dao"),
    ("S (+84) 912 345 678 x", 84912345678, "x"),
    ("S +84 (0) 987654321 x", 84987654321, "x"),
    # unchanged
    ("S 8077. trung thuong", 8077, "trung thuong"),
    ("S (091)2345678 x", 84912345678, "x"),
    ("S 0912  345 678 x", 84912345678, "x"),
])
def test_reported_number_with_sentence_punctuation_or_parentheses(text, number, content):
    c = parse(text, ME)
    assert c.symbol == "SPAM_REPORTED", c.detail
    assert (c.reported, c.content) == (number, content)


@pytest.mark.parametrize("text, number, content", [
    ("S (0901234567)(vay tien nhanh)", 84901234567, "vay tien nhanh"),
    ("V (024 3999 8888)(goi moi vay)", 842439998888, "goi moi vay"),
    ("S [0901 234 567][vay tien]", 84901234567, "vay tien"),
    ("V [0901234567] [goi moi vay]", 84901234567, "goi moi vay"),
    ("S (0901234567) (vay tien nhanh)", 84901234567, "vay tien nhanh"),
    ("S (8077)(trung thuong)", 8077, "trung thuong"),
    # one bracket round the number and the content: the number was read as "(0912", 912
    ("S (0912 345 678. Lua dao)", 84912345678, "Lua dao"),
    ("V [0912 345 678 goi moi vay]", 84912345678, "goi moi vay"),
    ("S [0901234567 x][y]", 84901234567, "x][y]"),    # a whole number written first: a report, the rest as sent
])
def test_a_report_written_as_circular_22_writes_it_is_a_report(text, number, content):
    """Found by a Decree 91 probe: Circular 22/2021/TT-BTTTT tells subscribers to report "S (Nguon phat tan)(Noi
    dung tin nhan rac)" (or with square brackets, V alike); "S (0901234567)(vay tien nhanh)" was answered
    SHORTCODE_SYNTAX_ERROR ("'(0901234567)(vay' is not a phone number") and the report was lost."""
    c = parse(text, ME)
    assert c.symbol == "SPAM_REPORTED", c.detail
    assert (c.reported, c.content) == (number, content)


@pytest.mark.parametrize("text", ["S ()(x)", "S (lua dao)(qc dem)", "S (lua dao qua)"])
def test_brackets_that_hold_no_whole_number_are_still_a_syntax_error(text):
    # "S (SHOPABC)(qc dem)" names a sender: a report since stop 46 (test_shortcode_sender_names.py)
    assert parse(text, ME).symbol == "SHORTCODE_SYNTAX_ERROR"


@pytest.mark.parametrize("text, channel", [("DK DNC\x00", "SV"), ("DK DNC S\x00\x00", "S"), ("\x00HUY DNC", "SV")])
def test_nul_padding_is_not_part_of_a_command(text, channel):
    c = parse(text, ME)
    assert c.channel == channel and c.op in ("dnc_add", "dnc_remove"), c.detail


def test_nul_padding_is_not_part_of_report_content():
    assert parse("S 0912345678 qc\x00", ME).content == "qc"


@pytest.mark.parametrize("body, channel", [
    ("DK DNC".encode("utf-16-be") + b"\x00", "SV"),
    ("HỦY DNC S".encode("utf-16-be") + b"\x00", "S"),
    ("DK DNC V".encode("utf-16-be") + b"\x00\x00\x00", "V"),
])
def test_one_nul_octet_after_ucs2_text_is_not_part_of_a_command(body, channel):
    # an odd UCS-2 body read with a U+FFFD for its NUL last octet; a command with it was a syntax error (found by a
    # probe). A NUL octet is padding: nothing; any other odd octet is still a U+FFFD
    text, reading = read_text(8, body)
    assert reading == "ucs2" and not text.endswith("\ufffd")
    assert read_text(8, body[:-1] + b"A")[0].endswith("\ufffd")
    assert parse(read_text(8, body[:-1] + b"A")[0], ME).symbol == "SHORTCODE_SYNTAX_ERROR"
    c = parse(text, ME)
    assert c.channel == channel and c.op in ("dnc_add", "dnc_remove"), c.detail


def test_one_nul_octet_after_ucs2_text_is_not_part_of_report_content():
    text, _ = read_text(8, "S 0912345678 qc".encode("utf-16-be") + b"\x00")
    assert parse(text, ME).content == "qc"
    assert parse("S 0912345678 q\ufffd", ME).content == "q\ufffd"          # a U+FFFD in the text stays


def test_dnc_command_from_a_short_code_is_refused():
    c = parse("DK DNC", 8077)
    assert c.symbol == "SHORTCODE_SYNTAX_ERROR" and c.op is None


BAD_LINES = [
    '{"op": "add", "number": -1, "channel": "SV"}',
    '{"op": "add", "number": 18446744073709551616, "channel": "SV"}',
    '{"op": "add", "number": true, "channel": "S"}',
    '{"op": "add", "number": 1.9, "channel": "S"}',
    '{"op": "add", "number": "0912000009", "channel": "S"}',
    '{"op": "remove", "number": null, "channel": "S"}',
]


def _journal(data_dir, lines):
    p = data_dir / "lists" / "dnc.delta"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(line + "\n" for line in lines))
    return p


def test_journal_line_with_a_number_out_of_range_or_ill_typed_is_kept_not_a_crash(tmp_path):
    good = '{"op": "add", "number": 84912000001, "channel": "SV"}'
    good2 = '{"op": "add", "number": 84912000002, "channel": "S"}'
    p = _journal(tmp_path, [good] + BAD_LINES + [good2])
    store = ListStore(tmp_path)
    L = store.load()
    assert set(L.dnc_s) == {84912000001, 84912000002} and set(L.dnc_v) == {84912000001}
    assert len(store.warnings) == len(BAD_LINES)
    assert all(f"dnc.delta:{n}:" in w for n, w in zip(range(2, 2 + len(BAD_LINES)), store.warnings))
    # the next write folds the good lines and keeps the bad ones aside
    store.add("dnc", "0912000003", "V")
    rejected = (p.parent / "dnc.delta.rejected").read_text().splitlines()
    assert rejected == BAD_LINES
    assert set(ListStore(tmp_path).load().dnc_v) == {84912000001, 84912000003}


def test_serve_starts_and_export_works_with_a_damaged_journal_line(tmp_path):
    _journal(tmp_path, ['{"op": "add", "number": 84912000001, "channel": "SV"}', BAD_LINES[0]])
    r = subprocess.run([sys.executable, "-m", "engine.cli", "lists", "export", "dnc", "--data-dir", tmp_path],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["number,channel", "+84912000001,SV"]
    assert "Traceback" not in r.stderr


def test_journal_created_with_its_directory_entry_fsynced(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(journal_mod, "fsync_dir", lambda d: synced.append(d))
    store = ListStore(tmp_path / "data")
    store.append_delta("add", 84912000001, "SV")
    assert store.delta_path.parent in synced and store.delta_path.parent.parent in synced
    synced.clear()
    store.append_delta("add", 84912000002, "SV")      # an existing file: one fsync, no directory fsync
    assert synced == []


def test_reports_file_created_with_its_directory_entry_fsynced(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(reports_mod, "fsync_dir", lambda d: synced.append(d))
    rs = ReportStore(tmp_path / "data")
    rec = {"reporter": "+84912000001", "reported": "+84987654321", "content": "x", "time": "2026-01-01T00:00:00+00:00",
           "kind": "S", "label": None}
    rs.append(rec)
    assert synced == [rs.path.parent]
    rs.append(rec)
    assert synced == [rs.path.parent]
    assert [json.loads(x) for x in rs.path.read_text().splitlines()] == [rec, rec]
