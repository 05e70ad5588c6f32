"""Errors point at the line of the key they are about, whatever a multi-line string above it holds. The locator
read the lines inside `\"\"\"...\"\"\"` as TOML: an example's text with a `[QC]` line, a description quoting
`score = 5` or `[[rule]]`, and the errors after it named the wrong line, or the wrong rule."""
import pytest

from engine.rules.loader import RuleSetError, load_rules
from engine.rules.source import Locator


def _errors(tmp_path, text):
    (tmp_path / "a.toml").write_text(text)
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    return [str(x).removeprefix(str(tmp_path / "a.toml") + ":") for x in e.value.errors]


def test_a_header_line_in_an_example_text(tmp_path):
    errs = _errors(tmp_path, '[[rule]]\nsymbol = "AD"\nscore = 1\n[rule.when]\nkeywords = ["giam gia"]\n'
                             '[[rule.examples.hit]]\ntext = """\n[QC]\nGiam gia 50%. TC gui 5656\n"""\nsendr = "X"\n')
    assert errs == ["11:1: examples.hit: unknown field 'sendr'; did you mean 'sender'?"]


def test_a_key_line_in_a_description(tmp_path):
    errs = _errors(tmp_path, '[[rule]]\nsymbol = "AD"\nscore = "1"\ndescription = """\nExample:\nscore = 5\n"""\n'
                             '[rule.when]\nkeywords = ["giam gia"]\n')
    assert errs == ["3:9: score must be a finite number, got '1'"]


@pytest.mark.parametrize("quote", ['"""', "'''"])
def test_a_rule_header_in_a_description(tmp_path, quote):
    errs = _errors(tmp_path, f'[[rule]]\nsymbol = "AD"\nscore = 1\ndescription = {quote}\nsee\n[[rule]]\n{quote}\n'
                             '[rule.when]\nkeywords = ["giam gia"]\n\n[[rule]]\nsymbol = "B"\nscore = 1\n[rule.when]\n'
                             'text_regex = "(b"\n')
    assert errs == ["15:15: bad regex in text_regex: missing ), unterminated subpattern at position 0"]


def test_strings_that_open_and_close_on_one_line_and_escapes():
    loc = Locator('[[rule]]\ndescription = """one line""" # c\nx = "a \\" """ b"\n'
                  'y = \'\'\'\nz = 1\n\'\'\'\nw = """a\\"""\nb = 2\n"""\nv = 3\n')
    assert loc.at(0, "x") == (3, 1) and loc.at(0, "y") == (4, 1) and loc.at(0, "w") == (7, 1)
    assert loc.at(0, "v") == (10, 1)
    assert (0, ("z",)) not in loc.pos and (0, ("b",)) not in loc.pos


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85"])
def test_a_unicode_line_separator_in_a_comment_or_string_is_no_line_end(tmp_path, sep):
    # TOML ends a line at \n only; text pasted from a web page or a Word file can hold U+2028/U+2029/NEL,
    # and every error after it named a line too far down
    errs = _errors(tmp_path, f'# pasted:{sep}khuyen mai\n[[rule]]\nsymbol = "AD"\ndescription = "vay{sep}tien"\n'
                             'score = 1\n[rule.when]\ntext_regex = "(a"\n')
    assert errs == ["7:15: bad regex in text_regex: missing ), unterminated subpattern at position 0"]


def test_crlf_lines_keep_their_numbers_and_columns(tmp_path):
    errs = _errors(tmp_path, '[[rule]]\r\nsymbol = "AD"\r\nscore = 1\r\n[rule.when]\r\ntext_regex = "(a"\r\n')
    assert errs == ["5:15: bad regex in text_regex: missing ), unterminated subpattern at position 0"]
