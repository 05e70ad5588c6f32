"""A rule pattern routed to RE2 (engine/rules/linear.py) must judge as Python's re does: the same match or no
match, and the same matched text (the evidence), for every pattern of the shipped pack, of the repo's examples and
tests, and of the translation's own cases, on the training texts folded as the pipeline folds them and on edge
cases (Vietnamese, Turkish dotless i, Kelvin sign, long s, Cherokee, other scripts' digits, emoji, newlines,
no-break spaces, lone surrogates)."""
import json
import re
import tomllib

import pytest

from engine.rules.linear import LinearRegex, Untranslatable, engine_missing, rule_regex
from engine.rules.textconds import _fold_pattern
from engine.textnorm import fold

from .conftest import CONFIG, ROOT
from .test_rules_redos_alternation import PART_BEFORE_THEY_MEET
from .test_rules_redos_named_characters import SAFE as NAMED_SAFE
from .test_rules_redos_optional_groups import STILL_SAFE
from .test_rules_redos_optional_runs import ACCEPTED
from .test_rules_safety import SAFE

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason="google-re2 is not installed")

# what the translation has to get right: case (Python's i is also ı and İ, k also the Kelvin sign), \w \d \s over
# every script, $ before a final newline, MULTILINE and DOTALL, lazy repeats, trailing look-aheads and \b
TRANSLATION = [
    r"tin", r"k", r"s\w+", r"\bvay\b", r"\Bay\b", r"ay\B", r"\bqc", r"\b\d+\b", r"\w+", r"[^\W\d_]+", r"\d+",
    r"\s+", r"\S+\s\S+", r"qc$", r"(?m)^qc$", r"(?m)vay$", r"(?s)qc.+", r"qc.+", r"qc.*?tu choi", r"qc.*tu choi",
    r"(?-i:QC)", r"(?-i:qc)", r"(?a)\w+", r"(?a:\bvay\b)", r"qc(?=\d)", r"qc(?!\d)", r"qc(?![^\W_])",
    r"(?:vay|cho vay)(?= tien)", r"x*", r"(?:a|)+b", r"(a*)+?", r"\Aqc", r"qc\Z", r"[a-zà-ỹ]+", r"[^a-z ]+",
    r"[\u13a0-\u13f5]+", r"\u1e9e", r"straße", r"μ", r"ǆ", r"[0-9]{3}", r"\d{2,}?", r"(?i:QC|AD)\b", r"tu\s+choi\b",
    r"(?:\[(?:qc|ad)\]|\(qc\))", r"^\s*", r"😀+", r"[😀-🙏]", r"\x00", r".", r"\.", r"[\s\S]", r"\b_", r"_\b",
    r"qc\b|ad\b", r"(?:qc\b|ad)", r"^(?:vay|tien)\b", r"(?a:i)", r"(?a:k)", r"(?a:s\w)", r"(?u:i)",
    # loops whose body can match empty: on re (RE2 would take one more character: another matched text)
    r"(?:a?|b)*", r"\bkm(?:\s?|\d)+", r"(?:\s*|\w)*", r"\w(?:|\s)*$", r"(?s)(?:.??)*$",
]


def _pack_patterns():
    out = []
    for f in sorted((CONFIG / "rules").glob("*.toml")) + sorted(ROOT.glob("contrib/**/*.toml")):
        for r in tomllib.loads(f.read_text()).get("rule", []):
            for k in ("text_regex", "text_not_regex"):
                v = r.get("when", {}).get(k)
                out += [v] if isinstance(v, str) else list(v or ())
    return out


def _compiles(p):
    try:
        re.compile(_fold_pattern(p))
        return True
    except re.error:        # `[ß-ÿ]+` folds to `[ß-y]+`: refused at load as a bad regex
        return False


PACK = _pack_patterns()
PATTERNS = [p for p in dict.fromkeys(PACK + TRANSLATION + SAFE + NAMED_SAFE + STILL_SAFE + ACCEPTED + PART_BEFORE_THEY_MEET)
            if _compiles(p)]

_AROUND = ["", " ", "_", "я", "é", "1", "٣", "\n", "😀", "ı", "\u00a0", ".", "K", "ſ"]
_WORDS = ["qc", "dkqc", "vay", "tin", "tien", "k", "s", "khuyen mai", "tu choi", "5656", "www.x.vn", "ay", "12.345"]
EDGE = ["", "\n", "\n\n", "qc\n", "qc\n\n", "x\nqc", "qc\nx\n", "tın", "tİn", "TIN", "İ", "ı", "ſ", "K", "Straße",
        "strasse", "ẞ", "µ", "μ", "ǅ", "ǆ", "Ꭰꭰ", "ᏸ", "١٢٣", "½²Ⅻⅻ", "\u2028qc\u2029", "\x1cqc\x1f", "\x85",
        "dkqc\u0301", "ｑｃ", "ΣΑΣ ς", "\u200bqc", "[QC] ", "(qc)", " \t\u3000qc", "😀" * 5, "qc\ud800", "\ud800qc",
        "vay\udc00 tien", "\x00", "a" * 40 + "b", "qc " * 30 + "tu choi", "\r\nqc\r\n"]


