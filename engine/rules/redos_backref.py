"""Backreferences that backtrack with a high degree, refused at load (redos.check calls `check_backrefs`).

A pattern with a backreference (`\\1`) always runs on Python's `re` (RE2 has none), which tries every way to match
from every start position, and a message may be 65,536 characters long. Two shapes cost far more than a run of
repeats over one character class (redos.py's polynomial shapes, which RE2 takes in linear time):

- a repeat without an upper bound that can start with a backreference (`(\\w{2,30})\\1{2,}!`, `(\\w)\\1+x`,
  `(\\w+)(?:\\1|-)*!`): for each start and each length of the group, every count of copies is tried again before
  what follows fails: 148 s of one core on 64 KB for `(\\w{2,30})\\1{2,}!` (bound the count: `\\1{2,5}`);
- a backreference to a group that can match a text of any length, with nothing between the group and it that must
  match (`(\\w+)\\1!`, `([a-z]+)\\s*\\1z`): each start tries each length of the group and compares a copy of each:
  cubic, 2.4 s on 4,000 characters, hours on 64 KB (bound the group: `(\\w{1,30})\\1`, 43 ms on 64 KB).

`(\\w+)\\s+\\1` (something that must match, and cannot continue the group, stands between) stays accepted, as
redos.py's other polynomial shapes: quadratic on a text crafted as one long run.
"""
from __future__ import annotations

from re import _constants as C

from .redos_paths import _bodies

_REPEATED = ("a repeat without an upper bound that can start with a backreference (like `\\1+`, `\\1{2,}` or "
             "`(?:\\1|-)*`) tries every count of copies from every position: minutes of one core on a long message; "
             "bound the repeat (`\\1{1,5}`)")
_ADJACENT_REF = ("a backreference (`\\1`) right after a group that can match a text of any length (like `(\\w+)\\1` or "
                 "`([a-z]+)\\s*\\1`) compares a copy of every length the group can take, from every position: cubic "
                 "in the message's length (seconds on 4,000 characters); bound the group (`(\\w{1,30})\\1`)")


def check_backrefs(ck, items, unsafe) -> None:
    """Raise `unsafe(why)` on the two shapes above in `items` or any sequence nested in it (`ck`: redos._Checker,
    whose first_item says whether an item can match nothing)."""
    for i, (op, av) in enumerate(items):
        for body in _bodies(op, av):
            check_backrefs(ck, body, unsafe)
        if op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[1] is C.MAXREPEAT and _leading_refs(ck, list(av[2])):
            raise unsafe(_REPEATED)
        unbounded = _ending_groups(ck, op, av)
        if unbounded:
            for op2, av2 in items[i + 1:]:
                if unbounded & _leading_refs(ck, [(op2, av2)]):
                    raise unsafe(_ADJACENT_REF)
                if not ck.first_item(op2, av2)[1]:
                    break               # something that must match stands between the group and what follows


def _leading_refs(ck, items) -> set:
    """The group numbers backreferenced where a match of `items` can start (`(?:\\1|x)`, `\\1+`; not `-\\1`)."""
    out = set()
    for op, av in items:
        if op is C.GROUPREF:
            out.add(av)
        elif op is not C.ASSERT_NOT:
            for body in _bodies(op, av):
                out |= _leading_refs(ck, body)
        if not ck.first_item(op, av)[1]:
            break
    return out


def _ending_groups(ck, op, av) -> set:
    """The numbers of the groups that can match a text of any length and that a match of the item (op, av) can end
    with: the group itself, and those ending its body (`((\\w+))`, `(a(\\w+)x?)`; not `(a(\\w+)b)`)."""
    if op is not C.SUBPATTERN:
        return set()
    out = {av[0]} if av[0] is not None and av[-1].getwidth()[1] >= C.MAXREPEAT else set()
    for op2, av2 in reversed(list(av[-1])):
        out |= _ending_groups(ck, op2, av2)
        if not ck.first_item(op2, av2)[1]:
            break
    return out
