"""Rule plans: a rule set prepared once per scope so judging a message interprets little.

Theory of operation. Loading turns every rule into data (conditions, a composite tree, a
score); this module turns that data, once per scope (sms-mt, sms-mo, call), into closures
that do only the per-message work. No code is generated from rule text: every closure is
written here or in rules/rule_fns.py (one rule's) and only its captured constants come from
the rules.

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

from . import slots as _slots
from .keywords import KEYWORD_INDEX_MIN, KeywordIndex
from .rule_fns import UNKNOWN, direct_pred, guard_chain, guard_of, rule_fn


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
            fns[index[r.symbol]] = rule_fn(r, index, fns, shared, direct)

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
                fn = rule_fn(r, index, fns, shared, direct, tree=rest)
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
    A rule skipped by its guard keeps an UNKNOWN slot: read later, it evaluates to None.
    The loop runs in C (_slotsfast.run_steps, _planrun.h) when that is built and the compiled table paths are on
    (slots.use_fast, TELFILTER_TABLES_PURE): the same closures called in the same order; `run_steps_py` is the
    reference and the fallback (tests/test_plan_run_fast.py). Pipeline.judge makes the same choice inline."""
    f = _slots._fast
    if f is not None:
        return f.run_steps(plan, blocks, ctx, state)
    return run_steps_py(plan, blocks, ctx, state)


def run_steps_py(plan: ScopePlan, blocks, ctx, state):
    """run_steps's loop in Python."""
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

