"""A Python `re` pattern rewritten in RE2's syntax so that RE2 matches what Python's re matches (linear.py's module
text says how and why: each one-character item an explicit class of code-point ranges, computed by running it
with re over every code point; assertions at the ends read what comes next). `translate` gives the pattern, the
groups that say where Python's match starts and ends, and the stand-in code point for a lone surrogate; a pattern
it cannot write exactly raises Untranslatable. No RE2 here: its caller compiles the result."""
from __future__ import annotations

import array
import bisect
import codecs
import re
from re import _compiler, _parser
from re import _constants as C

MAX_COUNT = 1000              # RE2's largest repeat count
_ONE_CHAR = (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN)
_FLAGS = re.IGNORECASE | re.DOTALL | re.ASCII | re.UNICODE
_SURROGATES = (0xD800, 0xDFFF)
_STAND_INS = (0x0378, 0xFFFF, 0x10FFFF)     # unassigned / noncharacters: in no property class
_ALL = None
_SETS: dict = {}              # (op, av, flags) -> ranges: a pure function's cache, filled once per process


class Untranslatable(Exception):
    """Why a pattern stays on Python's re."""


def _char_set(op, av, flags: int) -> tuple:
    """The code points one character item matches, as sorted inclusive ranges: that item run by re itself."""
    flags &= _FLAGS
    if op is C.LITERAL and (not flags & re.IGNORECASE or not _compiler._sre.unicode_iscased(av)):
        return ((av, av),)                      # as re/_compiler.py emits it: a plain literal
    key = (op, repr(av), flags)
    got = _SETS.get(key)
    if got is None:
        global _ALL
        if _ALL is None:
            # every code point, surrogates too, in one string (4.4 MB, kept): built from an array, not 1.1M str
            # objects (the join of chr()s peaked at +100 MB of RSS)
            _ALL = codecs.utf_32_le_decode(array.array("I", range(0x110000)), "surrogatepass")[0]
        st = _parser.State()
        st.flags = flags
        run = _parser.SubPattern(st, [(C.MAX_REPEAT, (1, C.MAXREPEAT, _parser.SubPattern(st, [(op, av)])))])
        got = _SETS[key] = tuple((m.start(), m.end() - 1) for m in _compiler.compile(run, flags).finditer(_ALL))
    return got


def _complement(rs) -> tuple:
    out, nxt = [], 0
    for lo, hi in rs:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= 0x10FFFF:
        out.append((nxt, 0x10FFFF))
    return tuple(out)


def _within(a, b) -> bool:
    """Every code point of ranges a is in ranges b (both sorted, b's disjoint and not adjacent)."""
    starts = [lo for lo, _ in b]
    for alo, ahi in a:
        i = bisect.bisect_right(starts, alo) - 1
        if i < 0 or ahi > b[i][1]:
            return False
    return True


def _has(rs, cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in rs)


def _word(flags: int) -> tuple:
    """Python's word characters as `\\b` reads them (no case folding there)."""
    return _char_set(C.IN, [(C.CATEGORY, C.CATEGORY_WORD)], flags & (re.ASCII | re.UNICODE))


