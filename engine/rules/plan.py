"""Rule plans: a rule set prepared once per scope so judging a message interprets little.

Theory of operation. Loading turns every rule into data (conditions, a composite tree, a
score); this module turns that data, once per scope (sms-mt, sms-mo, call), into closures
that do only the per-message work. No code is generated from rule text: every closure
below is written here and only its captured constants come from the rules.

- **Memo as a list.** Each symbol of the set has a fixed slot; a message starts from a copy
  of the scope's blank memo, where a rule that does not apply to the scope is already false
  (None) and every other slot is UNKNOWN. A slot, once filled, holds the rule's evidence
  (true) or None (false): a composite reads its operands' slots, evaluating an operand only
  the first time (short-circuit, left to right, the order the file wrote them), so no
  symbol is evaluated twice per message.
- **Guards.** A rule whose `expr` is `SYM and ...` at top level is skipped, without calling
  it, as soon as SYM's slot is false: for ordinary traffic one false `__IS_AD` skips every
  advertising rule. The guard is the innermost symbol the expression must evaluate first
  (`guard_chain`): `A or B` where A and B both start with `__DKQC` is skipped on `__DKQC`.
- **Cheapest first.** A rule's conditions run composite first (slot reads), then its pure
  predicates by cost class (field compares, then list/registry look-ups, then text scans,
  then the classifier), then its stateful conditions (which join `pending`, to be committed
  after the verdict, as soon as the rule gets that far). The evidence still lists them in
  the file's order.
- **Shared facts.** A condition written identically in several rules of a scope (e.g.
  `sender_kind = "number"` in four spam rules) gets its own slot: it runs once per message.
- **Keyword lists.** A scope with KEYWORD_INDEX_MIN or more distinct `keywords` / `keywords_absent`
  conditions reads them all from one pass over the text (rules/keywords.py) that fills their slots
  before the rules run; a rule with no `expr` and a `keywords` list is guarded by that slot.
- **Evidence.** A rule's evidence string is assembled only after all its conditions held;
  a false rule builds nothing. A composite's evidence names its operands that were true when
  it was evaluated.

`RuleSet.evaluate` and `Pipeline.judge` are the callers; results are the same (symbols, order, evidence and
pending stateful conditions) as a direct reading of the rules would give.
"""
from __future__ import annotations

from .conditions import COST
from .keywords import KEYWORD_INDEX_MIN, KeywordIndex

UNKNOWN = object()          # a slot not evaluated yet for this message
STATEFUL_COST = 100         # stateful conditions always come last (they read state, then join pending)


class ScopePlan:
    __slots__ = ("scope", "blank", "steps", "all_steps", "index", "fns", "prefill")

    def __init__(self, scope, blank, steps, all_steps, index, fns, prefill=None):
        self.prefill = prefill        # (ctx, memo) -> None: the shared keyword pass, or None
        self.scope = scope
        self.fns = fns                # slot -> the rule's closure (None outside the scope)
        self.blank = blank            # the memo a message starts from
        # ((guard slot | -1, ((reported rule | None, slot, fn, fn is a bare condition), ...)), ...)
        self.steps = steps
        self.all_steps = all_steps    # the same over every rule of the scope (examples, explain)
        self.index = index            # symbol -> slot


def compile_plans(rules, order, scopes) -> dict:
    indexes: dict = {}          # the same keyword conditions in two scopes (sms-mt, sms-mo) share one index
    return {sc: _compile_scope(rules, order, sc, indexes) for sc in scopes}


def keyword_slots(rules, scope) -> list:
    """[(name, canonical value, keyword parts)] of the distinct keyword conditions of a scope that has
    KEYWORD_INDEX_MIN or more of them (read in one pass: rules/keywords.py), else []."""
    conds: dict = {}
    for r in rules:
        if scope in r.applies_to:
            for name, pred, key in r.preds:
                if name in ("keywords", "keywords_absent") and (name, key) not in conds:
                    conds[(name, key)] = pred.keyword_parts
    return [(n, k, parts) for (n, k), parts in conds.items()] if len(conds) >= KEYWORD_INDEX_MIN else []


def _keyword_fill(kx, slots, absent):
    """(ctx, memo) -> None: writes the answer of every keyword condition the text matches into its slot."""
    scan = kx.scan

    def fill(c, m):
        t = c.folded
        for cid, (pos, _, end) in scan(t).items():
            m[slots[cid]] = None if absent[cid] else f"keyword {t[pos:end]!r}"
    return fill


