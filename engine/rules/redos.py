"""Reject rule-file regexes that can backtrack catastrophically (ReDoS), at load time.

Theory of operation. Python's `re` is a backtracking engine: a pattern such as `(a+)+$`
tries every way of splitting a run of `a`s between the inner and the outer repeat before
it gives up, 2^n ways for n characters, so one 30-character SMS can hold a core for
seconds. A pattern that linear.py can write exactly for RE2 (linear-time) runs there; one it
cannot (a look-behind, a backreference, ...) stays on `re`. Every pattern is checked here all the
same, so a rule file loads alike with or without google-re2 installed; the check runs statically
on the tree that `re._parser` builds (the same parse `re.compile` uses, so it sees exactly what runs).

Exponential backtracking needs one string to be matched in more than one way *inside a
repeat that may run many times*. Within the body of every repeat that may run more than once this
module rejects:

- a nested repeat of variable count whose characters can also start what follows it inside the
  outer body, the body wrapping round to its own start: `(a+)+`, `(a*)*`, `(\\w+\\s?)+`,
  `(\\d+\\d)+`, `(.*a){20}`; but `(\\s+\\w+)*` passes (spaces and word characters never overlap);
- an alternation two of whose branches can read the same text and meet again within the
  outermost repeat (redos_branch.py walks the two paths side by side): `(a|a)+`, `(a|aa)*`,
  `(ab|a.)+`, `(?:tr|trieu|ieu)+`; but `(a|ab)*c`, `(?:(?:vay|vay von)\\s)+`, `(?:\\d{3}\\.|\\d{2}\\.)+`
  pass (they part before they meet). A repeat the walk does not model (a backreference, an
  atomic group) keeps the rougher rule: branches that start with the same character, or more
  than one (or one and what follows the alternation) that can match nothing, are refused.

Character sets are computed over a sample alphabet (ASCII, Latin-1, Latin Extended and a
few separators) and every character the pattern names outside it (its literals, its ranges' ends
and 64 characters spread inside each range), which is exact for a literal against a class built
from literals, ranges, `\\d\\w\\s` and `.` (a literal outside the sample was a set of its own that
no class held: `(?:я |\\w )+!` and `(?:💰\\s|\\W\\s)+x` passed, over 10 s on 57 characters). The
check is conservative: it may reject a pattern that a careful reading shows to be safe (rewrite
it so the repeated pieces cannot overlap), never the other way round for the two shapes above.

Two unbounded repeats in a row over a shared character, with nothing between them that must
match another one and something after them that can fail (`\\w*\\w*!`, `\\d+\\s*\\d+#`, `a.*a.*b`),
are rejected too, also across a group that can match nothing (`\\d+(-)?\\d+#`, `\\d+(?:\\s|)\\d+x`: 15 s on
3,000 digits when a group ended the run): a run of that character splits between them in n ways at each of n positions,
and each repeat more multiplies by n again (`\\d+\\s*\\d+#` on 2,000 digits took 7 s, `a*a*a*a*a*a*b` on 80 `a`s 78 s). A
repeat whose body is more than one character class (`(?:\\d+[.,])*\\d+`) adds to a run only by the
repeats it can start with, and ends it unless it can match nothing: its body has its own, checked, shape.

A search that starts with `.*` (unanchored) is rejected too: it is quadratic in the text's
length on any long text, as each start position runs to the end. Other polynomial shapes
(`\\d+x`, `qc.*tu choi`) stay accepted: they are quadratic only on texts crafted as long
runs of one class or of the pattern's first characters.
"""
from __future__ import annotations

import re
from re import _constants as C
from re import _parser

from .redos_backref import check_backrefs
from .redos_branch import ambiguous, nfa_of
from .redos_paths import check_paths

_ALPHABET = [chr(i) for i in range(0x250)] + ["\u1ea0", "\u1ef9", "\u2028", "\u3000", "\uff01", "\U0001f600"]
_CATEGORY = {
    C.CATEGORY_DIGIT: lambda ch: ch.isdigit() or bool(re.match(r"\d", ch)),
    C.CATEGORY_NOT_DIGIT: lambda ch: not re.match(r"\d", ch),
    C.CATEGORY_SPACE: lambda ch: bool(re.match(r"\s", ch)),
    C.CATEGORY_NOT_SPACE: lambda ch: not re.match(r"\s", ch),
    C.CATEGORY_WORD: lambda ch: bool(re.match(r"\w", ch)),
    C.CATEGORY_NOT_WORD: lambda ch: not re.match(r"\w", ch),
}
_ALL = frozenset(range(len(_ALPHABET)))
_POS = {a: i for i, a in enumerate(_ALPHABET)}      # a literal's set by look-up: a scan of the alphabet per literal
                                                    # took ~3/4 of loading 200 generated regex rules
