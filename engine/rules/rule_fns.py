"""Rule closures: one rule's expression and conditions as one callable, for rules/plan.py.

A rule becomes a closure (ctx, state, memo, pending) -> evidence | None. Its composite
expression reads its operands' memo slots, evaluating an operand only the first time
(short-circuit, left to right, the order the file wrote them); then its pure conditions run
by cost class (conditions.COST: field compares, look-ups, text scans, the classifier), then its
stateful conditions, which join `pending` as soon as the rule gets that far. The evidence is
built only once every condition held, and lists them in the file's order. `guard_chain` says
which symbol a rule can be skipped on (plan.py's blocks).
"""
from __future__ import annotations

from . import slots as _slots
from .conditions import COST

UNKNOWN = object()          # a slot not evaluated yet for this message


def guard_chain(tree, by_symbol, memo) -> list:
    """The symbols that a direct reading of `tree` evaluates before anything else, each of
    which, when false, makes `tree` false with nothing else evaluated; outermost first.

    `SYM` gives SYM, then what SYM's own expression evaluates first (a rule runs its
    expression before its conditions); `A and ...` what A gives; `A or B ...` what every
    operand gives (the first operand evaluates it, the others then read it). A rule whose
    chain is not empty is guarded by the chain's last symbol: the innermost, most often
    evaluated already (`DKQC_VIOLATION = __DKQC_REPEAT or __DKQC_TO_DNC or __DKQC_HOURS`,
    each `__REGISTRATION`, itself `__DKQC and ...`: skipped when `__DKQC` is false).
    Evaluating the guard first is what the direct reading does, so stateful conditions join
    `pending` exactly as they would."""
    if tree is None:
        return []
    op = tree[0]
    if op == "sym":
        name = tree[1]
        if name not in memo:
            memo[name] = []                     # no cycles by now; this only stops a re-entry
            memo[name] = [name] + guard_chain(by_symbol[name].tree, by_symbol, memo)
        return memo[name]
    if op == "and":
        return guard_chain(tree[1][0], by_symbol, memo)
    if op == "or":
        common = guard_chain(tree[1][0], by_symbol, memo)
        for t in tree[1][1:]:
            other = set(guard_chain(t, by_symbol, memo))
            common = [x for x in common if x in other]
        return common
    return []


def guard_of(tree):
    """The symbol that must hold for the expression to hold when it is `SYM and ...` (or SYM)."""
    if tree is None:
        return None
    if tree[0] == "sym":
        return tree[1]
    if tree[0] == "and" and tree[1][0][0] == "sym":
        return tree[1][0][1]
    return None


# ---------------------------------------------------------------- composites

def _compile_expr(tree, index, fns, direct):
    """A closure (ctx, state, memo, pending) -> bool for an expression tree.

    An and/or node loops over its operands; an operand that is a symbol (or `not` a symbol)
    is read from its slot inside that loop, evaluated on first use by the rule's closure or,
    for a rule that is one bare condition, by the condition itself: one call per node."""
    op = tree[0]
    if op == "sym" or (op == "not" and tree[1][0] == "sym"):
        tree = ("and", [tree])              # a lone (negated) symbol: a one-operand node
        op = "and"
    if op == "not":
        inner = _compile_expr(tree[1], index, fns, direct)
        return lambda c, s, m, p: not inner(c, s, m, p)
    terms = tuple(_term(k, index, fns, direct) for k in tree[1])
    if op == "and":
        def all_of(c, s, m, p):
            for j, neg, f, d in terms:
                if f is None:
                    v = m[j]
                    if v is UNKNOWN:
                        v = m[j] = d(c, s) if d is not None else fns[j](c, s, m, p)
                    if (v is None) is not neg:          # the operand is false
                        return False
                elif not f(c, s, m, p):
                    return False
            return True
        return all_of

    def any_of(c, s, m, p):
        for j, neg, f, d in terms:
            if f is None:
                v = m[j]
                if v is UNKNOWN:
                    v = m[j] = d(c, s) if d is not None else fns[j](c, s, m, p)
                if (v is None) is neg:                  # the operand is true
                    return True
            elif f(c, s, m, p):
                return True
        return False
    return any_of


def _top_node(tree, index, fns, direct):
    """("and" | "or", terms) of the expression's top node as _compile_expr loops over it (a lone
    symbol or negated symbol is a one-operand "and"), or (None, None) for a top-level `not (...)`."""
    op = tree[0]
    if op == "sym" or (op == "not" and tree[1][0] == "sym"):
        return "and", (_term(tree, index, fns, direct),)
    if op in ("and", "or"):
        return op, tuple(_term(k, index, fns, direct) for k in tree[1])
    return None, None


def _term(tree, index, fns, direct):
    """(slot, negated, None, bare condition | None) for `SYM` / `not SYM`, else (-1, False, closure, None)."""
    if tree[0] == "sym":
        j = index[tree[1]]
        return (j, False, None, direct[j])
    if tree[0] == "not" and tree[1][0] == "sym":
        j = index[tree[1][1]]
        return (j, True, None, direct[j])
    return (-1, False, _compile_expr(tree, index, fns, direct), None)


