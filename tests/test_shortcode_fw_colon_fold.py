"""FW read from the folded first word (8cca6e6): a character whose fold holds a colon among other characters
("⩴", NFKC '::=') made the folded word start "FW:" while no single character of it folded to ':' alone: the search for
the colon raised StopIteration out of shortcode.parse (a 5656 MO judged with an exception)."""
from engine.rules.shortcode import parse


def test_an_fw_whose_colon_is_inside_a_compatibility_character_is_parsed_not_raised():
    for text in ("FW\u2a74 quang cao", "FW\u2a74", "fw\u2a74vay tien"):
        cmd = parse(text, 84912345678)
        assert cmd.symbol in ("AD_COPY_RECEIVED", "SHORTCODE_SYNTAX_ERROR"), (text, cmd)
    assert parse("FW\u2a74 quang cao", 84912345678).content == "quang cao"
