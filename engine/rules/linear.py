"""Rule regexes on a linear-time engine (google-re2) wherever the pattern can be written there exactly.

Theory of operation. Python's `re` backtracks: redos.py refuses the catastrophic shapes, but a
super-linear one it passes (`qc.*tu choi` on a 64 KB UCS-2 payload of `qc`: 1.6 s of CPU) stalls the loop
per message.
RE2 searches in time linear in the text whatever the pattern, but its syntax and semantics differ
(`\\w \\d \\s \\b` are ASCII there, its case folding is not Python's: Python's IGNORECASE `i` also
matches `ı` and `İ`; its `$` is only the end of text; it has no look-around, backreference,
atomic group or possessive repeat). So a pattern is not handed to RE2 as written: it is rebuilt
from the tree `re._parser` gives (what `re.compile` runs), item by item:

- every item that reads one character (a literal, `.`, a class, under the flags in force there:
  IGNORECASE, DOTALL, ASCII) becomes an explicit class of code-point ranges, computed by running
  that very item with Python's `re` over every code point (`re2_syntax._char_set`); RE2 then compiles
  case-sensitively, with nothing left to its own case folding or character classes;
- sequences, alternations (leftmost-first, as Python), greedy and lazy repeats map one to one;
- `^ \\A \\Z` and the MULTILINE `^ $` have RE2 twins; `$` (also before a final newline), a
  look-ahead and `\\b` / `\\B` have none, but at the end of the pattern (nothing can follow) they
  only ask what comes next, so they read it: `$` -> `(\\n?\\z)`, `(?!C)` for one character class C ->
  `([^C]|\\z)`, `(?=X)` -> `(X)`, `\\b` after a word character -> `([^W]|\\z)` (W: Python's word
  characters); at the start of the pattern `\\b` before a word character reads the one before:
  `(?:\\A|[^W])(...)`; inside, between two items whose characters next to it are each known to be
  word characters or known not to be, `\\b` is a constant. The groups say where Python's match ends (starts), for the evidence.
- anything else (a look-behind, a look-around elsewhere, a backreference, an atomic group, a
  possessive repeat, a repeat whose body can match empty, a count over 1,000, a program over RE2's memory budget) is not translated:
  the pattern stays on `re`, and `why` says so (`rules check` prints it). Every pattern goes through
  redos.py all the same, so a rule file loads alike with or without google-re2.

A lone surrogate (possible in `check --jsonl` input, never in SMPP text: decoding puts U+FFFD there)
cannot be encoded for RE2; it is replaced by a stand-in code point that every class of the pattern
treats as it treats the surrogates (chosen at compile time, else the pattern stays on `re`).
tests/test_rules_regex_parity.py holds both engines to the same match, and the same matched text, over
the shipped pack's and the tests' patterns on the training texts, and over random patterns.
"""
from __future__ import annotations

import logging
import re
from re import _parser
from re import _constants as C

from .re2_syntax import Untranslatable, translate

try:
    from re2 import Options, _re2
    UNANCHORED = _re2.RE2.Anchor.UNANCHORED
except ImportError:           # the product still runs: every pattern on `re` (redos-checked); said once
    _re2 = None

_LONE = re.compile("[\ud800-\udfff]")


def engine_missing() -> str | None:
    return None if _re2 is not None else "google-re2 is not installed"


class LinearRegex:
    """A rule pattern on RE2. `search(text)` gives the text Python's re would match (group 0), or None."""
    engine = "re2"
    why = None

    def __init__(self, pattern: str, flags: int):
        if _re2 is None:
            raise Untranslatable(engine_missing())
        self.translated, head, tails, stand = translate(pattern, flags)
        self._stand = chr(stand)
        opts = Options()
        opts.log_errors = False
        rx = _re2.RE2(self.translated.encode(), opts)
        if not rx.ok():
            raise Untranslatable(f"RE2 refuses the translation: {rx.error()}")
        self._rx, self._head, self._tails = rx, head, tails
        self._match = rx.Match
        self.pattern = pattern

    def search(self, text: str):
        try:
            b = text.encode()
        except UnicodeEncodeError:
            return self._search_lone(text)
        spans = self._match(UNANCHORED, b, 0, len(b))
        if spans[0][0] < 0:
            return None
        s, e = self._span(spans)
        return b[s:e].decode()

    def _span(self, spans) -> tuple:
        """Where Python's match is, in bytes: past what a leading \\b read, before what a trailing assertion read."""
        s, e = spans[self._head]
        for g in self._tails:
            if spans[g][0] >= 0:
                return s, spans[g][0]
        return s, e

    def _search_lone(self, text: str):
        b = _LONE.sub(self._stand, text).encode()
        spans = self._match(UNANCHORED, b, 0, len(b))
        if spans[0][0] < 0:
            return None
        s, e = self._span(spans)
        return text[len(b[:s].decode()):len(b[:e].decode())]      # the surrogates, not their stand-in


class BacktrackingRegex:
    """A rule pattern on Python's re (checked by redos.py at load); `why` says why it is not on RE2."""
    engine = "re"

    def __init__(self, rx, why: str):
        self._rx, self.why, self.pattern = rx, why, rx.pattern

    def search(self, text: str):
        m = self._rx.search(text)
        return None if m is None else m.group(0)


class AnchoredRegex(BacktrackingRegex):
    """A pattern anchored at the start of the text (`^` without MULTILINE, `\\A`): re tries it at one position
    only, so its cost is one attempt's, which redos.py bounds. Kept on re: an RE2 search costs more per call than
    the whole attempt (the binding releases and takes back the GIL: +33% CPU per submit_sm for the pack's two,
    measured with `benchmarks --quick` against 3% more instructions)."""
    engine = "re-anchored"

    def __init__(self, rx):
        super().__init__(rx, None)


def _anchored(rx) -> bool:
    if rx.flags & re.MULTILINE:
        return False
    tree = _parser.parse(rx.pattern, rx.flags)
    return (len(tree) > 0 and tree[0][0] is C.AT and tree[0][1] in (C.AT_BEGINNING, C.AT_BEGINNING_STRING)
            and not tree.state.flags & re.MULTILINE)


def rule_regex(rx):
    """The matcher for a compiled (and redos-checked) rule pattern: RE2 where it translates exactly, but re for one
    anchored at the start (AnchoredRegex)."""
    if _re2 is None:
        _say_missing()
    elif _anchored(rx):
        return AnchoredRegex(rx)
    try:
        return LinearRegex(rx.pattern, rx.flags)
    except Untranslatable as e:
        return BacktrackingRegex(rx, str(e))


_said_missing = False


def _say_missing() -> None:
    global _said_missing
    if not _said_missing:
        _said_missing = True
        logging.getLogger("telfilter").warning(
            "google-re2 is not installed: rule regexes run on Python's re, which backtracks (catastrophic shapes are "
            "refused at load, but a super-linear one can hold the loop on a long crafted text): pip install google-re2")


def backtracking_notes(rules) -> list:
    """`path:line:col: note: ...` for every text_regex / text_not_regex pattern that runs on re, with why."""
    out = []
    for r in rules:
        for k, pred, _ in r.preds:
            for m in getattr(pred, "regexes", ()):
                if m.engine != "re":
                    continue
                p, ln, col = r.locs.get(("when", k)) or (*r.source.rsplit(":", 1), 1)
                out.append(f"{p}:{ln}:{col}: note: {r.symbol}: {k} '{m.pattern}' runs on Python's re, not in "
                           f"linear time ({m.why}); only catastrophic shapes were refused")
    return out