def _symbol_ors(tree, index, fns, direct):
    """The _term of each operand of `tree` when it is an `or` of symbols and negated symbols only, else None."""
    if tree[0] != "or" or not all(k[0] == "sym" or k[0] == "not" and k[1][0] == "sym" for k in tree[1]):
        return None
    return tuple(_term(k, index, fns, direct) for k in tree[1])


# ---------------------------------------------------------------- one rule

def negations(tree, index):
    """The expression with slots for `held_negations`, or None when it has no `not SYM`: ("s", slot) a symbol,
    ("n", slot, name) a `not SYM`, ("x", node) another `not`, ("and" | "or", nodes)."""
    found = []

    def walk(t):
        if t[0] == "sym":
            return ("s", index[t[1]])
        if t[0] == "not":
            if t[1][0] == "sym":
                found.append(t)
                return ("n", index[t[1][1]], t[1][1])
            return ("x", walk(t[1]))
        return (t[0], tuple(walk(k) for k in t[1]))
    out = walk(tree)
    return out if found else None


def _truth(t, m):
    """What a node of `negations` came to on this message: True, False, or None where the memo does not say."""
    k = t[0]
    if k == "s" or k == "n":
        v = m[t[1]]
        return None if v is UNKNOWN else (v is None) is (k == "n")
    if k == "x":
        v = _truth(t[1], m)
        return None if v is None else not v
    got = k == "and"                    # and: False decides; or: True decides
    out = got
    for c in t[1]:
        v = _truth(c, m)
        if v is None:
            out = None
        elif v is not got:
            return v
    return out


def held_negations(t, m, out: list) -> None:
    """The `not SYM` through which a node that held came to hold: every operand of an `and`, the first
    operand of an `or` (left to right, as it is evaluated) that held."""
    k = t[0]
    if k == "n":
        if t[2] not in out:
            out.append(t[2])
    elif k == "and":
        for c in t[1]:
            held_negations(c, m, out)
    elif k == "or":
        for c in t[1]:
            if _truth(c, m):
                held_negations(c, m, out)
                return


def evidence(deps, negs, m, desc):
    """A composite's evidence, built only once it holds: each operand it read that held ("SYM: its
    evidence"), leaving out one already quoted whole inside another's (a helper both named and nested:
    "__IS_AD: __QC_BRAND: …" and "__QC_BRAND: …"), then each `not SYM` through which it held (`negs`, from
    `negations`; "not SYM": what is absent is often the reason, as for AD_LABEL_MISSING). `desc` when there is
    none."""
    ev = []                 # (loops, comprehensions in _unquoted: no cells made at every composite that holds)
    for d, j in deps:
        v = m[j]
        if v is not UNKNOWN and v is not None:
            ev.append(f"{d}: {v}")
    if len(ev) > 1:
        ev = _unquoted(list(dict.fromkeys(ev)))
    if negs is not None:
        held: list = []
        held_negations(negs, m, held)
        ev += [f"not {d}" for d in held]
    return "; ".join(ev) if ev else desc


def _unquoted(ev: list) -> list:
    """`ev` without the evidence quoted whole inside another's (evidence)."""
    return [e for e in ev if not any(e != o and e in o for o in ev)]


def direct_pred(rule, shared):
    """The rule's only condition when it is a single pure, unshared one, else None."""
    if rule.tree is None and not rule.stateful and len(rule.preds) == 1:
        name, pred, key = rule.preds[0]
        if (name, key) not in shared:
            return pred
    return None


def _fast_composite(py, mode, terms, fns, deps, negs, desc):
    """`py` (composite_all: mode 0, composite_any: 1, composite_all_ors: 2) as its compiled twin (_slotsfast.RuleFn,
    _rulefn.h: the same operands called in the same order, its evidence this module's `evidence`) when the compiled
    table paths are on (slots.use_fast, TELFILTER_TABLES_PURE) as the rules are read; `py` itself otherwise."""
    f = _slots._fast
    return py if f is None else f.rule_composite(py, mode, terms, fns, evidence, deps, negs, desc)


def _fast_state(py, slot, pred, st, check):
    """`py` (shared_then_state on `slot`, pred_then_state: slot -1) as its compiled twin, as _fast_composite."""
    f = _slots._fast
    return py if f is None else f.rule_state(py, slot, pred, st, check)


