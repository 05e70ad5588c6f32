"""Rule plans give what a direct reading of the rules gives: same hits, order, evidence and
pending stateful conditions, on random rule sets and random messages; and the shipped pack
judges a generated mix identically through both."""
import random
from datetime import datetime, timedelta, timezone

import pytest

from engine.config import load_settings
from engine.context import MessageContext
from engine.rules.conditions import Stateful
from engine.rules.expr import evaluate_tree, parse_tree
from engine.rules.loader import SCOPES, Rule, RuleSet, load_rules
from engine.verdict import Action, Call, Message

from .conftest import CONFIG

SETTINGS = load_settings(CONFIG)


def _held_negations(tree, memo):
    """The `not SYM` through which an expression that held came to hold: all operands of an `and`, the first
    operand of an `or` that held, left to right (its value read from the memo: evaluated left to right, the
    ones before it were read)."""
    def truth(t):
        if t[0] == "sym":
            return None if t[1] not in memo else memo[t[1]] is not None
        if t[0] == "not":
            v = truth(t[1])
            return None if v is None else not v
        vals = [truth(k) for k in t[1]]
        if t[0] == "and":
            return False if False in vals else (True if all(v is True for v in vals) else None)
        return True if True in vals else (False if all(v is False for v in vals) else None)

    def held(t):
        if t[0] == "not":
            return [t[1][1]] if t[1][0] == "sym" else []
        if t[0] == "and":
            return [d for k in t[1] for d in held(k)]
        if t[0] == "or":
            return next((held(k) for k in t[1] if truth(k) is True), [])
        return []
    return list(dict.fromkeys(held(tree)))


def reference(ruleset, ctx, state, everything=False):
    """The rules read directly, one symbol at a time, with a dict memo (the pre-plan evaluator)."""
    memo: dict = {}
    pending: list = []
    scope = ctx.scope

    def look(sym):
        if sym not in memo:
            memo[sym] = run(ruleset.by_symbol[sym])
        return memo[sym] is not None

    def run(rule):
        if scope not in rule.applies_to:
            return None
        ev = []
        if rule.tree is not None:
            if not evaluate_tree(rule.tree, look):
                return None
            held = [f"{d}: {memo[d]}" for d in rule.deps if memo.get(d) is not None]
            # an operand's evidence quoted whole inside another's is said once
            ev.extend(e for i, e in enumerate(held) if e not in held[:i] and not any(e != o and e in o for o in held))
            if not rule.helper:         # a reported rule says which `not SYM` held
                ev.extend(f"not {d}" for d in _held_negations(rule.tree, memo))
        for _, p, _ in rule.preds:
            e = p(ctx, state)
            if e is None:
                return None
            ev.append(e)
        if rule.stateful:
            pending.extend(rule.stateful)
            for st in rule.stateful:
                e = st.check(ctx, state)
                if e is None:
                    return None
                ev.append(e)
        return "; ".join(ev) if ev else rule.description

    hits = []
    for rule in ruleset.order:
        if not everything and (scope not in rule.applies_to or (rule.helper and not rule.stateful)):
            continue
        if rule.symbol not in memo:
            memo[rule.symbol] = run(rule)
        e = memo[rule.symbol]
        if e is not None and not rule.helper:
            hits.append((rule, e))
    return hits, pending, memo


# ------------------------------------------------------------ random rule sets

class FakeCtx:
    def __init__(self, scope, bits):
        self.scope = scope
        self.bits = bits          # condition name -> bool


def fake_pred(name):
    return lambda c, s: f"{name} held" if c.bits[name] else None


class FakeStateful(Stateful):
    def __init__(self, name):
        self.name = name

    def check(self, c, s):
        s.append(self.name)       # the state records which checks ran, in order
        return f"{self.name} counted" if c.bits[self.name] else None

    def __repr__(self):
        return self.name


