"""Many keyword lists in a scope are read in one pass (rules/keywords.py): the same hits and evidence as each
list's own regex, on generated lists (prefixes of each other, phrases, punctuation, diacritics, digits) and texts."""
import random

import pytest

from engine.rules.conditions import CONDITIONS
from engine.rules.keywords import KEYWORD_INDEX_MIN, KeywordIndex
from engine.rules.loader import SCOPES, Rule, RuleSet
from engine.rules.plan import keyword_slots
from engine.textnorm import fold
from engine.verdict import Action

from engine.rules.expr import parse_tree

from .test_rules_plan import FakeStateful, reference

SYL = ["tu", "choi", "tc", "huy", "stop", "opt", "out", "khuyen", "mai", "khuyến", "mãi", "giảm", "gia", "đăng", "ky",
       "qc", "[qc]", "opt-out", "a", "b1", "1", "x_y", "$5", "c.d", "q", "vn", "100%", "ưu", "đãi", "e-mail"]
SEPS = [" ", "  ", "\t", "\n", " \u00a0", ", ", ",", ".", "-", "_", "", "!", " (", ") ", "…", "\u200b"]


def random_words(rng):
    return [" ".join(rng.choice(SYL) for _ in range(rng.choice([1, 1, 1, 2, 3]))) for _ in range(rng.randint(1, 8))]


def random_text(rng):
    out = []
    for _ in range(rng.randint(0, 14)):
        out.append(rng.choice(SYL).upper() if rng.random() < 0.1 else rng.choice(SYL))
        out.append(rng.choice(SEPS))
    return fold("".join(out))


class Ctx:
    def __init__(self, text, scope="sms-mt"):
        self.folded = text
        self.scope = scope


@pytest.mark.parametrize("seed", range(20))
def test_index_gives_each_regex_answer(seed):
    rng = random.Random(seed)
    lists = [random_words(rng) for _ in range(rng.randint(1, 12))]
    present = [CONDITIONS["keywords"][0](w) for w in lists]
    absent = [CONDITIONS["keywords_absent"][0](w) for w in lists]
    kx = KeywordIndex([p.keyword_parts for p in present])
    for _ in range(300):
        c = Ctx(random_text(rng))
        t = c.folded
        res = kx.scan(t)
        got = [f"keyword {t[res[i][0]:res[i][2]]!r}" if i in res else None for i in range(len(lists))]
        assert got == [p(c, None) for p in present], (t, lists)
        assert [None if i in res else "no opt-out keyword" for i in range(len(lists))] == \
            [p(c, None) for p in absent], (t, lists)


def keyword_ruleset(rng):
    rules = []
    for i in range(rng.randint(2 * KEYWORD_INDEX_MIN, 4 * KEYWORD_INDEX_MIN)):
        scopes = rng.choice([["sms-mt"], ["sms-mt", "sms-mo"], ["sms-mt", "sms-mo"], ["sms-mo"]]) if i else ["sms-mt"]
        r = Rule(f"R{i}", f"rule {i}", frozenset(scopes), 1.0, Action.TAG, None, None, f"f.toml:{i}")
        words = random_words(rng) if rng.random() < 0.8 or not rules else rules[-1].conds["w"]
        r.conds = {"w": words}
        name = "keywords_absent" if rng.random() < 0.25 else "keywords"
        r.preds.append((name, CONDITIONS[name][0](words), repr(words)))
        if rng.random() < 0.3:                  # a second text condition, and a shared one
            w2 = random_words(rng)
            r.preds.append(("keywords", CONDITIONS["keywords"][0](w2), repr(w2)))
        if rng.random() < 0.3:                  # a counter after the text (the shared pass skips the rule first)
            r.stateful = [FakeStateful(f"st{i}")]
        if rules and rng.random() < 0.3:        # a composite reading an earlier rule
            r.tree, syms = parse_tree(rng.choice(["", "not "]) + rng.choice(rules).symbol)
            r.deps = [s for s, _ in syms]
        rules.append(r)
    rng.shuffle(rules)
    return RuleSet(rules, 3.0, 15.0, {}, None)


@pytest.mark.parametrize("seed", range(20))
def test_plan_with_index_matches_the_direct_reading(seed):
    rng = random.Random(100 + seed)
    rs = keyword_ruleset(rng)
    assert keyword_slots(rs.rules, "sms-mt") or keyword_slots(rs.rules, "sms-mo")      # the shared pass is in use
    for _ in range(200):
        c = Ctx(random_text(rng), rng.choice(["sms-mt", "sms-mo"]))
        c.bits = {f"st{i}": rng.random() < 0.5 for i in range(len(rs.rules))}
        want_state, got_state = [], []
        want, want_pending, _ = reference(rs, c, want_state)
        got, got_pending = rs.evaluate(c, got_state)
        assert [(r.symbol, e) for r, e in got] == [(r.symbol, e) for r, e in want], c.folded
        assert got_pending == want_pending and got_state == want_state
        assert all(a is b for (a, _), (b, _) in zip(got, want))      # hits name the rules as loaded
        _, _, all_memo = reference(rs, c, [], everything=True)
        got_true, _ = rs.evaluate_all(c, [])
        assert got_true == {s for s, e in all_memo.items() if e is not None}


def test_few_lists_keep_their_regexes():
    rng = random.Random(1)
    rules = []
    for i in range(KEYWORD_INDEX_MIN - 1):
        r = Rule(f"R{i}", "", frozenset(SCOPES), 1.0, Action.TAG, None, None, "f.toml")
        w = random_words(rng)
        r.preds.append(("keywords", CONDITIONS["keywords"][0](w), repr(w)))
        rules.append(r)
    assert keyword_slots(rules, "sms-mt") == []