_CAT_SETS = {k: frozenset(i for i, ch in enumerate(_ALPHABET) if f(ch)) for k, f in _CATEGORY.items()}


_BRANCH = ("alternatives that can match the same text inside a repeat (like `(a|a)+`, `(a|aa)*` or "
           "`(tr|trieu|ieu)+`) can backtrack catastrophically; make the branches unable to match the same text")


_ADJACENT = ("unbounded repeats in a row that can match the same character (like `\\w*\\w*!`, `\\d+\\s*\\d+#` or "
             "`a.*a.*b`) backtrack polynomially (seconds on a long message); make them match disjoint characters, "
             "or bound one of them (`\\d{1,4}`)")


_PATHS = ("optional items in a row that can match the same character (like `x?x?x?…x` or `(a|a)?(a|a)?…`) split a "
          "run of it in exponentially many ways (seconds on a long message); make them match disjoint characters, "
          "or use one bounded repeat (`x{0,10}`)")


class UnsafeRegex(ValueError):
    pass


def check(pattern: str, flags: int = 0) -> None:
    """Raise UnsafeRegex (a ValueError) when `pattern` can backtrack catastrophically."""
    tree = _parser.parse(pattern, flags)
    icase = bool(flags & re.IGNORECASE)
    checker = _Checker(icase, _named_outside(list(tree), icase))
    checker.seq(list(tree), _frozen_empty, None)
    checker.adjacent(list(tree), top=True)
    check_paths(checker, list(tree), UnsafeRegex(_PATHS))
    check_backrefs(checker, list(tree), UnsafeRegex)
    if _leading_wildcard(list(tree)):
        raise UnsafeRegex("a leading `.*` (or `.+`, `[^x]*`) makes every search quadratic in the text's length "
                          "(about 1 s on an 8 KB concatenated message); drop it: a search already finds the "
                          "match anywhere, or anchor the pattern with `^`")


def _leading_wildcard(items) -> bool:
    """Does an unanchored search start with an unbounded repeat of (nearly) any character? Each of
    the n start positions then runs to the end of the text: n^2 steps."""
    for op, av in items:
        if op is C.AT and av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING, C.AT_BEGINNING_LINE):
            return False                            # anchored with ^ or \A: at most one long try per line
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT):    # \b and look-arounds: zero width, many starts
            continue
        if op is C.SUBPATTERN:
            return _leading_wildcard(list(av[-1]))
        if op is C.BRANCH:
            return any(_leading_wildcard(list(alt)) for alt in av[1])
        if op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[1] is C.MAXREPEAT and len(av[2]) == 1:
            bop, bav = av[2][0]
            return bop in (C.ANY, C.NOT_LITERAL) or (bop is C.IN and bool(bav) and bav[0][0] is C.NEGATE)
        return False
    return False


_RANGE_SAMPLE = 64          # characters of a range's inside taken (evenly spaced) beside its two ends


