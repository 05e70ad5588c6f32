"""ReDoS check: characters outside the checker's sample alphabet (Cyrillic, CJK, emoji). Such a literal was a
set of its own that no class (`\\w`, `\\W`, `.`, `[^a]`, `[а-я]`) held, so a repeat of alternatives both able to
take it passed the check and held a core over 10 s on 57 characters (`(?:я |\\w )+!` on "я " * 28 + "x").
Now the characters a pattern names are added to the alphabet it is checked over."""
import re

import pytest

from engine.rules.loader import RuleSetError, load_rules
from engine.rules.redos import UnsafeRegex, check
from engine.rules.textconds import _regex

OUTSIDE = [
    r"(?:я |\w )+!",            # a branch: `я` is a word character
    r"(?:💰\s|\W\s)+x",          # an emoji is not one
    r"(?:中a|.a)+!",
    r"(?:[а-я]b|бb)+!",         # a range outside the sample holds the literal
    r"(?:[а-я]b|[б-в]b)+!",     # two such ranges overlap
    r"(?:Ω\s|\S\s)+x",
    r"(?:я+\w)+!",              # a nested repeat
    r"\w+я+\w+!",               # repeats in a row
    r"(?:😀😀|[^a]{2})+x",
]
SAFE = [
    r"(?:💰|💵|🎁)+",                 # one character class (the parser makes it a set)
    r"(?:💰 |💵 )+x",
    r"(?:я\s|\d\s)+x",               # a Cyrillic letter is never a digit
    r"[а-яё]+\s+\d+",
    r"(?:★|☆)\s*\w+",
    r"[\u4e00-\u9fff]+\d",
    r"(?:khuyến mãi|ưu đãi)\s+\d+%",
    r"(?:vay|vay von)+",
    r"(?:qc|quang cao)\s*[:\-]",
    r"(?:https?://)?(?:www\.)?[a-z0-9-]+\.(?:vn|com)\b",
]


@pytest.mark.parametrize("pattern", OUTSIDE)
def test_overlaps_on_characters_outside_the_sample_are_refused(pattern):
    with pytest.raises(UnsafeRegex):
        check(pattern, re.IGNORECASE)
    with pytest.raises(ValueError, match="unsafe regex"):
        _regex(pattern, "text_regex")           # as a rule file's pattern is checked (folded first)


@pytest.mark.parametrize("pattern", SAFE)
def test_patterns_naming_such_characters_without_an_overlap_pass(pattern):
    _regex(pattern, "text_regex")


def test_a_rule_file_with_such_a_pattern_is_refused_where_it_is(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "a.toml").write_text('[[rule]]\nsymbol = "X"\naction = "tag"\n[rule.when]\n'
                              'text_regex = "(?:я |\\\\w )+!"\n', encoding="utf-8")
    with pytest.raises(RuleSetError) as e:
        load_rules(d)
    errs = [str(x) for x in e.value.errors]
    assert len(errs) == 1 and "a.toml:5:14: unsafe regex in text_regex '(?:я |\\w )+!'" in errs[0], errs
