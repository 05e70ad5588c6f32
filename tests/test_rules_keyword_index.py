"""Many keyword lists in a scope are read in one pass (rules/keywords.py): the same hits and evidence as each
list's own regex, on generated lists (prefixes of each other, phrases, punctuation, diacritics, digits) and texts."""
import random

import pytest

from engine.rules.conditions import CONDITIONS
from engine.rules.keywords import KEYWORD_INDEX_MIN, KeywordIndex
from engine.rules.loader import SCOPES, Rule, RuleSet
from engine.rules.plan import keyword_preds
from engine.textnorm import fold
from engine.verdict import Action

from .test_rules_plan import reference

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
    got_p = [kx.pred(i, False) for i in range(len(lists))]
    got_a = [kx.pred(i, True) for i in range(len(lists))]
    for _ in range(300):
        c = Ctx(random_text(rng))
        assert [p(c, None) for p in got_p] == [p(c, None) for p in present], (c.folded, lists)
        assert [p(c, None) for p in got_a] == [p(c, None) for p in absent], (c.folded, lists)


def keyword_ruleset(rng):
    rules = []
    for i in range(rng.randint(KEYWORD_INDEX_MIN, 3 * KEYWORD_INDEX_MIN)):
        r = Rule(f"R{i}", f"rule {i}", frozenset(["sms-mt"]), 1.0, Action.TAG, None, None, f"f.toml:{i}")
        words = random_words(rng) if rng.random() < 0.8 or not rules else rules[-1].conds["w"]
        r.conds = {"w": words}
        name = "keywords_absent" if rng.random() < 0.25 else "keywords"
        r.preds.append((name, CONDITIONS[name][0](words), repr(words)))
        if rng.random() < 0.3:                  # a second text condition, and a shared one
            w2 = random_words(rng)
            r.preds.append(("keywords", CONDITIONS["keywords"][0](w2), repr(w2)))
        rules.append(r)
    return RuleSet(rules, 3.0, 15.0, {}, None)


@pytest.mark.parametrize("seed", range(20))
def test_plan_with_index_matches_the_direct_reading(seed):
    rng = random.Random(100 + seed)
    rs = keyword_ruleset(rng)
    assert keyword_preds(rs.rules, "sms-mt")            # the shared pass is in use
    for _ in range(200):
        c = Ctx(random_text(rng))
        want, _, _ = reference(rs, c, None)
        got, _ = rs.evaluate(c, None)
        assert [(r.symbol, e) for r, e in got] == [(r.symbol, e) for r, e in want], c.folded
        assert all(a is b for (a, _), (b, _) in zip(got, want))      # hits name the rules as loaded


def test_few_lists_keep_their_regexes():
    rng = random.Random(1)
    rules = []
    for i in range(KEYWORD_INDEX_MIN - 1):
        r = Rule(f"R{i}", "", frozenset(SCOPES), 1.0, Action.TAG, None, None, "f.toml")
        w = random_words(rng)
        r.preds.append(("keywords", CONDITIONS["keywords"][0](w), repr(w)))
        rules.append(r)
    assert keyword_preds(rules, "sms-mt") == {}
