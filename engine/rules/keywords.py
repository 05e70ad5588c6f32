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
- At each candidate position whose token is a key, the keywords of that key are tried part by part
  through a tree (a part literally, then one or more whitespace characters, then the next part
  keyed by its token; no letter or digit after the last: what the regex matches), so a position
  costs the parts that match there, not every keyword starting with the same word. Each condition keeps its leftmost match, and at one position the keyword
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
_LEAD = re.compile(r"[^\W_]+")


def keyword_key(parts) -> str:
    """The token a match of the keyword starts with: its first part's leading letters/digits, or its first character."""
    m = _LEAD.match(parts[0])
    return m.group() if m else parts[0][0]


ORDER_BITS = 32             # an owner is packed as condition << ORDER_BITS | the keyword's place in its list


def _tree(entries) -> dict:
    """The keywords `entries` ([(parts, owners)]) as a tree: node = {token: ((part, owners of the keywords ending
    with it, node of their continuations | None), ...)}, a part keyed by the token its match starts with. Tuples
    and packed owners: ~200 B a keyword (dicts and lists per part took ~380 B)."""
    root: dict = {}
    for parts, owners in entries:
        node = root
        last = len(parts) - 1
        for k, part in enumerate(parts):
            slot = node.setdefault(keyword_key((part,)), {})
            ent = slot.get(part)
            if ent is None:
                ent = slot[part] = [(), None]
            if k == last:
                ent[0] += tuple(cid << ORDER_BITS | order for cid, order in owners)
            else:
                if ent[1] is None:
                    ent[1] = {}
                node = ent[1]
    return _frozen(root)


def _frozen(node) -> dict:
    return {key: tuple((part, owners, _frozen(child) if child is not None else None)
                       for part, (owners, child) in slot.items())
            for key, slot in node.items()}


def _walk(node, tok, text, i, pos, res):
    """Record in `res` every keyword of `node` matching `text` from i (token `tok` there), its match from pos."""
    n = len(text)
    for part, owners, child in node.get(tok, ()):
        if not text.startswith(part, i):
            continue
        j = i + len(part)
        if owners and (j == n or not text[j].isalnum()):
            for packed in owners:
                cid = packed >> ORDER_BITS
                order = packed & ORDER_MASK
                best = res.get(cid)
                # positions come in ascending order: a later one never replaces an earlier match
                if best is None or (best[0] == pos and order < best[1]):
                    res[cid] = (pos, order, j)
        if child is not None:
            k = j
            while k < n and text[k].isspace():
                k += 1
            if j < k < n:
                # the next part starts after whitespace: its token is the run (or character) there
                _walk(child, _TOKENS.match(text, k).group(), text, k, pos, res)


ORDER_MASK = (1 << ORDER_BITS) - 1


class KeywordIndex:
    __slots__ = ("root", "keys")

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
        self.root = _tree(entries.items())
        self.keys = frozenset(self.root)

    def scan(self, text: str) -> dict:
        """condition -> (position, order, end) of its first match in `text` (absent: no match)."""
        res: dict = {}
        if self.keys.isdisjoint(_TOKENS.findall(text)):
            return res
        root = self.root
        for m in _TOKENS.finditer(text):
            tok = m.group()
            if tok in root:
                pos = m.start()
                _walk(root, tok, text, pos, pos, res)
        return res
