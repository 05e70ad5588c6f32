"""A rule's closure of the common shapes in C (engine/rules/_rulefn.h, `_slotsfast.RuleFn`) and the Python closure
rule_fns.rule_fn builds (the reference) call the same operands, conditions and checks in the same order and give the
same evidence, memo and pending stateful conditions: the shipped rules read with and without the compiled paths,
judged alike over the benchmark mix, and made-up composite expressions and stateful rules, errors included."""
import dataclasses
import random
from datetime import timedelta
from types import SimpleNamespace

import pytest

from benchmarks.traffic import BASE, dnc_numbers, records, seed_data
from engine.app import build
from engine.context import MessageContext
from engine.rules import slots
from engine.rules.loader import load_rules
from engine.rules.plan import run_steps_py
from engine.rules.rule_fns import UNKNOWN, rule_fn
from engine.verdict import Message

from .conftest import CONFIG

pytestmark = pytest.mark.skipif(slots._FAST is None, reason="engine.rules._slotsfast is not built")


def _same_stateful(a, b) -> bool:
    return type(a) is type(b) and (not dataclasses.is_dataclass(a) or a == b)


@pytest.mark.parametrize("hour", [3, 16])           # 10:00 in Hanoi (ads let through) and 23:00 (ads dropped)
def test_shipped_rules_read_either_way_judge_alike(tmp_path, hour):
    seed_data(tmp_path / "data", 2000)
    pipe = build(CONFIG, tmp_path / "data", with_model=False)
    with slots.use_fast(True):
        fast = load_rules(CONFIG / "rules", full_lint=False)
    with slots.use_fast(False):
        pure = load_rules(CONFIG / "rules", full_lint=False)
    kinds = {type(f).__name__ for f in fast.plans["sms-mt"].fns}
    assert "RuleFn" in kinds and "RuleFn" not in {type(f).__name__ for f in pure.plans["sms-mt"].fns}
    t0 = BASE.replace(hour=hour)
    symbols = set()
    for i, rec in enumerate(records(1500, seed=5, dnc_sample=dnc_numbers(2000), t0=None)):
        msg = Message(rec["sender"], rec["recipient"], rec["text"], t0 + timedelta(seconds=i * 0.5), "bench", "mt")
        got = []
        for rules in (fast, pure):
            plan = rules.plans["sms-mt"]
            for blocks in (plan.steps, plan.all_steps):
                ctx = MessageContext(msg, pipe.lists, pipe.tz, pipe.shortcode)
                got.append(run_steps_py(plan, blocks, ctx, pipe.state))
        for (fh, fp, fm), (ph, pp, pm) in ((got[0], got[2]), (got[1], got[3])):
            assert [(r.symbol, e) for r, e in fh] == [(r.symbol, e) for r, e in ph]
            assert len(fp) == len(pp) and all(_same_stateful(a, b) for a, b in zip(fp, pp))
            assert all((a is UNKNOWN) == (b is UNKNOWN) and (a is UNKNOWN or a == b) for a, b in zip(fm, pm))
            symbols.update(r.symbol for r, _ in fh)
        pipe.judge(msg)                 # counted when let through: the caps and floods fill
    assert len(symbols) >= 3, symbols


N = 8           # symbols of the made-up expressions


def _expr(rnd, depth=0):
    k = rnd.random()
    if depth > 1 or k < 0.45:
        s = ("sym", f"S{rnd.randrange(N)}")
        return ("not", s) if rnd.random() < 0.3 else s
    if k < 0.55:
        return ("not", _expr(rnd, depth + 1))
    return (rnd.choice(("and", "or")), [_expr(rnd, depth + 1) for _ in range(rnd.randrange(1, 4))])


def _syms(t, out):
    if t[0] == "sym":
        out.append(t[1])
    elif t[0] == "not":
        _syms(t[1], out)
    else:
        for k in t[1]:
            _syms(k, out)
    return list(dict.fromkeys(out))