class _Writer:
    def __init__(self):
        self.sets = []          # every class written: the surrogates' stand-in must agree with each
        self.groups = 0
        self.head = 0           # the group holding what follows a leading \b (0: none)
        self.tails = []         # groups a trailing assertion reads: Python's match ends where they start

    def cls(self, rs) -> str:
        self.sets.append(rs)
        parts = []
        for lo, hi in rs:
            for a, b in ((lo, min(hi, _SURROGATES[0] - 1)), (max(lo, _SURROGATES[1] + 1), hi)):
                if a <= b:
                    parts.append(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}")
        return "[" + "".join(parts) + "]" if parts else "[^\\x00-\\x{10ffff}]"

    def group(self, body_fn) -> tuple:
        self.groups += 1
        n = self.groups
        return n, "(" + body_fn() + ")"

    def tail(self, body_fn) -> str:
        n, s = self.group(body_fn)
        self.tails.append(n)
        return s

    def seq(self, items, flags: int, last: bool, top: bool = False) -> str:
        out = []
        n = len(items)
        for i, (op, av) in enumerate(items):
            end = last and i == n - 1
            if op in _ONE_CHAR:
                out.append(self.cls(_char_set(op, av, flags)))
            elif op is C.BRANCH:
                out.append("(?:" + "|".join(self.seq(a, flags, end) for a in av[1]) + ")")
            elif op is C.SUBPATTERN:
                f = _compiler._combine_flags(flags, av[1], av[2])     # as re compiles a group
                out.append("(?:" + self.seq(av[3], f, end) + ")")
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
                lo, hi, body = av
                if lo > MAX_COUNT or (hi is not C.MAXREPEAT and hi > MAX_COUNT):
                    raise Untranslatable(f"a repeat count over {MAX_COUNT}")
                if body.getwidth()[0] == 0 and (hi is C.MAXREPEAT or hi > 1):
                    # re ends such a loop after an iteration that read nothing and goes on; RE2 prefers one more
                    # character in it: `(?:a?|b)*` on "ab" is "a" on re, "ab" on RE2 (the same match or not; another
                    # matched text in the evidence)
                    raise Untranslatable("a repeat whose body can match empty")
                count = f"{{{lo},}}" if hi is C.MAXREPEAT else f"{{{lo},{hi}}}"
                out.append("(?:" + self.seq(body, flags, False) + ")" + count + ("?" if op is C.MIN_REPEAT else ""))
            elif op is C.AT and top and i == 0 and av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY) and n > 1:
                out.append(self.leading_boundary(av, items, flags, last))
                break
            elif op is C.AT and av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY) and not end:
                out.append(self.inner_boundary(av, items, i, flags))
            elif op is C.AT:
                out.append(self.at(av, flags, end, items[:i]))
            elif op in (C.ASSERT, C.ASSERT_NOT):
                out.append(self.lookahead(op, av, flags, end))
            else:
                raise Untranslatable({C.GROUPREF: "a backreference", C.GROUPREF_EXISTS: "a conditional group",
                                      C.ATOMIC_GROUP: "an atomic group", C.POSSESSIVE_REPEAT: "a possessive repeat",
                                      }.get(op, f"{op}".lower()))
        return "".join(out)

    def at(self, av, flags: int, end: bool, before) -> str:
        multi = flags & re.MULTILINE
        if av is C.AT_BEGINNING_STRING or (av is C.AT_BEGINNING and not multi):
            return "\\A"
        if av is C.AT_BEGINNING:
            return "(?m:^)"
        if av is C.AT_END_STRING:
            return "\\z"
        if av is C.AT_END and multi:
            return "(?m:$)"
        if not end:
            raise Untranslatable("`$` before the end of the pattern")
        if av is C.AT_END:          # Python: the end, or before a final newline
            return self.tail(lambda: "\\n?\\z")
        w = _word(flags)
        prev_word = _is_word(_ends(before, flags, True), flags)
        if prev_word is None:
            raise Untranslatable("`\\b` or `\\B` after what may or may not be a word character")
        next_word = prev_word != (av is C.AT_BOUNDARY)       # what the next character must be
        return self.tail(lambda: self.cls(w) if next_word else self.cls(_complement(w)) + "|\\z")

    def inner_boundary(self, av, items, i: int, flags: int) -> str:
        """`\\b` / `\\B` between an item that always ends with a word character (or always with a non-word one)
        and one that always starts with either: always true (nothing to write) or never (a class nothing is in)."""
        a = _is_word(_ends(items[:i], flags, True), flags)
        b = _is_word(_ends(items[i + 1:], flags, False), flags)
        if a is None or b is None:
            raise Untranslatable("`\\b` or `\\B` inside the pattern next to what may or may not be a word character")
        return "" if (a != b) == (av is C.AT_BOUNDARY) else self.cls(())

    def leading_boundary(self, av, items, flags: int, last: bool) -> str:
        w = _word(flags)
        next_word = _is_word(_ends(items[1:], flags, False), flags)
        if next_word is None:
            raise Untranslatable("`\\b` or `\\B` before what may or may not be a word character")
        prev_word = next_word != (av is C.AT_BOUNDARY)       # what the character before must be
        before = self.cls(w) if prev_word else "(?:\\A|" + self.cls(_complement(w)) + ")"
        n, rest = self.group(lambda: self.seq(items[1:], flags, last))
        self.head = n
        return before + rest

    def lookahead(self, op, av, flags: int, end: bool) -> str:
        direction, body = av
        if direction != 1:
            raise Untranslatable("a look-behind")
        if not end:
            raise Untranslatable("a look-ahead before the end of the pattern")
        if op is C.ASSERT:
            return self.tail(lambda: self.seq(body, flags, False))
        if len(body) != 1 or body[0][0] not in _ONE_CHAR:
            raise Untranslatable("a negative look-ahead of more than one character")
        return self.tail(lambda: self.cls(_complement(_char_set(*body[0], flags))) + "|\\z")


def _ends(items, flags: int, last: bool):
    """The characters `items` ends with (last) / starts with, when it always reads at least one there, else None."""
    if not len(items):
        return None
    op, av = items[-1] if last else items[0]
    if op in _ONE_CHAR:
        return _char_set(op, av, flags)
    if op is C.SUBPATTERN:
        return _ends(av[3], _compiler._combine_flags(flags, av[1], av[2]), last)
    if op is C.BRANCH:
        sets = [_ends(a, flags, last) for a in av[1]]
        return None if any(x is None for x in sets) else _union(sets)
    if op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[0] >= 1:
        return _ends(av[2], flags, last)
    return None


def _union(sets) -> tuple:
    out = []
    for lo, hi in sorted(r for rs in sets for r in rs):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return tuple(out)


def _is_word(rs, flags: int):
    """True / False when every character of rs is / is not a word character (as \\b reads them), else None."""
    w = _word(flags)
    if rs is None:
        return None
    if _within(rs, w):
        return True
    return False if _within(rs, _complement(w)) else None


def _stand_in(sets) -> int:
    """A code point every class treats as it treats the (lone) surrogates."""
    for cp in _STAND_INS:
        ok = True
        for rs in sets:
            inside = any(lo <= _SURROGATES[0] and _SURROGATES[1] <= hi for lo, hi in rs)
            touch = any(lo <= _SURROGATES[1] and _SURROGATES[0] <= hi for lo, hi in rs)
            if touch != inside or _has(rs, cp) != inside:
                ok = False
                break
        if ok:
            return cp
    raise Untranslatable("its classes tell surrogates apart from every other code point")


def translate(pattern: str, flags: int) -> tuple[str, int, tuple, int]:
    """(the pattern in RE2's syntax, the group holding what follows a leading \\b (0: none), the groups a trailing
    assertion reads, the code point that stands in for a lone surrogate). Raises Untranslatable."""
    tree = _parser.parse(pattern, flags)
    w = _Writer()
    try:
        translated = w.seq(tree, tree.state.flags, True, top=True)
    except RecursionError:
        raise Untranslatable("nested too deeply") from None
    return translated, w.head, tuple(w.tails), _stand_in(w.sets)