def _named_outside(items, icase: bool) -> list:
    """The characters `items` name (literals, ranges: their ends and a sample inside) outside the sample alphabet,
    with their other case under `icase`: the checker adds them to its alphabet, so a class holds them when `re`'s
    does (`\\w` holds `я`; `[а-я]` holds `б`)."""
    codes = set()
    todo = [items]
    while todo:
        for op, av in todo.pop():
            if op in (C.LITERAL, C.NOT_LITERAL):
                codes.add(av)
            elif op is C.RANGE:
                lo, hi = av
                codes.update(range(lo, hi + 1, max(1, (hi - lo) // _RANGE_SAMPLE)))
                codes.add(hi)
            elif op is C.IN or op is C.ATOMIC_GROUP:
                todo.append(list(av))
            elif op is C.SUBPATTERN:
                todo.append(list(av[-1]))
            elif op is C.BRANCH:
                todo.extend(list(alt) for alt in av[1])
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
                todo.append(list(av[2]))
            elif op in (C.ASSERT, C.ASSERT_NOT):
                todo.append(list(av[1]))
            elif op is C.GROUPREF_EXISTS:
                todo.extend(list(b) for b in av[1:] if b is not None)
    chars = {chr(c) for c in codes}
    if icase:
        chars |= {v for ch in chars for v in (ch.lower(), ch.upper()) if len(v) == 1}
    return sorted(ch for ch in chars if ch not in _POS)


_frozen_empty = frozenset()


class _Checker:
    def __init__(self, icase: bool, extra=()):
        """`extra`: characters outside the sample alphabet the pattern names (_named_outside), each given its own
        index after the alphabet's."""
        self.icase = icase
        self.outer = None                           # the body of the outermost loop being walked
        self._nfas: dict = {}
        self.chars = _ALPHABET + list(extra)
        self.pos = dict(_POS, **{ch: len(_ALPHABET) + i for i, ch in enumerate(extra)}) if extra else _POS
        self.all = frozenset(range(len(self.chars))) if extra else _ALL
        self.cat_sets = {k: v | frozenset(len(_ALPHABET) + i for i, ch in enumerate(extra) if _CATEGORY[k](ch))
                         for k, v in _CAT_SETS.items()} if extra else _CAT_SETS

    # ------------------------------------------------------------ character sets
    def _lit(self, code):
        ch = chr(code)
        want = {ch, ch.lower(), ch.upper()} if self.icase else {ch}
        return frozenset(self.pos[a] for a in want if a in self.pos) or frozenset({-code})

    def _in(self, items):
        neg, acc = False, set()
        for op, av in items:
            if op is C.NEGATE:
                neg = True
            elif op is C.LITERAL:
                acc |= self._lit(av)
            elif op is C.RANGE:
                lo, hi = av
                acc |= {i for i, a in enumerate(self.chars)
                        if any(len(v) == 1 and lo <= ord(v) <= hi
                               for v in ((a, a.lower(), a.upper()) if self.icase else (a,)))}
            elif op is C.CATEGORY:
                acc |= self.cat_sets.get(av, self.all)
            else:                                   # anything unexpected: assume it can match anything
                acc |= self.all
        return self.all - acc if neg else frozenset(acc)

    def first(self, items):
        """(characters that can start a match of `items`, whether `items` can match empty)."""
        out = set()
        for op, av in items:
            f, nullable = self.first_item(op, av)
            out |= f
            if not nullable:
                return frozenset(out), False
        return frozenset(out), True

    def first_item(self, op, av):
        if op is C.LITERAL:
            return self._lit(av), False
        if op is C.NOT_LITERAL:
            return self.all - self._lit(av), False
        if op is C.ANY:
            return self.all, False
        if op is C.IN:
            return self._in(av), False
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
            return _frozen_empty, True             # zero width
        if op is C.SUBPATTERN:
            return self.first(list(av[-1]))
        if op is C.ATOMIC_GROUP:
            return self.first(list(av))
        if op is C.BRANCH:
            out, nullable = set(), False
            for alt in av[1]:
                f, n = self.first(list(alt))
                out |= f
                nullable |= n
            return frozenset(out), nullable
        if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            lo, _, body = av
            f, n = self.first(list(body))
            return f, n or lo == 0
        if op is C.GROUPREF_EXISTS:
            return self.all, True
        return self.all, True                      # GROUPREF and the rest: anything

    # ------------------------------------------------------------ runs of adjacent repeats
    def _one_class(self, op, av):
        """The characters of a one-character item (literal, class, `.`), else None."""
        if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
            return self.first_item(op, av)[0]
        return None

    def adjacent(self, items, top=False):
        """Refuse two unbounded repeats of one character class each that can share a character with nothing
        in between that cannot (`\\d+\\s*\\d+#`: a run of digits splits between them in n ways), unless the second
        ends the whole pattern (`https?://\\S+\\.\\S+`): the splits are tried only when what follows fails."""
        runs = []                           # (characters every item of a run can match, its unbounded repeats)
        flat = list(self._flat(items))
        for i, (op, av) in enumerate(flat):
            if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
                if op is not C.AT:
                    self.adjacent(list(av[1]))
                continue
            if op in (C.MAX_REPEAT, C.MIN_REPEAT) and len(av[2]) == 1 \
                    and self._one_class(*av[2][0]) is not None:
                lo, hi, body = av
                chars, more = self._one_class(*body[0]), hi is C.MAXREPEAT
                # a run goes on through this repeat when it can take one of the run's characters, and past it
                # when it can match nothing (`\s*` between two `\d+`); an unbounded one may start a run
                runs = [(chars & s, n + more) if chars & s else (s, n) for s, n in runs if chars & s or not lo]
                if any(n >= 2 for _, n in runs) and not (top and i == len(flat) - 1):
                    raise UnsafeRegex(_ADJACENT)
                if more:
                    runs.append((chars, 1))
                continue
            chars = self._one_class(op, av)
            if chars is not None:
                runs = [(chars & s, n) for s, n in runs if chars & s]    # `\w+a\w+` splits a run of `a`s
                continue
            runs = self._past_group(runs, op, av, last=top and i == len(flat) - 1)
            if op is C.BRANCH:
                for alt in av[1]:
                    self.adjacent(list(alt))
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
                self.adjacent(list(av[2]))
            elif op is C.ATOMIC_GROUP:
                self.adjacent(list(av))
            elif op is C.GROUPREF_EXISTS:
                self.adjacent(list(av[1]))
                if av[2] is not None:
                    self.adjacent(list(av[2]))

    def _past_group(self, runs, op, av, last):
        """The runs that go on past a group, an alternation or a repeat of several items: an unbounded
        repeat it can start with that takes a run's character adds to that run (`\\d+(?:\\d*|x)#`), and
        when it can match nothing the runs go on through it (`\\d+(-)?\\d+#`, `\\d+(?:\\s|)\\d+x`)."""
        lead = self._leading_repeats([(op, av)])
        if not last and any(c & s for s, n in runs for c in lead):
            raise UnsafeRegex(_ADJACENT)
        if op is C.GROUPREF:                # a backreference ends the run, as before (`(\\w+)\\s+\\1\\s+\\w+!`)
            return []
        return runs if self.first([(op, av)])[1] else []

    def _leading_repeats(self, items):
        """The characters of each unbounded one-class repeat a match of `items` can start with."""
        out = []
        for op, av in items:
            if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
                continue
            if op is C.SUBPATTERN:
                out += self._leading_repeats(list(av[-1]))
            elif op is C.BRANCH:
                for alt in av[1]:
                    out += self._leading_repeats(list(alt))
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
                body = list(av[2])
                if av[1] is C.MAXREPEAT and len(body) == 1 and self._one_class(*body[0]) is not None:
                    out.append(self._one_class(*body[0]))
                else:
                    out += self._leading_repeats(body)
            if not self.first_item(op, av)[1]:
                break
        return out

    def _flat(self, items):
        """`items` with plain groups opened: `(\\d+)\\s*(\\d+)` is a run of three items."""
        for op, av in items:
            if op is C.SUBPATTERN:
                yield from self._flat(list(av[-1]))
            else:
                yield op, av

    # ------------------------------------------------------------ the walk
    def _ambiguous(self, branch_av):
        """Whether two alternatives of this alternation read the same text and meet again inside the outermost
        loop holding it (redos_branch.py); None: undecided."""
        key = id(self.outer)
        got = self._nfas.get(key)
        if got is None:
            got = self._nfas[key] = (self.outer, nfa_of(self, self.outer))     # (the body kept: its id stays its)
        return ambiguous(got[1], branch_av) if got[1] is not None else None

    def seq(self, items, follow, loop):
        """Walk `items`; `follow` = characters that can come right after them up to the end of
        the innermost unbounded repeat's body (wrapping to its start); `loop` = that repeat,
        or None outside any."""
        for i, (op, av) in enumerate(items):
            rest, nullable = self.first(items[i + 1:])
            after = rest | follow if nullable else rest
            self.item(op, av, after, loop)

    def item(self, op, av, follow, loop):
        if op is C.SUBPATTERN:
            self.seq(list(av[-1]), follow, loop)
        elif op is C.ATOMIC_GROUP:
            self.seq(list(av), follow, None)       # no backtracking into an atomic group
        elif op in (C.ASSERT, C.ASSERT_NOT):
            self.seq(list(av[1]), _frozen_empty, None)
        elif op is C.BRANCH:
            alts = [list(a) for a in av[1]]
            verdict = self._ambiguous(av) if loop is not None else False
            if verdict:
                raise UnsafeRegex(_BRANCH)
            if verdict is None:
                # undecided by the walk (redos_branch.py): two branches that start alike, or both (or one
                # and what follows) can match nothing — `(a|a)+`, `(a|aa)*` (parsed as `a(|a)`)
                seen, n_empty = set(), 0
                for alt in alts:
                    f, nullable = self.first(alt)
                    n_empty += nullable
                    if f & seen or n_empty > 1:
                        raise UnsafeRegex(_BRANCH)
                    seen |= f
                if n_empty and seen & follow:
                    raise UnsafeRegex(_BRANCH)
            for alt in alts:
                self.seq(alt, follow, loop)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = av
            body = list(body)
            start, _ = self.first(body)
            # a repeat whose count can vary, inside another repeat, whose characters can also come
            # next: the same text splits between the two in many ways
            if loop is not None and hi != lo and start & follow:
                raise UnsafeRegex("nested quantifiers over overlapping characters (like `(a+)+`, `(\\w+\\s?)+` "
                                  "or `(.*a){20}`) can backtrack catastrophically; make the inner and outer "
                                  "repeats match disjoint characters")
            if hi >= 2:
                # a loop: what may follow inside its body wraps round to the body's start
                outer = self.outer
                if loop is None:
                    self.outer = body               # the outermost loop: where an alternation's paths may meet
                try:
                    self.seq(body, start | follow if loop is not None else start, body)
                finally:
                    self.outer = outer
            else:
                self.seq(body, follow, loop)
        elif op is C.POSSESSIVE_REPEAT:
            self.seq(list(av[2]), _frozen_empty, None)
        elif op is C.GROUPREF_EXISTS:
            _, yes, no = av
            self.seq(list(yes), follow, loop)
            if no is not None:
                self.seq(list(no), follow, loop)
