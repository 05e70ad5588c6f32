"""One pass over a message's text for every `keywords` / `keywords_absent` list of a scope.

Theory of operation. Each list compiles to its own regex (conditions._keyword_re), which scans
the whole text once per rule: with hundreds of keyword rules of 10-200 words each, a message cost
~14 µs per rule, the rules stage growing linearly with the rule count. A scope plan with
KEYWORD_INDEX_MIN or more keyword conditions reads them all from one `KeywordIndex` instead:

- A keyword matches at a position only where the character before is no letter or digit, so it
  starts a maximal run of letters and digits, or is a lone other (non-space) character there.
  Its first part (`fold(word).split()`) then begins with exactly that run: the run is the
  keyword's key. The text is cut into these candidate tokens by one regex; a set test drops the
  common message that holds no key at all.
- At each candidate position whose token is a key, every keyword of that key is tried (its parts
  literally, one or more whitespace characters between them, no letter or digit after it: what
  the regex matches). Each condition keeps its leftmost match, and at one position the keyword
  listed first: what `search` returns, so evidence (`keyword 'tu choi'`) is the same text.
- The plan gives each such condition a slot holding its answer when nothing matches (false for
  `keywords`, true for `keywords_absent`) and writes only the matched ones after the scan, once per
  message; a rule with no `expr` and a `keywords` condition is guarded by that slot, so a rule whose
  list is not in the text costs one slot read, not a call.

`tests/test_rules_keyword_index.py` holds the index equal to the regexes on generated lists.
"""
from __future__ import annotations

import re

KEYWORD_INDEX_MIN = 4       # keyword conditions in a scope before the shared pass pays (measured: README)
# a maximal run of letters/digits, or a non-space character with no letter or digit before it
_TOKENS = re.compile(r"[^\W_]+|(?<![^\W_])\S")


def keyword_key(parts) -> str:
    """The token a match of the keyword starts with: its first part's leading letters/digits, or its first character."""
    p = parts[0]
    if not p[0].isalnum():
        return p[0]
    n = 1
    while n < len(p) and p[n].isalnum():
        n += 1
    return p[:n]


def match_at(text: str, pos: int, parts) -> int:
    """The end of the keyword's match at `pos`, or -1 (the regex's `p1\\s+p2...(?![^\\W_])`)."""
    i = pos
    n = len(text)
    last = len(parts) - 1
    for k, p in enumerate(parts):
        if not text.startswith(p, i):
            return -1
        i += len(p)
        if k < last:
            j = i
            while j < n and text[j].isspace():
                j += 1
            if j == i:
                return -1
            i = j
    if i < n and text[i].isalnum():
        return -1
    return i


class KeywordIndex:
    __slots__ = ("by_key", "keys")

    def __init__(self, lists):
        """`lists`: one keyword list per condition, each a sequence of parts tuples in the order written;
        a condition is named by its position in `lists`."""
        entries: dict = {}          # parts -> [(condition, order)]
        for cid, words in enumerate(lists):
            seen = set()
            for order, parts in enumerate(words):
                if parts not in seen:       # a repeat never comes first
                    seen.add(parts)
                    entries.setdefault(parts, []).append((cid, order))
        by_key: dict = {}
        for parts, owners in entries.items():
            by_key.setdefault(keyword_key(parts), []).append((parts, tuple(owners)))
        self.by_key = {k: tuple(v) for k, v in by_key.items()}
        self.keys = frozenset(self.by_key)

    def scan(self, text: str) -> dict:
        """condition -> (position, order, end) of its first match in `text` (absent: no match)."""
        res: dict = {}
        if self.keys.isdisjoint(_TOKENS.findall(text)):
            return res
        by_key = self.by_key
        for m in _TOKENS.finditer(text):
            ents = by_key.get(m.group())
            if ents is None:
                continue
            pos = m.start()
            for parts, owners in ents:
                end = match_at(text, pos, parts)
                if end < 0:
                    continue
                for cid, order in owners:
                    best = res.get(cid)
                    # positions come in ascending order: a later one never replaces an earlier match
                    if best is None or (best[0] == pos and order < best[1]):
                        res[cid] = (pos, order, end)
        return res