def _corpus():
    data = ROOT / "engine" / "ml" / "data"
    texts = []
    for f in sorted(data.glob("*.tsv")):
        texts += [ln.rsplit("\t", 1)[-1] for ln in f.read_text(encoding="utf-8").splitlines()[1:]]
    for f in sorted(data.glob("*.jsonl")):
        texts += [json.loads(ln)["text"] for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    texts += [a + w + b for w in _WORDS for a in _AROUND for b in _AROUND]
    texts += [a + w.upper() + b for w in _WORDS for a in _AROUND for b in _AROUND]
    return list(dict.fromkeys([fold(t) for t in texts] + EDGE))


CORPUS = _corpus()


def test_the_corpus_holds_what_it_is_said_to():
    assert len(PACK) >= 2 and len(CORPUS) > 5000
    assert any(not t.isascii() for t in CORPUS) and any("\n" in t for t in CORPUS)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_re2_route_matches_exactly_as_re(pattern):
    rx = re.compile(_fold_pattern(pattern), re.IGNORECASE)
    try:
        m = LinearRegex(rx.pattern, rx.flags)   # (an anchored one runs on re by choice: its translation checked too)
    except Untranslatable as e:
        pytest.skip(f"on re: {e}")
    bad = []
    for t in CORPUS:
        want = rx.search(t)
        want = None if want is None else want.group(0)
        if m.search(t) != want:
            bad.append((t[:60], want, m.search(t)))
    assert not bad, (m.translated[:200], bad[:5], len(bad))


def test_most_patterns_go_to_re2():
    routed = {p: rule_regex(re.compile(_fold_pattern(p), re.IGNORECASE)) for p in PATTERNS}
    on_re = {p: m.why for p, m in routed.items() if m.engine == "re"}       # (anchored ones are on re by choice)
    # RE2 has no atomic group, possessive repeat or backreference; a `\b` whose one side may or may not be a
    # word character (the start of a repeat's or a group's body, `\+?84`, `\W*`) asks about a character the
    # translation cannot read there
    assert on_re == {r"(?>a+)+b": "an atomic group", r"(?:a++)+b": "a possessive repeat",
                     r"(\w+)\s+\1\s+\w+!": "a backreference",
                     r"(?a:\bvay\b)": INSIDE, r"(?:\b(?:vay|von|tien)\b\W*)+x": INSIDE, r"(?:\bvay\b|vay\s)+!": INSIDE,
                     r"\b(?:0|\+?84)(?:3|5|7|8|9)\d{8}\b": "`\\b` or `\\B` before what may or may not be a word character",
                     **dict.fromkeys([r"(?:a|)+b", r"(a*)+?", r"(?:a?|b)*", r"\bkm(?:\s?|\d)+", r"(?:\s*|\w)*",
                                      r"\w(?:|\s)*$", r"(?s)(?:.??)*$"], EMPTY_BODY)}
    assert len(routed) - len(on_re) > 100


INSIDE = "`\\b` or `\\B` inside the pattern next to what may or may not be a word character"
EMPTY_BODY = "a repeat whose body can match empty"


# random patterns over the constructs the translation handles, on random texts of the characters where re and RE2
# differ (ı, İ, K, ſ, я, ٣, _, newlines, a lone surrogate): each one routed to RE2 gives what re gives
_ALPHA = "aAkKıİiſsя٣1_ .\n😀\u00a0\ud800"
_ATOMS = ["a", "k", "i", "s", "я", "1", "_", " ", "\\.", "\\n", "\\w", "\\W", "\\d", "\\D", "\\s", "\\S", "[^\\W_]",
          ".", "[a-z]", "[^a]", "[ıİ]", "😀"]
_SUFFIX = ["", "*", "+", "?", "{1,2}", "*?", "+?", "??", "{2,}"]
_TAILS = ["", "$", "\\b", "\\B", "(?![^\\W_])", "(?=\\d)", "(?!a)", "\\Z"]


def _patterns():
    from hypothesis import strategies as st
    atom = st.one_of(st.builds(lambda a, q: a + q, st.sampled_from(_ATOMS), st.sampled_from(_SUFFIX)),
                     st.sampled_from(["\\b", "\\B", "$", "(?=a)", "(?!\\d)"]))

    def grow(inner):
        seq = st.lists(inner, min_size=1, max_size=3).map("".join)
        return st.one_of(
            seq, st.lists(seq, min_size=2, max_size=3).map(lambda xs: "(?:" + "|".join(xs) + ")"),
            st.builds(lambda f, s, q: f"(?{f}:{s}){q}", st.sampled_from(["i", "-i", "s", "m", "a"]), seq,
                      st.sampled_from(_SUFFIX)))
    body = st.recursive(atom, grow, max_leaves=6)
    # a repeat of a body that can match empty (`(?:x?|y)*`): re and RE2 end such a loop differently
    body = st.one_of(body, st.builds(lambda a, b, q: f"(?:{a}|{b}){q}", body, st.sampled_from(["", "a?", "\\s*",
                                                                                                 "k??"]),
                                     st.sampled_from(["*", "+", "{2,}", "*?"])))
    return st.builds(lambda h, b, t: h + b + t, st.sampled_from(["", "^", "\\b", "\\B", "(?m)^", "\\A"]), body,
                     st.sampled_from(_TAILS))


def test_random_patterns_on_re2_match_as_re():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=400, deadline=None)
    @given(_patterns(), st.lists(st.text(alphabet=_ALPHA, max_size=12), min_size=1, max_size=8))
    def check(pattern, texts):
        rx = re.compile(pattern, re.IGNORECASE)
        try:
            m = LinearRegex(rx.pattern, rx.flags)
        except Untranslatable:
            return
        for t in texts + [t.upper() for t in texts]:
            want = rx.search(t)
            assert m.search(t) == (None if want is None else want.group(0)), (pattern, t, m.translated)
    check()
