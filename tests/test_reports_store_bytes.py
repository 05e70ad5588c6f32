"""The 5656 report store read byte for byte: a line that is not UTF-8 is said as `check --jsonl` and `ml train`
say it (found by the CLI audit: "not JSON ('utf-8' codec can't decode byte 0xe9 in position 80: invalid
continuation byte)", and a line starting 0xFF 0xFE was read as UTF-16); a BOM is no part of line 1."""
import json

from engine.analyst.store import Workspace

PRIZE = "Ban da trung thuong 50.000.000d tu chuong trinh tri an, nhan thuong tai http://bit.ly/abc truoc 12h"


def _line(content):
    return json.dumps({"reporter": "84912000001", "reported": "84987654321", "content": content,
                       "time": "2026-11-30T10:00:00+07:00", "kind": "S", "label": None}, ensure_ascii=False)


def test_a_store_line_that_is_not_utf8_is_said_so_as_the_other_readers_say_it(tmp_path):
    store = tmp_path / "reports.jsonl"
    bad = _line("Ưu đãi café")
    store.write_bytes(b"\xef\xbb\xbf" + _line(PRIZE).encode() + b"\n"
                      + bad.encode().replace("café".encode(), b"caf\xe9") + b"\n"      # Latin-1's é
                      + b"\xff\xfe{}\n")
    ws = Workspace(tmp_path)
    assert ws.errors == [f"{store}:2: not valid UTF-8: byte 0xe9 at column {bad.index('café') + 4}",
                         f"{store}:3: not valid UTF-8: byte 0xff at column 1"]
    assert [r.content for r in ws.reports] == [PRIZE]


def test_a_store_line_with_half_a_surrogate_pair_is_a_bad_line_not_a_traceback(tmp_path):
    # "\ud83d" without its pair is valid JSON but no character: `reports list --json` (and show, export) stopped on
    # a UnicodeEncodeError traceback printing it (found by a probe of odd encodings)
    from .conftest import run_cli
    store = tmp_path / "reports.jsonl"
    store.write_text(_line("vay \\ud83d tien").replace("\\\\ud83d", "\\ud83d") + "\n" + _line(PRIZE) + "\n"
                     + _line("pair \U0001F600 kept") + "\n")
    ws = Workspace(tmp_path)
    assert ws.errors == [f"{store}:1: not valid Unicode: \\ud83d is half of a surrogate pair, without its other half"]
    assert [r.content for r in ws.reports] == [PRIZE, "pair \U0001F600 kept"]
    p = run_cli("reports", "list", "--json", "--reports", store, "--data-dir", tmp_path)
    assert p.returncode == 0 and "Traceback" not in p.stderr and len(p.stdout.splitlines()) == 2, p.stderr
