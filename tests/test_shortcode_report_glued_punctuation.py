"""A 5656 report whose number is followed by punctuation and the content without a space, as a phone keyboard
leaves it ("S 0912345678,lua dao"): the punctuation ends the number as it does before a space. It was a syntax
error (the subscriber's report refused), or, with the number in digit groups ("S 0912 345 678,lua"), a report
against short code 912 that counted toward SENDER_REPORTED for it."""
import pytest

from engine.rules.shortcode import parse

ME = 84911000001


@pytest.mark.parametrize("text, number, content", [
    ("S 0912345678,lua dao", 84912345678, "lua dao"),
    ("S 0912345678.Lua dao", 84912345678, "Lua dao"),
    ("S 0912345678:vay tien", 84912345678, "vay tien"),
    ("V 0912345678;goi moi vay", 84912345678, "goi moi vay"),
    ("S 0912 345 678,lua dao", 84912345678, "lua dao"),
    ("S +84 912 345 678...vay tien", 84912345678, "vay tien"),
    ("S 0912.345.678,lua", 84912345678, "lua"),
    ("S 8077,trung thuong", 8077, "trung thuong"),
    ("S 0912345678，lua dao", 84912345678, "lua dao"),        # a full-width comma
    # unchanged: punctuation between digits, or with nothing after it
    ("S 0912.345.678 lua", 84912345678, "lua"),
    ("S 0912345678... qc", 84912345678, "qc"),
    ("S 0912345678.", 84912345678, ""),
    ("S 0912345678, lua dao", 84912345678, "lua dao"),
])
def test_punctuation_glued_to_the_content_ends_the_reported_number(text, number, content):
    c = parse(text, ME)
    assert c.symbol == "SPAM_REPORTED", c.detail
    assert (c.reported, c.content) == (number, content)
