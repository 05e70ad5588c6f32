"""A bad regex is reported at the character Python's re names (re.error.pos), not at the opening quote of the
TOML string that holds it: the pattern's offset mapped through the string's escapes in a basic "..." string (`\\\\d`
is two characters of file for one of pattern, `\\u00e0` six), one to one in a literal '...' string, to its line
and column in a multi-line one, in the item of a list that holds it; a pattern's accented letters folded away
(diacritic-insensitive matching) still count as one character each."""
import pytest

from engine.rules.loader import RuleSetError, load_rules

HEAD = '[[rule]]\nsymbol = "AD"\nscore = 1\n[rule.when]\n'


def _errors(tmp_path, text):
    (tmp_path / "a.toml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    return [str(x).removeprefix(str(tmp_path / "a.toml") + ":") for x in e.value.errors]


def _at(tmp_path, value):
    [e] = _errors(tmp_path, HEAD + f"text_regex = {value}\n")
    line, col, msg = e.split(":", 2)
    return int(line), int(col), msg


@pytest.mark.parametrize("value, col, pos", [
    ('"vay (tien|von"', 19, 4),                 # the "(" left open: "missing ), unterminated subpattern"
    ("'vay (tien|von'", 19, 4),
    ('"\\\\d+(x"', 19, 3),                       # "\\d" is one backslash in the pattern, two in the file
    ("'\\d+(x'", 18, 3),
    ('"\\u0076ay (x"', 24, 4),                  # \u0076 is "v": six characters of file
    ('"khuyến mãi (x"', 26, 11),                # folded to "khuyen mai (x": each letter still one
    ('"\ufb01x (y"', 18, 3),                   # the ligature "ﬁ" folds to "fi": re's position 4, the pattern's 3
    ('"abc[x"', 18, 3),                         # "unterminated character set" at its "["
    ('"a)b"', 16, 1),                           # "unbalanced parenthesis" at the ")"
    ('"x{2,1}"', 17, 2),                        # "min repeat greater than max repeat" at its max
])
def test_the_column_is_the_character_re_names(tmp_path, value, col, pos):
    line, c, msg = _at(tmp_path, value)
    assert (line, c) == (5, col) and msg.startswith(" bad regex in text_regex: ") and msg.endswith(f"position {pos}")


def test_an_item_of_a_list(tmp_path):
    #           col 14: [ ; "ok" 15-18 ; "a\\d*?)b" opens at 21, its ")" is 21 + 1 + 6
    assert _at(tmp_path, '["ok", "a\\\\d*?)b"]')[:2] == (5, 28)


def test_an_item_of_a_list_written_over_lines(tmp_path):
    errs = _errors(tmp_path, HEAD + 'text_regex = [\n  "ok",  # fine\n  \'x(\',\n]\n')
    assert errs[0].startswith("7:5: bad regex in text_regex: missing ), unterminated subpattern at position 1")


def test_a_multi_line_string(tmp_path):
    errs = _errors(tmp_path, HEAD + 'text_regex = """\nvay \\\n   tien (x"""\n')
    assert errs[0].startswith("7:9: bad regex in text_regex: missing ), unterminated subpattern at position 9")


def test_crlf_line_ends(tmp_path):
    errs = _errors(tmp_path, HEAD.replace("\n", "\r\n") + 'text_regex = "ab(c"\r\n')
    assert errs[0].startswith("5:17: bad regex")


def test_an_inline_when_table_keeps_the_key_column(tmp_path):
    # (a position this locator does not follow: the key's, as before)
    errs = _errors(tmp_path, '[[rule]]\nsymbol = "AD"\nscore = 1\nwhen = { text_regex = "(x" }\n')
    assert errs[0].startswith("4:10: bad regex")