def random_expr(rng, names, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.4:
        return rng.choice(names)
    if r < 0.55:
        return "not " + random_expr(rng, names, depth + 1)
    op = rng.choice([" and ", " or "])
    return "(" + op.join(random_expr(rng, names, depth + 1) for _ in range(rng.randint(2, 3))) + ")"


def random_ruleset(rng):
    conds = [f"c{i}" for i in range(6)]
    stateful = [f"st{i}" for i in range(3)]
    rules = []
    n = rng.randint(3, 12)
    for i in range(n):
        helper = rng.random() < 0.4
        sym = (f"__H{i}" if helper else f"R{i}")
        r = Rule(sym, f"description of {sym}", frozenset(rng.sample(SCOPES, rng.randint(1, 3))), 1.0,
                 None if helper else Action.TAG, None, None, f"f.toml:{i}")
        for c in rng.sample(conds, rng.randint(0, 3)):
            r.preds.append((c, fake_pred(c), "true"))
        if rng.random() < 0.25:
            r.stateful = [FakeStateful(s) for s in rng.sample(stateful, rng.randint(1, 2))]
        earlier = [x.symbol for x in rules]
        if earlier and rng.random() < 0.6:
            text = random_expr(rng, earlier)
            r.tree, syms = parse_tree(text)
            r.deps = [s for s, _ in syms]
        rules.append(r)
    # composites may also refer forwards: shuffle the file order
    rng.shuffle(rules)
    return RuleSet(rules, 3.0, 15.0, {}, None), conds + stateful


@pytest.mark.parametrize("seed", range(40))
def test_plan_matches_the_direct_reading(seed):
    rng = random.Random(seed)
    for _ in range(10):
        rs, names = random_ruleset(rng)
        for _ in range(30):
            ctx = FakeCtx(rng.choice(SCOPES), {k: rng.random() < 0.5 for k in names})
            want_state, got_state = [], []
            want_hits, want_pending, want_memo = reference(rs, ctx, want_state)
            got_hits, got_pending = rs.evaluate(ctx, got_state)
            assert [(r.symbol, e) for r, e in got_hits] == [(r.symbol, e) for r, e in want_hits]
            assert got_pending == want_pending
            assert got_state == want_state                 # the same stateful checks ran, in order
            _, _, all_memo = reference(rs, ctx, [], everything=True)
            got_true, got_memo = rs.evaluate_all(ctx, [])
            assert got_true == {s for s, e in all_memo.items() if e is not None}
            assert {s: e for s, e in got_memo.items() if e is not None} == \
                {s: e for s, e in all_memo.items() if e is not None}


# ------------------------------------------------------------ the shipped pack

def test_shipped_pack_plan_matches_the_direct_reading():
    from engine.lists import Lists
    from engine.lists.csvio import SenderEntry
    from engine.pipeline import EngineState
    rs = load_rules(CONFIG / "rules")
    L = Lists()
    for e in [SenderEntry("SHOPABC", "Shop ABC", "QC", None, None, frozenset()),
              SenderEntry("OLDSHOP", "Old", "QC", None, datetime(2010, 1, 1).date(), frozenset()),
              SenderEntry("BANKX", "Bank X", "CSKH", None, None, frozenset()),
              SenderEntry("02439998888", "Shop ABC", "QC", None, None, frozenset())]:
        L.add_sender(e)
    L.add_dnc(84912000001, "SV")
    rng = random.Random(3)
    texts = ["[QC] Giam gia 50%. Tu choi: TC gui 5656", "QC: vay tien nhanh", "DKQC Shop ABC", "Ma OTP 1234",
             "xem tai https://www.phish.example/login", "hello there friend", "Khuyến mãi lớn [QC] hôm nay"]
    senders = ["SHOPABC", "OLDSHOP", "BANKX", "FAKEBANK", "0901234567", "0987000666", "02439998888"]
    t0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
    state_a, state_b = EngineState(), EngineState()
    for i in range(600):
        t = t0 + timedelta(minutes=7 * i)
        if rng.random() < 0.2:
            m = Call(rng.choice(senders[4:]), rng.choice(["0912000001", "0912345678"]), t)
        else:
            m = Message(rng.choice(senders), rng.choice(["0912000001", "0912345678"]), rng.choice(texts), t,
                        account=rng.choice(["", "esme-b"]))
        want, wp, _ = reference(rs, MessageContext(m, L, SETTINGS.tz), state_a)
        got, gp = rs.evaluate(MessageContext(m, L, SETTINGS.tz), state_b)
        assert [(r.symbol, e) for r, e in got] == [(r.symbol, e) for r, e in want], m
        assert gp == wp
        c = MessageContext(m, L, SETTINGS.tz)
        for st in gp:                         # both states move on identically
            st.commit(c, state_a)
            st.commit(c, state_b)


def test_an_and_over_an_or_of_symbols_matches_the_direct_reading():
    """`(A or not B or C) and not D` (the shape of the shipped __IS_AD) is looped over in one closure: every
    truth assignment gives the direct reading's hits, evidence, pending checks and the checks run, in order."""
    from itertools import product
    conds = ["c0", "c1", "c2", "c3", "st0"]
    rules = []
    for i, c in enumerate(conds[:4]):
        r = Rule(f"__H{i}", f"helper {i}", frozenset(SCOPES), 1.0, None, None, None, f"f.toml:{i}")
        r.preds.append((c, fake_pred(c), "true"))
        if i == 2:
            r.stateful = [FakeStateful("st0")]        # a stateful operand: runs (and joins pending) only if reached
        rules.append(r)
    for j, text in enumerate(["(__H0 or not __H1 or __H2) and not __H3", "__H3 and (not __H0 or __H1)"]):
        r = Rule(f"R{j}", f"composite {j}", frozenset(SCOPES), 1.0, Action.TAG, None, None, f"f.toml:{9 + j}")
        r.tree, syms = parse_tree(text)
        r.deps = [s for s, _ in syms]
        rules.append(r)
    rs = RuleSet(rules, 3.0, 15.0, {}, None)
    assert any(getattr(fn, "__name__", "") == "composite_all_ors" for fn in rs.plans["sms-mt"].fns), \
        "the plan no longer has the closure this test is about"
    for bits in product([False, True], repeat=len(conds)):
        ctx = FakeCtx("sms-mt", dict(zip(conds, bits)))
        want_state, got_state = [], []
        want_hits, want_pending, _ = reference(rs, ctx, want_state)
        got_hits, got_pending = rs.evaluate(ctx, got_state)
        assert [(r.symbol, e) for r, e in got_hits] == [(r.symbol, e) for r, e in want_hits]
        assert got_pending == want_pending
        assert got_state == want_state
