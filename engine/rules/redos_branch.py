"""Are two alternatives of an alternation inside a repeat able to match the same text? (redos.py asks.)

Theory of operation. `(A|B)` inside a repeat backtracks exponentially when one string can take two paths through
the repeat's body: entering A and entering B, both paths reading the same characters, they meet again in one
state (`(x|x)*`, `(ab|a(b))*`, `(a|aa)*` after a second turn); n turns then give 2^n paths, all tried when what
follows fails. Alternatives that merely start alike part again before they meet (`(vay|vay von)+`: after `vay`
one reads a space, the other the next turn's `v`; `(?:tr|trieu)+`; `(?:\\d{3}\\.|\\d{2}\\.)+`) are linear, and
were refused when the check compared first characters only.

The outermost repeat's body is made a small NFA (Thompson's construction: one state per one-character item,
groups and alternations as empty moves, an inner repeat as a loop, its end looping back to its start), and the
two paths walk it side by side: a pair of states moves on a character both can read (their sets, from redos.py,
intersect) to every pair of states the two can reach next; the alternatives are ambiguous when the two paths
reach a common state. Look-arounds and anchors count as empty moves and a bounded repeat as an unbounded one:
that only adds paths, so it can refuse more, never less. A body with a backreference, an atomic group or a
possessive repeat, or a walk past MAX_PAIRS pairs, is not decided here (None): redos.py keeps its first-character
rule for it.
"""
from __future__ import annotations

from re import _constants as C

MAX_PAIRS = 20000
UNROLL = 16             # copies of a counted repeat's body made (`{3}` as three); past it, or past MAX_STATES, any count
MAX_STATES = 4000


class _Undecided(Exception):
    pass


class _Nfa:
    def __init__(self, checker, body):
        self.checker = checker
        self.eps: list[list[int]] = []          # state -> states reached without reading
        self.read: list = []                    # state -> (characters, next state) or None
        self.branches: dict = {}                # id(an alternation's av) -> its alternatives' first states
        self._closures: dict = {}
        start = self._new()
        end = self._seq(list(body), start)
        self.eps[end].append(start)             # the body's end starts its next turn

    def _new(self) -> int:
        self.eps.append([])
        self.read.append(None)
        return len(self.eps) - 1

    def _seq(self, items, s: int) -> int:
        for op, av in items:
            s = self._item(op, av, s)
        return s

    def _item(self, op, av, s: int) -> int:
        chars = self.checker._one_class(op, av)
        if chars is not None:
            at, nxt = self._new(), self._new()
            self.eps[s].append(at)
            self.read[at] = (chars, nxt)
            return nxt
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
            return s
        if op is C.SUBPATTERN:
            return self._seq(list(av[-1]), s)
        if op is C.BRANCH:
            end, firsts = self._new(), []
            for alt in av[1]:
                a = self._new()
                self.eps[s].append(a)
                firsts.append(a)
                self.eps[self._seq(list(alt), a)].append(end)
            self.branches.setdefault(id(av), []).append(firsts)     # one list for each copy of a counted repeat
            return end
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = av
            body = list(body)
            more = 1 if hi is C.MAXREPEAT else hi - lo
            if lo + more <= UNROLL and len(self.eps) < MAX_STATES:
                # counted exactly: lo copies, then one that loops (unbounded) or hi - lo that may each be left out
                # (`\d{3}\.|\d{2}\.` never meet; read as `\d+\.` twice, they did)
                for _ in range(lo):
                    s = self._seq(body, s)
                end = self._new()
                for _ in range(more):
                    self.eps[s].append(end)
                    b = self._seq(body, s)
                    if hi is C.MAXREPEAT:
                        self.eps[b].append(s)
                    s = b
                self.eps[s].append(end)
                return end
            a, end = self._new(), self._new()       # too many copies: any count from lo on (more paths, never fewer)
            self.eps[s].append(a)
            b = self._seq(body, a)
            self.eps[b].append(end)
            if lo == 0:
                self.eps[s].append(end)
            if hi is C.MAXREPEAT or hi >= 2:
                self.eps[b].append(a)
            return end
        raise _Undecided(op)

    def closure(self, s: int) -> frozenset:
        got = self._closures.get(s)
        if got is None:
            seen, todo = {s}, [s]
            while todo:
                for t in self.eps[todo.pop()]:
                    if t not in seen:
                        seen.add(t)
                        todo.append(t)
            got = self._closures[s] = frozenset(seen)
        return got

    def readers(self, states) -> list:
        return [s for s in states if self.read[s] is not None]


def nfa_of(checker, body):
    """The NFA of a repeat's body, or None when it holds something this module does not model."""
    try:
        return _Nfa(checker, body)
    except _Undecided:
        return None


def ambiguous(nfa: _Nfa, branch_av) -> bool | None:
    """Whether two alternatives of `branch_av` (an alternation inside the body `nfa` was built from) can read the
    same text and meet again; None when undecided (not found in the body, or the walk grew past MAX_PAIRS)."""
    copies = nfa.branches.get(id(branch_av))
    if copies is None:
        return None
    todo, seen = [], set()

    def meet(xs, ys) -> bool:
        """Whether paths at `xs` and `ys` share a state; else the pairs of readers they can go on from."""
        if xs & ys:
            return True
        for x in nfa.readers(xs):
            for y in nfa.readers(ys):
                pair = (x, y) if x < y else (y, x)
                if pair not in seen and nfa.read[x][0] & nfa.read[y][0]:
                    seen.add(pair)
                    todo.append(pair)
        return False

    for firsts in copies:
        # the pairs two alternatives start from, by the states (met already) and characters they share: a
        # comparison of every two of hundreds of alternatives took seconds
        owner, by_char = {}, {}
        for i, a in enumerate(firsts):
            for x in nfa.closure(a):
                if owner.setdefault(x, i) != i:
                    return True
                if nfa.read[x] is not None:
                    for c in nfa.read[x][0]:
                        by_char.setdefault(c, []).append((i, x))
        for readers in by_char.values():
            for n, (i, x) in enumerate(readers):
                for j, y in readers[n + 1:]:
                    pair = (x, y) if x < y else (y, x)
                    if i != j and pair not in seen:
                        seen.add(pair)
                        todo.append(pair)
                        if len(seen) > MAX_PAIRS:
                            return None
    while todo:
        if len(seen) > MAX_PAIRS:
            return None
        x, y = todo.pop()
        if meet(nfa.closure(nfa.read[x][1]), nfa.closure(nfa.read[y][1])):
            return True
    return False