def rule_fn(rule, index, fns, shared, direct, tree="rule"):
    """A closure (ctx, state, memo, pending) -> evidence | None for one rule (with `tree`
    instead of the rule's own expression when given: the part left once its guard holds)."""
    tree = rule.tree if tree == "rule" else tree
    expr = _compile_expr(tree, index, fns, direct) if tree is not None else None
    deps = tuple((d, index[d]) for d in rule.deps)
    # a reported rule's evidence also names the `not SYM` that held (what is absent is often its reason); a
    # helper's does not: quoted inside the rules that read it, its own would bury theirs
    negs = negations(rule.tree, index) if rule.tree is not None and not rule.helper else None
    desc = rule.description
    stateful = tuple(rule.stateful)
    # (position in the file's order, predicate, shared slot or -1), cheapest first
    preds = sorted(((pos, pred, shared.get((name, key), -1), COST.get(name, 5))
                    for pos, (name, pred, key) in enumerate(rule.preds)), key=lambda t: (t[3], t[0]))
    preds = tuple(t[:3] for t in preds)
    npred = len(preds)

    if expr is None and not stateful and npred == 1 and not deps:
        _, pred, slot = preds[0]
        if slot < 0:
            return lambda c, s, m, p: pred(c, s)

        def one_shared(c, s, m, p):
            e = m[slot]
            if e is UNKNOWN:
                e = m[slot] = pred(c, s)
            return e
        return one_shared

    if expr is not None and not stateful and npred == 0:
        # the expression's top and/or node is looped over here, not called (_compile_expr's
        # all_of / any_of, inlined: one call less for most composites)
        op, terms = _top_node(tree, index, fns, direct)
        ors = tuple(_symbol_ors(k, index, fns, direct) for k in tree[1]) if op == "and" and tree[0] == "and" else ()
        if any(o is not None for o in ors):
            # an operand that is an `or` of (negated) symbols is looped over here too, not called (any_of): the
            # shipped `__IS_AD = (__AD_LABEL or __QC_BRAND or __DKQC) and not __REGISTRATION`, every SMS's guard
            parts = tuple(t + (o,) for t, o in zip(terms, ors))

            def composite_all_ors(c, s, m, p):
                for j, neg, f, d, alts in parts:
                    if alts is not None:
                        for j, neg, _, d in alts:
                            v = m[j]
                            if v is UNKNOWN:
                                v = m[j] = d(c, s) if d is not None else fns[j](c, s, m, p)
                            if (v is None) is neg:          # an alternative is true
                                break
                        else:
                            return None
                    elif f is None:
                        v = m[j]
                        if v is UNKNOWN:
                            v = m[j] = d(c, s) if d is not None else fns[j](c, s, m, p)
                        if (v is None) is not neg:          # the operand is false
                            return None
                    elif not f(c, s, m, p):
                        return None
                return evidence(deps, negs, m, desc)
            return _fast_composite(composite_all_ors, 2, parts, fns, deps, negs, desc)
        if op == "and":
            def composite_all(c, s, m, p):
                for j, neg, f, d in terms:
                    if f is None:
                        v = m[j]
                        if v is UNKNOWN:
                            v = m[j] = d(c, s) if d is not None else fns[j](c, s, m, p)
                        if (v is None) is not neg:          # the operand is false
                            return None
                    elif not f(c, s, m, p):
                        return None
                return evidence(deps, negs, m, desc)
            return _fast_composite(composite_all, 0, terms, fns, deps, negs, desc)
        if op == "or":
            def composite_any(c, s, m, p):
                for j, neg, f, d in terms:
                    if f is None:
                        v = m[j]
                        if v is UNKNOWN:
                            v = m[j] = d(c, s) if d is not None else fns[j](c, s, m, p)
                        if (v is None) is neg:              # the operand is true
                            break
                    elif f(c, s, m, p):
                        break
                else:
                    return None
                return evidence(deps, negs, m, desc)
            return _fast_composite(composite_any, 1, terms, fns, deps, negs, desc)

        def composite(c, s, m, p):
            if not expr(c, s, m, p):
                return None
            return evidence(deps, negs, m, desc)
        return composite

    if expr is None and npred == 1 and len(stateful) == 1 and not deps:
        # the commonest stateful rule: one (shared) condition, then one counter or history check
        # (one closure per case, the check read once here: a Stateful's check is fixed once it is built)
        _, pred, slot = preds[0]
        st = stateful[0]
        check = st.check
        if slot < 0:
            def pred_then_state(c, s, m, p):
                e = pred(c, s)
                if e is None:
                    return None
                p.append(st)
                e2 = check(c, s)
                return None if e2 is None else e + "; " + e2
            return _fast_state(pred_then_state, -1, pred, st, check)

        def shared_then_state(c, s, m, p):
            e = m[slot]
            if e is UNKNOWN:
                e = m[slot] = pred(c, s)
            if e is None:
                return None
            p.append(st)
            e2 = check(c, s)
            return None if e2 is None else e + "; " + e2
        return _fast_state(shared_then_state, slot, pred, st, check)

    def general(c, s, m, p):
        if expr is not None and not expr(c, s, m, p):
            return None
        if npred:
            found = [None] * npred
            for pos, pred, slot in preds:
                if slot < 0:
                    e = pred(c, s)
                else:
                    e = m[slot]
                    if e is UNKNOWN:
                        e = m[slot] = pred(c, s)
                if e is None:
                    return None
                found[pos] = e
        else:
            found = []
        if stateful:
            p.extend(stateful)
            for st in stateful:
                e = st.check(c, s)
                if e is None:
                    return None
                found.append(e)
        if deps:
            ev = evidence(deps, negs, m, None)
            if ev is not None:
                found.insert(0, ev)
        return "; ".join(found) if found else desc
    return general
