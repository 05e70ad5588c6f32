"""The ReDoS check's count of backtracking paths through optional items in a row (redos.py calls `check_paths`).

Theory of operation
-------------------
A run of items that may each match or skip the same character multiplies the ways a backtracking matcher can split
a run of that character among them: `x?` ten times then `x` ten times tries 2^10 splits at every start position
before a failing follower is given up (0.18 s on 8 KB of `x`), and `(x|x)?` (parsed `x(|)`: two ways after the `x`)
three ways each, 3^8 in a row 1.5 s, 3^10 20 s. No repeat is unbounded there, so neither the adjacency rule nor the
alternation rule sees it. Here every item gets, for each character c of the alphabet, the ways it can start by
consuming c on a text of c's alone (`take[c]`) and the ways it can match nothing (`null`); a sequence's ways are
the product of its items' (take + null), minus the all-empty ones; a branch's the sum of its alternatives'; a
bounded repeat's the sum over its counts of its body's sequence of that many copies. A run along the pattern
multiplies each character's ways while the items can take or skip it, and one of PATHS_MAX or more followed by an
item that must match something (whose failure makes every split tried) is refused. A repeat of one character class (`\\d{0,32}`) counts as two ways at most (Python walks its
counts in a tight loop: `\\d{0,32}\\d{0,32}y` on 8 KB of digits takes 36 ms), an unbounded repeat likewise (the
adjacency rule judges those), an atomic group or possessive repeat one (no backtracking into it). Numbers are
clamped at CAP. A cheap estimate of the choices in the pattern skips the count for the ordinary ones.
"""
from __future__ import annotations

import re._constants as C

PATHS_MAX = 1024        # ways to split one character's run among optional items in a row: refused from here
CAP = 1 << 30
REPEAT_MAX = 16         # counts of a bounded repeat walked (more: as many as these)


def choices(items) -> int:
    """A quick upper estimate of how many choice points `items` holds (optional and bounded repeats, the
    alternatives of a branch), bounded repeats multiplying their bodies'."""
    n = 0
    for op, av in items:
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = av
            reps = 2 if hi is C.MAXREPEAT else min(hi, REPEAT_MAX)
            n += (hi is C.MAXREPEAT or hi > lo) + reps * choices(body)
        elif op is C.BRANCH:
            n += len(av[1]) - 1 + sum(choices(alt) for alt in av[1])
        elif op is C.SUBPATTERN:
            n += choices(av[-1])
    return n


def check_paths(ck, items, unsafe) -> None:
    """Raise `unsafe` when a run of optional items in `items` can split one character's run PATHS_MAX ways or more
    with something after it (`ck`: redos._Checker, for character sets)."""
    if choices(items) >= 6:             # (fewer: 3^5 = 243 at most, far below PATHS_MAX)
        _scan(ck, items, unsafe)


def _scan(ck, items, unsafe) -> None:
    """check_paths on one sequence, then on each sequence nested in it (a group's body: its own follower)."""
    run: dict = {}
    for op, av in items:
        for body in _bodies(op, av):
            _scan(ck, body, unsafe)
        take, null = _ways_item(ck, op, av)
        if not null and run and max(run.values()) >= PATHS_MAX:
            raise unsafe                # an item that must match after the run: its failure tries every split
        _times(run, take, null, 1)      # (a character this item ends starts a run again at a later item)


def _bodies(op, av):
    if op is C.SUBPATTERN:
        return [list(av[-1])]
    if op is C.BRANCH:
        return [list(alt) for alt in av[1]]
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
        return [list(av[2])]
    if op is C.ATOMIC_GROUP:
        return [list(av)]
    if op in (C.ASSERT, C.ASSERT_NOT):
        return [list(av[1])]
    return []


def _seq(parts):
    """(take, null) of a sequence of parts, each (take, null): the ways it can match a run of c alone, whole. A part
    that can neither take c nor match nothing ends them (`ban` on a run of `b`: no way; alternatives that only start
    alike split no run, and the alternation rule judges them inside a repeat)."""
    prod: dict = {}                     # c -> product of (take + null) of the parts so far
    nulls, gone = 1, set()
    for take, null in parts:
        _times(prod, take, null, nulls, gone)
        nulls = min(nulls * null, CAP)
    take = {c: v - nulls for c, v in prod.items()}
    return {c: v for c, v in take.items() if v > 0}, nulls


def _times(prod: dict, take: dict, null: int, start: int, gone: set | None = None) -> None:
    """One item more in `prod` (character -> ways so far, in place): each way times the item's (take + null); a
    character it can neither take nor skip leaves `prod` (and goes into `gone`, which it never comes back from); one
    it takes that `prod` lacks comes in at `start` (the ways the items before matched nothing) times its own."""
    for c in list(prod):
        f = take.get(c, 0) + null
        if f:
            prod[c] = min(prod[c] * f, CAP)
        else:
            del prod[c]
            if gone is not None:
                gone.add(c)
    for c, v in take.items():
        if c not in prod and (gone is None or c not in gone):
            prod[c] = min(start * (v + null), CAP)


def _ways(ck, items):
    return _seq([_ways_item(ck, op, av) for op, av in items])


def _ways_item(ck, op, av):
    one = ck._one_class(op, av)
    if one is not None:
        return dict.fromkeys(one, 1), 0
    if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
        return {}, 1
    if op is C.SUBPATTERN:
        return _ways(ck, list(av[-1]))
    if op is C.BRANCH:
        take: dict = {}
        null = 0
        for alt in av[1]:
            t, z = _ways(ck, list(alt))
            for c, v in t.items():
                take[c] = min(take.get(c, 0) + v, CAP)
            null = min(null + z, CAP)
        return take, null
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        lo, hi, body = av
        body = list(body)
        if len(body) == 1 and ck._one_class(*body[0]) is not None:
            return dict.fromkeys(ck._one_class(*body[0]), 1), int(lo == 0)
        t, z = _ways(ck, body)
        # counts past REPEAT_MAX add nothing the limit needs (the ways only grow): x{5000} walks 16, not 5,000
        least = min(lo, REPEAT_MAX)
        top = least + (2 if hi is C.MAXREPEAT else min(hi - lo, REPEAT_MAX))
        take: dict = {}
        null = 0
        cur = ({}, 1)                   # the body `j` times
        for j in range(top + 1):
            if j >= least:
                for c, v in cur[0].items():
                    take[c] = min(take.get(c, 0) + v, CAP)
                null = min(null + cur[1], CAP)
            cur = _seq([cur, (t, z)])
        return take, null
    if op in (C.ATOMIC_GROUP, C.POSSESSIVE_REPEAT):
        t, z = _ways(ck, list(av if op is C.ATOMIC_GROUP else av[2]))
        return dict.fromkeys(t, 1), min(z, 1)
    return {}, 1                        # a backreference and the rest: neutral
