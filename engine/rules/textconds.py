"""Text conditions of rule files: `text_regex`, `text_not_regex`, `keywords` and `keywords_absent`, on the folded
text (case and diacritics removed: textnorm.fold). Registered in conditions.CONDITIONS, in their place among the
others, by conditions.py importing this module. A pattern is folded as the text is (`_fold_pattern`), compiled
case-insensitively and refused when it could backtrack without bound (redos.py), then run on RE2 where
linear.py can write it there exactly (else on re: `why` says why); a keyword list becomes one
whole-word regex (`_keyword_re`), compiled on first use, and its folded parts go to plan.py's shared keyword pass.
"""
from __future__ import annotations

import re

from ..textnorm import fold
from .conditions import _strs, condition
from .linear import rule_regex
from .redos import UnsafeRegex
from .redos import check as redos_check


def _fold_pattern(p: str) -> str:
    """Remove diacritics from a pattern's letters but keep its case: `\\W` must stay `\\W`."""
    import unicodedata
    p = p.replace("đ", "d").replace("Đ", "D")
    if p.isascii():
        return p
    return "".join(c for c in unicodedata.normalize("NFKD", p) if not unicodedata.combining(c))


class PatternError(ValueError):
    """A pattern re refuses, with where: character `char` of the `item`th string of the value (None: the value is
    that string), for rule.py to report at that character of the file."""

    def __init__(self, msg: str, item: int | None, char: int, pattern: str):
        super().__init__(msg)
        self.item, self.char, self.length = item, char, len(pattern)


def _unfolded_index(p: str, pos: int) -> int:
    """The index in pattern `p` of the character whose folding (_fold_pattern) holds position `pos` of the folded
    pattern (a ligature folds to two letters, an accent to none); len(p) for the end."""
    n = 0
    for i, c in enumerate(p):
        n += len(_fold_pattern(c))
        if n > pos:
            return i
    return len(p)


def _regex(p: str, what: str, item: int | None = None):
    if not p:           # a placeholder left in: the rule held for every SMS (text_not_regex: for none)
        raise ValueError(f"empty regex in {what}: it matches every text")
    folded = _fold_pattern(p)
    try:
        rx = re.compile(folded, re.IGNORECASE)
    except re.error as e:
        at = _unfolded_index(p, e.pos) if folded != p and e.pos is not None else e.pos
        if at is None:
            raise ValueError(f"bad regex in {what}: {e.msg}") from None
        raise PatternError(f"bad regex in {what}: {e.msg} at position {at}", item, at, p) from None
    except RecursionError:
        raise ValueError(f"regex in {what} is nested too deeply") from None
    try:
        redos_check(folded, re.IGNORECASE)
    except UnsafeRegex as e:
        raise ValueError(f"unsafe regex in {what} '{p}': {e}") from None
    except RecursionError:
        raise ValueError(f"regex in {what} is nested too deeply") from None
    m = rule_regex(rx)
    m.pattern = p           # as written, for `rules check`'s notes
    return m


@condition("text_regex", "regex (or list: any) on the folded text: case- and diacritic-insensitive", cost=3)
def _text_regex(v, **_):
    pats = [_regex(p, "text_regex", j if isinstance(v, list) else None) for j, p in enumerate(_strs(v, "text_regex"))]

    def pred(c, s):
        for p in pats:
            m = p.search(c.folded)          # the matched text ('' for an empty match), or None
            if m is not None:
                return f"text matches {m[:40]!r}"
        return None
    pred.regexes = pats
    return pred


@condition("text_not_regex", "none of these regexes match the folded text", cost=3)
def _text_not_regex(v, **_):
    pats = [_regex(p, "text_not_regex", j if isinstance(v, list) else None) for j, p in enumerate(_strs(v, "text_not_regex"))]

    def pred(c, s):
        return None if any(p.search(c.folded) is not None for p in pats) else "no match"
    pred.regexes = pats
    return pred


def _keyword_parts(words) -> tuple:
    """Each keyword as its folded parts, in the order written (what plan.py's shared keyword pass reads)."""
    out = []
    for w in words:
        parts = tuple(fold(w).split())
        if not parts:
            raise ValueError("empty keyword")
        out.append(parts)
    return tuple(out)


def _keyword_re(words):
    r"""Any of `words` as whole words (not preceded or followed by a letter or digit), each word's
    parts joined by any whitespace. That is `(?<![^\W_])(?:w1|w2|...)(?![^\W_])`, written with
    the look-behind after each alternative's first character (`t(?<![^\W_]t)c` for "tc"): the
    same matches, but the pattern now starts with a set of literal characters, which the
    regex engine scans for before trying a position (~2x faster on an SMS;
    tests/test_rules_keywords.py holds the two forms equal)."""
    alts = []
    for w in words:
        parts = fold(w).split()
        if not parts:
            raise ValueError("empty keyword")
        f = re.escape(parts[0][0])
        first = f + r"(?<![^\W_]" + f + ")" + re.escape(parts[0][1:])
        alts.append(r"\s+".join([first] + [re.escape(p) for p in parts[1:]]))
    return re.compile("(?:" + "|".join(alts) + r")(?![^\W_])")


@condition("keywords", "any of these words/phrases, as whole words, case- and diacritic-insensitive", cost=3)
def _keywords(v, **_):
    words = _strs(v, "keywords")
    parts = _keyword_parts(words)           # (checked here: the regex is compiled on first use)
    rx = None

    def pred(c, s):
        nonlocal rx
        if rx is None:
            # a scope with many keyword lists reads them from one pass (rules/keywords.py) and never
            # compiles them: 11 ms and ~40 kB a list of 100 words, on serve's loop at a reload
            rx = _keyword_re(words)
        m = rx.search(c.folded)
        return f"keyword {m.group(0)!r}" if m else None
    pred.keyword_parts = parts
    return pred


@condition("keywords_absent", "none of these words/phrases appear (whole words, folded)", cost=3)
def _keywords_absent(v, **_):
    words = _strs(v, "keywords_absent")
    parts = _keyword_parts(words)
    rx = None

    def pred(c, s):
        nonlocal rx
        if rx is None:                      # compiled on first use, as for `keywords`
            rx = _keyword_re(words)
        return None if rx.search(c.folded) else "no opt-out keyword"
    pred.keyword_parts = parts
    return pred
