r"""`keywords` / `keywords_absent` patterns (conditions._keyword_re) find exactly what the plain
whole-word form `(?<![^\\W_])(?:w1|w2|...)(?![^\\W_])` finds: the same first match, span and text,
on random texts built from the keywords' own pieces, word characters, underscores, punctuation
and whitespace (so boundaries, partial words and multi-space phrases all occur)."""
import random
import re

from engine.rules.conditions import _keyword_re
from engine.textnorm import fold


def _plain(words):
    alts = [r"\s+".join(re.escape(p) for p in fold(w).split()) for w in words]
    return re.compile(r"(?<![^\W_])(?:" + "|".join(alts) + r")(?![^\W_])")


KEYWORD_SETS = [["tu choi", "tc", "huy", "stop", "opt out"], ["trúng thưởng", "nhận quà", "x"],
                ["$100", "a.b", "c++", "vay tiền nhanh"], ["đ", "100%", "ok ok"], ["_x", "y_"]]


def test_keyword_patterns_match_the_plain_form():
    rng = random.Random(3)
    checked = found = 0
    for words in KEYWORD_SETS:
        fast, plain = _keyword_re(words), _plain(words)
        pieces = [p for w in words for p in fold(w).split()] + list("ab_1 .,-:/$%") + ["  ", "\t", "xtc", "tcx"]
        for _ in range(4000):
            t = "".join(rng.choice(pieces) + rng.choice(["", " ", "", "_", "."]) for _ in range(rng.randint(0, 12)))
            a, b = fast.search(t), plain.search(t)
            assert (a and (a.span(), a.group(0))) == (b and (b.span(), b.group(0))), (words, t)
            checked += 1
            found += a is not None
    assert checked == 20_000 and 2_000 < found < 18_000
