"""Checks across the set on the composites (`expr`), once every file is read and every rule built.

`link_refs` resolves each symbol an expr names (unknown, disabled or its own rule: an error).
`check_composites` then refuses a cycle of composites and a chain of them over MAX_CHAIN long
(evaluation recurses once per level: a hostile file must not overflow the stack of the judge),
and settles the scopes of each composite against those of the symbols it names (_settle_scopes).
All of it is iterative, as chains may be long; `dep_order` is also what lint.py walks the set in.
"""
from __future__ import annotations

from .rule import SCOPES, did_you_mean
from .source import RuleError

MAX_CHAIN = 32         # composite of composite of ...: evaluation recurses once per level


def link_refs(pending_refs, by_symbol, disabled, errors, broken=frozenset()):
    """Each (rule, symbol, path, line, col) an expr names becomes one of the rule's deps and refs, or an error.
    A symbol in `broken` (its rule has errors, reported where they are) is passed over: it is no unknown symbol."""
    for r, sym, disp, ln, col in pending_refs:
        if r.symbol in disabled or (sym in broken and sym not in by_symbol):
            continue
        if sym in disabled:
            errors.append(RuleError(disp, ln, col, f"{r.symbol} refers to {sym}, which is disabled (enabled = false "
                                                   f"at {disabled[sym]}): disable {r.symbol} too, or edit its expr"))
        elif sym not in by_symbol:
            hint = f"; did you mean {sym.upper()!r}? (symbols are UPPER_SNAKE)" if sym.upper() in by_symbol \
                else did_you_mean(sym, list(by_symbol))        # (difflib's ratio is case-sensitive: no hint)
            errors.append(RuleError(disp, ln, col, f"unknown symbol {sym!r} in expr{hint}"))
        elif sym == r.symbol:
            errors.append(RuleError(disp, ln, col, f"rule {sym} refers to itself"))
        else:
            r.deps.append(sym)
            r.refs.append((sym, disp, ln, col))


def check_composites(rules, by_symbol, errors):
    """Refuse a cycle of composites; without one, refuse a chain over MAX_CHAIN and settle each composite's scopes."""
    cyc = _find_cycle(rules, by_symbol)
    if cyc:
        r = by_symbol[cyc[0]]
        p, ln = r.source.rsplit(":", 1)
        errors.append(RuleError(p, int(ln), 1, f"composite cycle: {' -> '.join(cyc)}"))
    else:
        chain = _deepest_chain(rules, by_symbol)
        if len(chain) > MAX_CHAIN:
            r = by_symbol[chain[0]]
            p, ln = r.source.rsplit(":", 1)
            errors.append(RuleError(p, int(ln), 1, f"composites nested more than {MAX_CHAIN} deep: "
                                                     f"{' -> '.join(chain[:4])} -> ... -> {chain[-1]}"))
        _settle_scopes(rules, by_symbol, errors)


def _settle_scopes(rules, by_symbol, errors):
    """A symbol is false in a scope it does not apply to, so a composite naming it there is never true
    (or, under `not`, always): refuse that when the composite's applies_to is written; a composite with
    no applies_to applies where every symbol it names does."""
    for r in dep_order(rules, by_symbol):
        if not r.deps:
            continue
        if r.scopes_given:
            for sym, disp, ln, col in r.refs:
                d = by_symbol[sym]
                missing = [s for s in SCOPES if s in r.applies_to and s not in d.applies_to]
                if missing:
                    errors.append(RuleError(disp, ln, col, f"{r.symbol} applies to {', '.join(missing)} but {sym} "
                                                           f"(at {d.source}) does not: there {sym} is always false; "
                                                           f"make the two applies_to agree"))
        else:
            narrowed = frozenset(s for s in r.applies_to if _can_hold(r.tree, {d for d in r.deps
                                                                           if s not in by_symbol[d].applies_to}))
            if not narrowed:
                p, ln = r.source.rsplit(":", 1)
                errors.append(RuleError(p, int(ln), 1, f"{r.symbol}: the symbols its expr names leave it no scope "
                                                       f"({', '.join(sorted(set(r.deps)))}): it never holds"))
            r.applies_to = narrowed


def _can_hold(tree, absent) -> bool:
    """Whether a composite still holds on its own symbols in a scope where the `absent` ones never do: not when it is
    false there whatever the rest are ('A and B', B absent), nor when an absent symbol is under `not` (there it would
    hold for every message alike: `not __SMS_HELPER` on a call). 'A or B' with B absent holds where A does (it did
    before scopes were narrowed; an intersection of the symbols' scopes took it out of every scope)."""
    if not absent or tree is None:
        return True
    return not _negates(tree, absent, False) and _reduced(tree, absent) is not False


def _negates(tree, absent, neg) -> bool:
    op = tree[0]
    if op == "sym":
        return neg and tree[1] in absent
    if op == "not":
        return _negates(tree[1], absent, not neg)
    return any(_negates(t, absent, neg) for t in tree[1])


def _reduced(tree, absent):
    """The composite with the `absent` symbols false: False / True when that settles it, else None."""
    op = tree[0]
    if op == "sym":
        return False if tree[1] in absent else None
    if op == "not":
        v = _reduced(tree[1], absent)
        return None if v is None else not v
    vals = [_reduced(t, absent) for t in tree[1]]
    stop = op == "or"                   # True settles an `or`, False an `and`
    if stop in vals:
        return stop
    return not stop if all(v is (not stop) for v in vals) else None


def _deepest_chain(rules, by_symbol):
    """The longest chain of composites referring to composites (no cycles by now)."""
    best: dict = {}
    for r in dep_order(rules, by_symbol):
        deps = [best[d] for d in r.deps]
        best[r.symbol] = [r.symbol] + max(deps, key=len) if deps else [r.symbol]
    return max(best.values(), key=len) if best else []


def dep_order(rules, by_symbol):
    """Rules with every dependency before its dependants (iterative: chains may be long)."""
    out, done = [], set()
    for r0 in rules:
        stack = [(r0, 0)]
        while stack:
            r, k = stack.pop()
            if r.symbol in done:
                continue
            if k < len(r.deps):
                stack.append((r, k + 1))
                d = by_symbol[r.deps[k]]
                if d.symbol not in done:
                    stack.append((d, 0))
                continue
            done.add(r.symbol)
            out.append(r)
    return out


def _find_cycle(rules, by_symbol):
    """A cycle of composites as [A, B, ..., A], or None (iterative depth-first search)."""
    color: dict = {}
    for r0 in rules:
        if r0.symbol in color:
            continue
        path = [r0.symbol]
        color[r0.symbol] = 1
        stack = [iter(r0.deps)]
        while stack:
            d = next(stack[-1], None)
            if d is None:
                stack.pop()
                color[path.pop()] = 2
            elif color.get(d) == 1:
                return path[path.index(d):] + [d]
            elif d not in color:
                color[d] = 1
                path.append(d)
                stack.append(iter(by_symbol[d].deps))
    return None
