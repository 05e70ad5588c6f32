"""A 5656 report typed without the space after its S or V ("S0912345678 lua dao", Circular 22's bracket form
"S(0912345678)(lua dao)"): commands are matched whitespace-insensitively (README, Short code 5656; "DKDNC" is a
registration), but such a report was a syntax error and the subscriber's report refused."""
import pytest

from engine.rules.shortcode import parse

ME = 84911000001


@pytest.mark.parametrize("text, kind, number, content", [
    ("S0912345678 lua dao", "S", 84912345678, "lua dao"),
    ("s0912345678 lua dao", "S", 84912345678, "lua dao"),
    ("V02439998888 goi moi vay", "V", 842439998888, "goi moi vay"),
    ("S+84912345678 vay tien", "S", 84912345678, "vay tien"),
    ("S0912 345 678 vay tien", "S", 84912345678, "vay tien"),
    ("S(0912345678)(lua dao)", "S", 84912345678, "lua dao"),
    ("V[0912345678][goi rac]", "V", 84912345678, "goi rac"),
    ("Ｓ０９１２３４５６７８ lua dao", "S", 84912345678, "lua dao"),
])
def test_a_report_without_the_space_after_s_or_v_is_a_report(text, kind, number, content):
    c = parse(text, ME)
    assert c.symbol == "SPAM_REPORTED", c.detail
    assert (c.kind, c.reported, c.content) == (kind, number, content)


@pytest.mark.parametrize("text", ["SPAM 0912345678 x", "SV 0912345678 x", "Sx 0912345678", "VAY TIEN 0912345678"])
def test_other_words_starting_with_s_or_v_are_still_no_report_kind(text):
    c = parse(text, ME)
    assert c.symbol == "SHORTCODE_SYNTAX_ERROR" or c.kind in (None, "FW"), (c.symbol, c.detail)
