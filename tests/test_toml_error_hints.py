"""TOML mistakes a rule writer makes, said where they are and with what to do. A regex in single quotes missing its
closing quote (`text_regex = 'vcb-secure\\.top`) was placed at the file's last line (`50-local.toml:66:10: TOML
syntax: Expected "'" (at end of document)`, tomllib reading on to the end for the quote); it is now at the quote
that opens it. A string not closed on its line, and a regex in double quotes (`"\\d+"`, whose `\\d` is no TOML
escape), say how to write them."""
import shutil

from engine.config import toml_error_at

from .conftest import CONFIG, run_cli

LOCAL = """# Local additions.
# Syntax: see README "Rule files".
# Example:
#   [[rule]]
#   symbol = "PHISH_DOMAIN_SMS"
#   action = "drop"
#   [rule.when]
#   text_regex = 'vcb-secure[.]top'

[[rule]]
symbol = "PHISH_DOMAIN_SMS"
action = "drop"
[rule.when]
text_regex = REGEX
[[rule.examples.hit]]
text = "vao vcb-secure.top ngay"

[[rule]]
symbol = "LOAN_NIGHT"
score = 4.0
[rule.when]
keywords = ["vay tien"]
local_time_inside = "22:00-06:00"
"""


def _check(tmp_path, regex):
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    (d / "50-local.toml").write_text(LOCAL.replace("REGEX", regex))
    p = run_cli("rules", "check", d)
    assert p.returncode == 2, p.stdout + p.stderr
    return p.stderr.splitlines()[0], d / "50-local.toml"


def test_an_unclosed_single_quoted_regex_is_said_at_its_quote(tmp_path):
    line, f = _check(tmp_path, "'vcb-secure\\.top")
    assert line.startswith(f"{f}:14:14: TOML syntax: "), line
    assert "not closed on its line" in line, line


def test_a_string_not_closed_on_its_line_says_so(tmp_path):
    line, f = _check(tmp_path, '"vcb-secure[.]top')
    assert line.startswith(f"{f}:14:"), line
    assert "not closed on its line" in line, line


def test_a_regex_in_double_quotes_is_told_to_use_single_ones(tmp_path):
    line, f = _check(tmp_path, '"vcb-secure\\.top"')
    assert line.startswith(f"{f}:14:"), line
    assert "write a regex in '...'" in line, line


def test_a_quote_inside_a_comment_or_a_double_quoted_string_is_not_the_unclosed_one():
    import tomllib
    text = "# it's a comment\na = \"it's\"\nb = ['x', 'y\n]\n"
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        ln, col, msg = toml_error_at(e, text)
    assert (ln, col) == (3, 11) and "not closed on its line" in msg, (ln, col, msg)
