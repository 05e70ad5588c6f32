"""A 5656 report against a sender name followed by punctuation and the content with no space ("S VCB,lua dao"): the
punctuation ends the name as it does before a space ("S VCB, lua dao", README: Short code 5656) and as it ends a number
(test_shortcode_report_glued_punctuation). It was a syntax error, the report refused. A dot inside a name stays in it
(FPT.SHOP is a name)."""
import pytest

from engine.rules.shortcode import parse

ME = 84912000001


def known(name):
    return name.casefold() in {"vcb", "fe credit", "fpt.shop"}


@pytest.mark.parametrize("text, name, content", [
    ("S VCB,lua dao", "VCB", "lua dao"),
    ("S VAYNHANH:vay 0 lai", "VAYNHANH", "vay 0 lai"),
    ("S FE CREDIT,moi vay", "FE CREDIT", "moi vay"),
    ("S vcb;khoa the", "vcb", "khoa the"),
    ("S FPT.SHOP lua dao", "FPT.SHOP", "lua dao"),            # unchanged
    ("S FPT.SHOP,lua dao", "FPT.SHOP", "lua dao"),
    ("S VCB, lua dao", "VCB", "lua dao"),                      # unchanged
])
def test_punctuation_glued_to_the_content_ends_a_sender_name(text, name, content):
    c = parse(text, ME, known)
    assert c.symbol == "SPAM_REPORTED", c.detail
    assert (c.reported_name, c.reported, c.content) == (name, None, content)
