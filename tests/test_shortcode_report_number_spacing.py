"""A 5656 report's number as subscribers type it (found by a Decree 91 probe): digit groups more than one space apart
("S 0987  000  777 ...", an autocorrect's or a copied call log's spacing) were not joined, the first group alone was
read, and "0987" made the short code 987: the report counted against 987, never against the sender, and the reporter
was told "S report against 987". A group written with its trunk 0 is no short code (Vietnamese short codes never start
with 0): a report whose number is such a fragment (a digit too many or too few: "S 0987 000 7771 ...") is a syntax
error, which tells the subscriber to send it again, not a report against a number nobody holds."""
import json

import pytest

from engine.rules.shortcode import parse

from .conftest import run_cli

ME = 84912000001


@pytest.mark.parametrize("text, number, content", [
    ("S 0987  000  777 lua dao", 84987000777, "lua dao"),
    ("S 0912  345 678 x", 84912345678, "x"),
    ("V 024   3999 8888 goi rac", 842439998888, "goi rac"),
    ("S 0987\u00a0\u00a0000 777 lua", 84987000777, "lua"),
    ("S 0987\u202f000\u202f777 lua", 84987000777, "lua"),          # a formatter's narrow no-break space
    ("S \uff10\uff19\uff18\uff17\u3000\uff10\uff10\uff10\u3000\uff17\uff17\uff17 lua", 84987000777, "lua"),  # full-width
    ("S (0987  000  777)(vay tien)", 84987000777, "vay tien"),
    # unchanged: short codes, a number followed by figures of the content
    ("S 8077 trung thuong", 8077, "trung thuong"),
    ("S 191  khuyen mai", 191, "khuyen mai"),
    ("S 0987000777  1 ty dong", 84987000777, "1 ty dong"),
])
def test_digit_groups_a_few_spaces_apart_are_one_number(text, number, content):
    c = parse(text, ME)
    assert c.symbol == "SPAM_REPORTED", c.detail
    assert (c.reported, c.content) == (number, content)


@pytest.mark.parametrize("text", [
    "S 0987 000 7771 lua dao",        # a digit too many
    "S 0987 000 77 lua dao",          # a digit too few
    "S 0987\n000\n777 lua",           # the groups on lines of their own
    "S 0912\n345678 x",
    "S (0987)(lua dao)",
    "V 09870 goi rac",
])
def test_a_fragment_with_its_trunk_zero_is_no_short_code(text):
    c = parse(text, ME)
    assert c.symbol == "SHORTCODE_SYNTAX_ERROR", c.detail
    assert "not a phone number" in c.detail


def test_three_reports_so_written_stop_the_sender(tmp_path, data_dir):
    """End to end: three subscribers report 0987000777 with its groups two spaces apart; its next SMS is dropped
    SENDER_REPORTED (the reports counted against 987 and it went through)."""
    lines = [{"id": f"r{i}", "kind": "sms", "sender": f"091100000{i}", "recipient": "5656",
              "text": "S 0987  000  777 lua dao", "time": f"2026-11-28T10:00:0{i}+07:00"} for i in range(1, 4)]
    lines.append({"id": "spam", "kind": "sms", "sender": "0987000777", "recipient": "0912000009",
                  "text": "Ban da trung thuong", "time": "2026-11-28T10:05:00+07:00"})
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    p = run_cli("check", "--jsonl", f, "--data-dir", data_dir)
    assert p.returncode == 0, p.stderr
    out = {v["id"]: v for v in map(json.loads, p.stdout.splitlines())}
    assert [out[f"r{i}"]["hits"][0]["detail"] for i in range(1, 4)] == ["S report against +84987000777"] * 3
    assert out["spam"]["action"] == "drop"
    assert "SENDER_REPORTED" in [h["symbol"] for h in out["spam"]["hits"]]
