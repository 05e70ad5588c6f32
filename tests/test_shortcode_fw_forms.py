"""FW, an advertiser's copy of its advertisement sent to 5656, is matched as the other commands are (README, Short
code 5656: case and width insensitive, full-width `ＤＫ ＤＮＣ`), and with a colon after it as a mail client writes a
forward ("Fw: ..."). Full-width "ＦＷ ..." and "Fw: ..." were answered "FW needs the advertisement text", the text
being there, and nothing stored."""
import pytest

from engine.rules.shortcode import parse

ME = 84911000001


@pytest.mark.parametrize("text, content", [
    ("ＦＷ [QC] Giam gia 50%", "[QC] Giam gia 50%"),
    ("Fw: [QC] Giam gia 50%", "[QC] Giam gia 50%"),
    ("FW:[QC] Giam gia", "[QC] Giam gia"),
    ("fw : [QC] Giam gia", "[QC] Giam gia"),
    ("ＦＷ：[QC] Giam gia", "[QC] Giam gia"),
    ("FW [QC] Giam gia", "[QC] Giam gia"),            # unchanged
    ("fw\n[QC] Giam gia", "[QC] Giam gia"),
])
def test_fw_in_any_width_or_with_a_colon_stores_the_copy(text, content):
    c = parse(text, ME)
    assert (c.symbol, c.kind, c.content) == ("AD_COPY_RECEIVED", "FW", content), c.detail


@pytest.mark.parametrize("text", ["FW", "Fw:", "ＦＷ", "FW :  "])
def test_fw_without_text_is_still_an_error(text):
    c = parse(text, ME)
    assert c.symbol == "SHORTCODE_SYNTAX_ERROR" and "FW needs" in c.detail


@pytest.mark.parametrize("text", ["FWD [QC] Giam gia 50%", "Fwd: [QC] Giam gia 50%", "FW.[QC] Giam gia"])
def test_a_word_that_is_no_fw_with_text_after_it_is_named_not_said_to_lack_text(text):
    """"Fwd: [QC] ..." (another keyword, the text there) was logged "FW needs the advertisement text": the analyst
    reading the verdict log was told the text was missing. It names the word it did not know."""
    c = parse(text, ME)
    assert c.symbol == "SHORTCODE_SYNTAX_ERROR"
    assert "FW needs" not in c.detail and text[:10] in c.detail and "FW <content>" in c.detail, c.detail
