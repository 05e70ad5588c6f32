"""A rule plan's loop over its blocks in C (engine/rules/_planrun.h, `_slotsfast.run_steps`) and in Python
(`plan.run_steps_py`, the reference) call the same closures in the same order with the same arguments and return
the same hits, pending stateful conditions and memo: on the shipped rules over the benchmark mix (day and night,
counters filling as messages are let through) and on made-up plans that exercise every branch, errors included."""
import random
from datetime import timedelta

import pytest

from benchmarks.traffic import BASE, records, seed_data
from engine.app import build
from engine.context import MessageContext
from engine.rules import slots
from engine.rules.plan import ScopePlan, run_steps, run_steps_py
from engine.rules.rule_fns import UNKNOWN
from engine.verdict import Message

from .conftest import CONFIG

pytestmark = pytest.mark.skipif(slots._FAST is None, reason="engine.rules._slotsfast is not built")


def _both(plan, blocks, make_ctx, state):
    """(C result, Python result), each on a fresh context of the same message."""
    return slots._FAST.run_steps(plan, blocks, make_ctx(), state), run_steps_py(plan, blocks, make_ctx(), state)


@pytest.mark.parametrize("hour", [3, 16])           # 10:00 in Hanoi (ads let through) and 23:00 (ads dropped)
def test_shipped_rules_same_hits_pending_and_memo(tmp_path, hour):
    seed_data(tmp_path / "data", 2000)
    pipe = build(CONFIG, tmp_path / "data", with_model=False)
    from benchmarks.traffic import dnc_numbers
    dnc = dnc_numbers(2000)
    t0 = BASE.replace(hour=hour)
    symbols = set()
    for i, rec in enumerate(records(1500, seed=5, dnc_sample=dnc, t0=None)):
        msg = Message(rec["sender"], rec["recipient"], rec["text"], t0 + timedelta(seconds=i * 0.5), "bench", "mt")
        plan = pipe.rules.plans["sms-mt"]
        for blocks in (plan.steps, plan.all_steps):
            (ch, cp, cm), (ph, pp, pm) = _both(plan, blocks, lambda: MessageContext(msg, pipe.lists, pipe.tz,
                                                                                     pipe.shortcode), pipe.state)
            assert [(r.symbol, e) for r, e in ch] == [(r.symbol, e) for r, e in ph]
            assert all(a is b for (a, _), (b, _) in zip(ch, ph))
            assert len(cp) == len(pp) and all(a is b for a, b in zip(cp, pp))
            assert len(cm) == len(pm)
            assert all((a is UNKNOWN) == (b is UNKNOWN) and (a is UNKNOWN or a == b) for a, b in zip(cm, pm))
            symbols.update(r.symbol for r, _ in ch)
        pipe.judge(msg)                 # counted when let through: the caps and floods fill
    assert len(symbols) >= 3, symbols      # the ads to DNC numbers, the campaigns, the phishing links


def _made_up_plan(rnd, log, n=12):
    """A plan of n slots: closures that log their call and answer evidence, None, or raise."""
    answers = {}

    def fn(j, direct):
        def f(*a):
            log.append((j, len(a), a[0], a[1]))
            if len(a) == 4:
                assert type(a[2]) is list and type(a[3]) is list
                a[3].append(f"pending {j}")
            what = answers[j]
            if what == "raise":
                raise KeyError(j)
            return what
        return f
    blank = [UNKNOWN if rnd.random() < 0.8 else rnd.choice((None, "given")) for _ in range(n)]
    fns = [fn(j, False) for j in range(n)]
    for j in range(n):
        answers[j] = rnd.choice((None, None, f"ev{j}", f"ev{j}", "raise" if rnd.random() < 0.1 else None))
    blocks = []
    for _ in range(rnd.randrange(1, 6)):
        g = rnd.choice((-1, -1, rnd.randrange(n)))
        steps = []
        for _ in range(rnd.randrange(0, 5)):
            j = rnd.randrange(-n, n)
            direct = rnd.choice((True, False, 0, 1))
            steps.append((rnd.choice((None, f"rule{j}")), j, fn(j, True) if direct else fns[j], direct))
        blocks.append((g, tuple(steps)))
    def fill(c, m):
        log.append(("prefill", c))
        m[0] = "prefilled"
    return ScopePlan("sms-mt", blank, tuple(blocks), tuple(blocks), {}, fns, fill if rnd.random() < 0.3 else None)


@pytest.mark.parametrize("seed", range(300))
def test_made_up_plans_same_calls_and_answers(seed):
    out = []
    for run in (slots._FAST.run_steps, run_steps_py):
        log: list = []
        plan = _made_up_plan(random.Random(seed), log)
        try:
            got = run(plan, plan.steps, "ctx", "state")
            got = (got[0], got[1], got[2])
        except KeyError as e:
            got = ("raised", e.args)
        out.append((got, log))
    assert out[0] == out[1]


def test_odd_plans_refused_alike():
    """A slot out of range, a block or step of the wrong shape: the same exception type either way."""
    f = (lambda c, s: "e")
    for blocks in (((-1, ((None, 5, f, True),)),), ((7, ()),), ((-1,),), ((-1, ((None, 0, f),)),), (("x", ()),)):
        plan = ScopePlan("sms-mt", [UNKNOWN, UNKNOWN], blocks, blocks, {}, [f, f], None)
        kinds = []
        for run in (slots._FAST.run_steps, run_steps_py):
            try:
                run(plan, blocks, None, None)
                kinds.append(None)
            except (IndexError, ValueError, TypeError) as e:
                kinds.append(type(e))
        assert kinds[0] == kinds[1] and kinds[0] is not None, (blocks, kinds)


def test_dispatch_follows_use_fast(monkeypatch):
    """run_steps takes the C loop with the compiled table paths on, the Python one with them off."""
    called = []
    monkeypatch.setattr("engine.rules.plan.run_steps_py", lambda *a: called.append("py") or ([], [], []))
    plan = ScopePlan("sms-mt", [], (), (), {}, [], None)
    with slots.use_fast(True):
        assert run_steps(plan, (), None, None) == ([], [], [])
    with slots.use_fast(False):
        run_steps(plan, (), None, None)
    assert called == ["py"]