def _compile_scope(rules, order, scope, indexes=None) -> ScopePlan:
    index = {r.symbol: j for j, r in enumerate(rules)}
    n = len(rules)
    fns: list = [None] * n
    blank: list = [UNKNOWN if scope in r.applies_to else None for r in rules]
    # many keyword lists: one pass over the text answers them all, each in a slot filled before the rules run
    shared: dict = {}
    prefill = None
    kw = keyword_slots(rules, scope)
    if kw:
        for name, key, _ in kw:
            shared[(name, key)] = len(blank)
            blank.append("no opt-out keyword" if name == "keywords_absent" else None)    # nothing matched
        ident = tuple((n, k) for n, k, _ in kw)
        kx = indexes.get(ident) if indexes is not None else None
        if kx is None:
            kx = KeywordIndex([parts for _, _, parts in kw])
            if indexes is not None:
                indexes[ident] = kx
        prefill = _keyword_fill(kx, [shared[(n, k)] for n, k, _ in kw],
                                [n == "keywords_absent" for n, _, _ in kw])
    # conditions written the same way in two or more rules of this scope share a slot
    uses: dict = {}
    for r in rules:
        if scope in r.applies_to:
            for name, _, key in r.preds:
                uses[(name, key)] = uses.get((name, key), 0) + 1
    for r in rules:
        if scope not in r.applies_to:
            continue
        for name, pred, key in r.preds:
            if uses[(name, key)] > 1 and (name, key) not in shared:
                shared[(name, key)] = len(blank)
                blank.append(UNKNOWN)
    # a rule that is one unshared pure condition is called as the condition itself
    direct = [direct_pred(r, shared) if scope in r.applies_to else None for r in rules]
    for r in rules:
        if scope in r.applies_to:
            fns[index[r.symbol]] = _rule_fn(r, index, fns, shared, direct)

    by_symbol = {r.symbol: r for r in rules}
    chains: dict = {}

    def blocks(rules_to_run):
        # consecutive rules behind the same guard form one block, skipped with one slot read
        out: list = []
        for r in rules_to_run:
            chain = guard_chain(r.tree, by_symbol, chains)
            g = index[chain[-1]] if chain else -1
            j = index[r.symbol]
            fn = direct[j] or fns[j]
            if g < 0 and r.tree is None:
                # a rule with a `keywords` list read in the shared pass: skipped while its slot is false
                g = next((shared[(name, key)] for name, _, key in r.preds
                          if name == "keywords" and (name, key) in shared), -1) if prefill else -1
            elif g >= 0 and guard_of(r.tree) == chain[-1]:
                # inside its block the guard is known to hold: run the rest of the expression only
                rest = r.tree[1][1:] if r.tree[0] == "and" else []
                rest = None if not rest else rest[0] if len(rest) == 1 else ("and", rest)
                fn = _rule_fn(r, index, fns, shared, direct, tree=rest)
            step = (None if r.helper else r, j, fn, direct[j] is not None)
            if out and out[-1][0] == g:         # (unguarded steps run one after another too)
                out[-1][1].append(step)
            else:
                out.append((g, [step]))
        return tuple((g, tuple(b)) for g, b in out)
    steps = blocks(r for r in order if scope in r.applies_to and (not r.helper or r.stateful))
    all_steps = blocks(r for r in order if scope in r.applies_to)
    fns += [None] * (len(blank) - n)        # (a guard on a keyword slot is never UNKNOWN: prefill wrote it)
    return ScopePlan(scope, blank, steps, all_steps, index, fns, prefill)


def run_steps(plan: ScopePlan, blocks, ctx, state):
    """Evaluate `blocks` for one message: (hits as (rule, evidence), pending Stateful, memo).
    A rule skipped by its guard keeps an UNKNOWN slot: read later, it evaluates to None."""
    m = plan.blank.copy()
    if plan.prefill is not None:
        plan.prefill(ctx, m)
    fns = plan.fns
    pending: list = []
    hits: list = []
    for g, block in blocks:
        if g >= 0:
            ge = m[g]
            if ge is UNKNOWN:
                ge = m[g] = fns[g](ctx, state, m, pending)
            if ge is None:
                continue
        for rule, j, fn, direct in block:
            e = m[j]
            if e is UNKNOWN:
                e = m[j] = fn(ctx, state) if direct else fn(ctx, state, m, pending)
            if e is not None and rule is not None:
                hits.append((rule, e))
    return hits, pending, m


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


# ---------------------------------------------------------------- one rule

def direct_pred(rule, shared):
    """The rule's only condition when it is a single pure, unshared one, else None."""
    if rule.tree is None and not rule.stateful and len(rule.preds) == 1:
        name, pred, key = rule.preds[0]
        if (name, key) not in shared:
            return pred
    return None


def _rule_fn(rule, index, fns, shared, direct, tree="rule"):
    """A closure (ctx, state, memo, pending) -> evidence | None for one rule (with `tree`
    instead of the rule's own expression when given: the part left once its guard holds)."""
    tree = rule.tree if tree == "rule" else tree
    expr = _compile_expr(tree, index, fns, direct) if tree is not None else None
    deps = tuple((d, index[d]) for d in rule.deps)
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
                ev = [f"{d}: {v}" for d, j in deps if (v := m[j]) is not UNKNOWN and v is not None]
                return "; ".join(ev) if ev else desc
            return composite_all
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
                ev = [f"{d}: {v}" for d, j in deps if (v := m[j]) is not UNKNOWN and v is not None]
                return "; ".join(ev) if ev else desc
            return composite_any

        def composite(c, s, m, p):
            if not expr(c, s, m, p):
                return None
            ev = [f"{d}: {v}" for d, j in deps if (v := m[j]) is not UNKNOWN and v is not None]
            return "; ".join(ev) if ev else desc
        return composite

    if expr is None and npred == 1 and len(stateful) == 1 and not deps:
        # the commonest stateful rule: one (shared) condition, then one counter or history check
        _, pred, slot = preds[0]
        st = stateful[0]

        def pred_then_state(c, s, m, p):
            if slot < 0:
                e = pred(c, s)
            else:
                e = m[slot]
                if e is UNKNOWN:
                    e = m[slot] = pred(c, s)
            if e is None:
                return None
            p.append(st)
            e2 = st.check(c, s)
            return None if e2 is None else e + "; " + e2
        return pred_then_state

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
            found[:0] = [f"{d}: {v}" for d, j in deps if (v := m[j]) is not UNKNOWN and v is not None]
        return "; ".join(found) if found else desc
    return general