def _world(seed, log):
    """Closures for N symbols (some bare conditions called directly) that log each call and answer at random."""
    rnd = random.Random(seed)
    answers = {j: rnd.choice((None, f"ev{j}", f"ev{j}", "raise" if rnd.random() < 0.15 else None)) for j in range(N)}

    def fn(j, direct):
        def f(*a):
            log.append((j, direct, len(a)))
            if answers[j] == "raise":
                raise KeyError(j)
            return answers[j]
        return f
    fns = [fn(j, False) for j in range(N)]
    direct = [fn(j, True) if rnd.random() < 0.3 else None for j in range(N)]
    blank = [UNKNOWN if rnd.random() < 0.8 else rnd.choice((None, f"given{j}")) for j in range(N)]
    return rnd, fns, direct, blank


def _call(f, blank, pending):
    m = blank.copy()
    try:
        return f(SimpleNamespace(), "state", m, pending), m, pending
    except KeyError as e:
        return ("raised", e.args), m, pending


@pytest.mark.parametrize("seed", range(400))
def test_made_up_composites_same_calls_and_evidence(seed):
    out = []
    for fast in (True, False):
        log: list = []
        rnd, fns, direct, blank = _world(seed, log)
        tree = _expr(rnd)
        if tree[0] not in ("and", "or"):
            tree = (rnd.choice(("and", "or")), [tree, _expr(rnd)])
        index = {f"S{j}": j for j in range(N)}
        rule = SimpleNamespace(tree=tree, deps=_syms(tree, []), helper=rnd.random() < 0.3, description="desc",
                               stateful=[], preds=[], symbol="R")
        with slots.use_fast(fast):
            f = rule_fn(rule, index, fns, {}, direct)
        out.append((type(f).__name__, _call(f, blank, []), log))
    assert out[1][0] == "function"
    assert out[0][1:] == out[1][1:]
    with slots.use_fast(True):
        f = rule_fn(rule, index, fns, {}, direct)
    if type(f) is not type(rule_fn):        # named as the closure it stands for (tests/test_rules_plan.py reads it)
        assert f.__name__ in ("composite_all", "composite_any", "composite_all_ors") and f.__wrapped__.__name__ == f.__name__


@pytest.mark.parametrize("seed", range(200))
def test_made_up_stateful_rules_same_calls_and_evidence(seed):
    out = []
    for fast in (True, False):
        log: list = []
        rnd = random.Random(seed)
        pa, ca = rnd.choice((None, "cond", "raise")), rnd.choice((None, "over", "raise"))

        def pred(c, s):
            log.append("pred")
            if pa == "raise":
                raise KeyError("pred")
            return pa

        def check(c, s):
            log.append("check")
            if ca == "raise":
                raise KeyError("check")
            return ca
        st = SimpleNamespace(check=check)
        shared = {("when", "k"): 2} if rnd.random() < 0.5 else {}
        rule = SimpleNamespace(tree=None, deps=[], helper=False, description="desc", stateful=[st],
                               preds=[("when", pred, "k")], symbol="R")
        blank = [UNKNOWN, UNKNOWN, rnd.choice((UNKNOWN, UNKNOWN, None, "memo"))]
        with slots.use_fast(fast):
            f = rule_fn(rule, {"R": 0}, [None] * 3, shared, [None] * 3)
        res, m, pending = _call(f, blank, ["before"])
        out.append((type(f).__name__, res, m, [x is st or x for x in pending], log))
    assert out[0][0] == "RuleFn" and out[1][0] == "function"
    assert out[0][1:] == out[1][1:]


def test_unusual_calls_go_to_the_python_closure():
    """Keywords, another argument count, or a memo that is not a list: the Python closure answers, as it would."""
    calls = []
    py = (lambda *a, **k: calls.append((a, k)) or "py")
    f = slots._FAST.rule_state(py, -1, (lambda c, s: "x"), object(), (lambda c, s: None))
    assert f(1, 2, (), []) == "py" and f(1, 2) == "py" and f(1, 2, [], [], x=1) == "py"
    assert calls == [((1, 2, (), []), {}), ((1, 2), {}), ((1, 2, [], []), {"x": 1})]
