"""ReDoS check: an alternation inside a repeat is refused when two of its alternatives can read the same text and
meet again (redos_branch.py), not whenever two start with the same character. Alternatives that start alike
and part before they meet are linear (the table in the commit: under 0.5 s on 6-16k characters, a search from
every start) and were refused: `(?:\\d+\\s*(?:k|nghin|trieu|tr)\\s*)+`, `(?:(?:vay|vay von)\\s)+!`."""
import re

import pytest

from engine.rules.redos import UnsafeRegex, check
from engine.rules.textconds import _regex

PART_BEFORE_THEY_MEET = [
    r"(?:\d+\s*(?:k|nghin|trieu|tr)\s*)+",      # `tr` goes on to a space or a digit, `trieu` to `i`
    r"(?:\b(?:vay|von|tien)\b\W*)+x",
    r"(?:(?:khuyen mai|km|giam gia|gia soc)\W*)+",
    r"(?:(?:vay|vay von)\s)+!",
    r"(?:vay|vay von|von)+!",                  # `vay` then ` von`: a turn never starts with a space
    r"(?:\bvay\b|vay\s)+!",
    r"(?:\d{3}\.|\d{2}\.)+x",                  # counted exactly: three digits never meet two and a dot
    r"(?:[0-9]{3}[ .]|[0-9]{4})+x",
    r"(?:a(?:b|c)|abx|acx)*y",
]
MEET_AGAIN = [
    r"(?:tr|trieu|ieu)+!",                     # trieu = tr + ieu
    r"(?:x|xy|y)*z", r"(?:ab|ba|aba)*c", r"(?:(?:a|ab)(?:c|bcd)(?:d|))+x",
    r"(?:(?:a|ab)+b?)+x",                      # they meet only in the outer repeat: a+b, then b?
    r"(?:(?:ab)?(?:a|b)|ab)+!", r"(?:(?=a)a|a)+!", r"(?:[a-z]+\.|www\.)+vn",
    r"(x|x)*y", r"(ab|a(b))*c", r"(a|aa)*c", r"(?:\d{3}|\d{4})+#",
    r"(?:(?:a|b){2}|ab)+!",                    # a counted repeat's copies each hold the alternation
]


@pytest.mark.parametrize("pattern", PART_BEFORE_THEY_MEET)
def test_alternatives_that_start_alike_but_never_meet_again_pass(pattern):
    _regex(pattern, "text_regex")


@pytest.mark.parametrize("pattern", MEET_AGAIN)
def test_alternatives_that_read_the_same_text_and_meet_are_refused(pattern):
    with pytest.raises(UnsafeRegex):
        check(pattern, re.IGNORECASE)


def test_a_body_the_walk_does_not_model_keeps_the_first_character_rule():
    # a backreference in the repeat: undecided by the walk, refused as before (both alternatives may start with x)
    with pytest.raises(UnsafeRegex):
        check(r"(x)(?:\1y|xz)+!", re.IGNORECASE)
    check(r"(x)(?:y\1|az)+!", re.IGNORECASE)


def test_many_alternatives_sharing_first_letters_in_a_repeat():
    words = [a + b + c for a in "bcdghklmnpst" for b in "aeiou" for c in ("n", "ng", "t", "y")]     # 240 words
    check(r"(?:(?:" + "|".join(words) + r")\s+)+!", re.IGNORECASE)
    with pytest.raises(UnsafeRegex):                 # one word that is two others: "ban" + "ga" = "banga"
        check(r"(?:(?:" + "|".join(words + ["ga", "banga"]) + r")\s*)+!", re.IGNORECASE)
