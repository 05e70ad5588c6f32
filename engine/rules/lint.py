"""Warnings on a rule set that loads but holds something that can never do what it says.

Theory of operation. The loader refuses what is wrong (errors); this module, run on a set
that loaded without errors, reports what is legal but dead, as `path:line:col: warning: ...`.
A warning never changes what loads or how it judges. Every warning here is exact: it is
given only when the thing it names provably never takes effect, for every message (never
"looks suspicious"); so the shipped pack gives none, and a set with warnings still judges
exactly as it did.

- A helper (`__` symbol: no score, no action) that no enabled scoring rule names, directly
  or through other helpers, never reaches a verdict (a helper's counter is its own:
  namespaces carry the rule's symbol).
- A `text_regex` / `text_not_regex` pattern that can never match the text it is tested
  against. Conditions see `textnorm.fold(text)`: NFKD, marks removed, đ -> d, case-folded,
  zero-width characters removed; the pattern is compiled with IGNORECASE after its own
  diacritics are removed (conditions._fold_pattern). So `Khuyến`, `KHUYEN` and `[A-Z]` match,
  but a literal that no folded text contains (`ß`, a soft hyphen or zero-width character, a
  combining mark written as an escape, an uppercase letter under `(?-i:...)`) makes every
  sequence needing it impossible. The set of characters folded text can hold is computed
  from textnorm itself (fold is applied per code point), so the answer follows its rules.
  Keywords are folded by the same fold, so a keyword can always match: none is warned.
- `action = "allow"`: the strongest action wins (verdict.decide), so allow never changes one.
- `smpp_status` / `sip_code` that no answer can carry: the wire answer takes them from the
  first hit that forced the verdict's action, i.e. only from a rule with `action = "drop"`;
  `sip_code` only on a call, `smpp_status` only on an SMS.
- A rule that never holds: its `expr` is false for every truth assignment of the symbols it
  names (taking symbols that never hold as false), every pattern of its `text_regex` is dead,
  or its `local_time_inside` window lies within its `local_time_outside` one, or its counter
  counts distinct values of a field its key holds (`key = ["sender"], distinct = "sender"`).
- A rule whose conditions are written exactly as an earlier rule's of its kind (both scoring
  or both helpers; same expr, same pure conditions, no stateful ones), applying to no scope
  the earlier one does not: the two always hold together.
- `[actions]` thresholds at or below 0: a message with no hits has total 0, so every message
  would be tagged (or dropped).
"""
from __future__ import annotations

import itertools
import re
import unicodedata
from re import _constants as C
from re import _parser

from ..textnorm import CONFUSABLE, _ZW_D
from ..verdict import Action
from .composites import dep_order
from .conditions import _fold_pattern
from .source import RuleError

MAX_EXPR_SYMBOLS = 12       # truth tables up to 4096 rows; a larger expr is not checked
MAX_EXPR_SYMBOLS_QUICK = 8  # the same at a reload on serve's loop (lint(full=False)): 256 rows, ~1 ms a rule


class RuleWarning(RuleError):
    def __str__(self):
        return f"{self.path}:{self.line}:{self.col}: warning: {self.message}"


def _warn(out, rule, key, msg):
    p, ln, col = rule.locs.get(key) or (*rule.source.rsplit(":", 1), 1)
    out.append(RuleWarning(p, int(ln), int(col), msg))


class _Unchecked(Exception):
    """A pattern's check needs folded_alphabet(), which this lint may not compute (lint(full=False))."""


_may_compute = True


def lint(rules, by_symbol, thresholds, threshold_locs, directory, full: bool = True) -> list:
    """The set's warnings. `full=False` (a reload on serve's event loop): a pattern whose check needs the table of
    every character folded text can hold (folded_alphabet: seconds of CPU, once per process) is not checked unless
    the table is there already (serve's start computed it); one warning says how many were not."""
    global _may_compute
    _may_compute = full
    try:
        return _lint(rules, by_symbol, thresholds, threshold_locs, directory)
    finally:
        _may_compute = True


def _lint(rules, by_symbol, thresholds, threshold_locs, directory) -> list:
    out: list = []
    for k in ("tag", "drop"):
        if thresholds[k] <= 0:
            p, ln, col = threshold_locs.get(k, (str(directory), 1, 1))
            out.append(RuleWarning(p, ln, col, f"[actions] {k} = {thresholds[k]:g}: a message with no hits scores 0, "
                                                f"so every message is {'tagged' if k == 'tag' else 'dropped'}"))
    never: dict = {}            # symbol -> why it never holds
    unchecked: list = []        # (rule, key) of patterns not checked (lint(full=False))
    for r in dep_order(rules, by_symbol):
        why = _never_holds(r, never, out, unchecked)
        if why:
            never[r.symbol] = why
    if unchecked:
        r, k = unchecked[0]
        _warn(out, r, ("when", k), f"{len(unchecked)} pattern(s) ({r.symbol}'s {k} first) not checked for characters "
                                   f"folded text never holds (the table it needs costs seconds of CPU, not spent on "
                                   f"serve's event loop at a reload): `telfilter rules check` checks them")
    for r in rules:         # `sender = ["1900*"]` for a prefix: loaded, and never held
        v = r.conds.get("sender")
        for x in [x for x in ([v] if isinstance(v, str) else v or ()) if any(c in x for c in "*?%")]:
            _warn(out, r, ("when", "sender"), f"{r.symbol}: sender {x!r} is matched whole, as a number or a name: "
                                              f"'*', '?' and '%' are no wildcards (no condition matches a sender by "
                                              f"its prefix)")
    _unused_helpers(rules, by_symbol, out)
    _dead_actions(rules, out)
    _duplicates(rules, out)
    out.sort(key=lambda w: (w.path, w.line, w.col))
    return out


# ---------------------------------------------------------------- rules that never hold

def _never_holds(r, never, out, unchecked) -> str | None:
    why = None
    for k in ("text_regex", "text_not_regex"):
        v = r.conds.get(k)
        if v is None:
            continue
        pats = [v] if isinstance(v, str) else v
        dead = []
        for p in pats:
            try:
                c = dead_char(p)
            except _Unchecked:
                unchecked.append((r, k))
                dead = None
                break
            if c is not None:
                dead.append((p, c))
        if dead is None:                # (not known: nothing said about this condition)
            continue
        for p, c in dead:
            what = ("so the condition never holds" if k == "text_regex" and len(dead) == len(pats)
                    else "so this pattern never matches" if k == "text_regex"
                    else "so it excludes nothing")
            _warn(out, r, ("when", k), f"{r.symbol}: {k} {p!r} can never match: it needs {_char_name(c)}, which "
                                       f"the folded text it is tested against never holds (case-folded, diacritics "
                                       f"and zero-width characters removed), {what}")
        if k == "text_regex" and dead and len(dead) == len(pats):
            why = "its text_regex can never match"
    if "local_time_inside" in r.conds and "local_time_outside" in r.conds:
        from .conditions import parse_window
        a = _seconds(parse_window(r.conds["local_time_inside"]))
        b = _seconds(parse_window(r.conds["local_time_outside"]))
        if a <= b:
            w = f"local_time_inside {r.conds['local_time_inside']!r} lies within local_time_outside " \
                f"{r.conds['local_time_outside']!r}"
            _warn(out, r, ("when", "local_time_inside"), f"{r.symbol} never holds: {w}")
            why = why or w
    w = _keywords_excluded(r.conds.get("keywords"), r.conds.get("keywords_absent"))
    if w:
        _warn(out, r, ("when", "keywords_absent"), f"{r.symbol} never holds: {w}")
        why = why or w
    ctr = r.conds.get("counter")
    if isinstance(ctr, dict) and ctr.get("distinct") in ([ctr["key"]] if isinstance(ctr.get("key"), str)
                                                          else ctr.get("key") or ()):
        # each key holds one value of the field it counts: at most 1 distinct, never over a limit >= 1
        w = f"its counter counts distinct {ctr['distinct']}s per key, and the key holds the {ctr['distinct']}: " \
            f"one per key, never more than {ctr['limit']}"
        _warn(out, r, ("when", "counter"), f"{r.symbol} never holds: {w}")
        why = why or w
    if r.tree is not None and not why:
        syms = sorted(set(r.deps))
        dead = {s for s in syms if s in never}
        limit = MAX_EXPR_SYMBOLS if _may_compute else MAX_EXPR_SYMBOLS_QUICK
        if len(syms) - len(dead) <= limit and not _satisfiable(r.tree, [s for s in syms if s not in dead], dead):
            if dead:
                w = f"its expr needs {', '.join(sorted(dead))}, which never hold{'s' if len(dead) == 1 else ''}"
            else:
                w = "its expr is false whatever the symbols it names are"
            _warn(out, r, ("when", "expr"), f"{r.symbol} never holds: {w}")
            why = w
    return why


def _keywords_excluded(words, absent) -> str | None:
    """Why `keywords` never holds beside `keywords_absent`: each of its keywords holds, as whole words, one the other
    list refuses (`vay tien` holds `vay`), so a text it finds is always refused; else None."""
    from .textconds import _keyword_parts
    if not words or not absent:
        return None
    words, absent = _keyword_parts([words] if isinstance(words, str) else words), \
        _keyword_parts([absent] if isinstance(absent, str) else absent)
    has = lambda w, a: any(w[i:i + len(a)] == a for i in range(len(w) - len(a) + 1))
    if all(any(has(w, a) for a in absent) for w in words):
        return "every keyword it looks for holds a keyword of its keywords_absent (" + \
            ", ".join(f"{' '.join(w)!r}" for w in words[:3]) + ("…" if len(words) > 3 else "") + ")"
    return None


def _seconds(win) -> frozenset:
    a, b = win
    return frozenset(range(a, b)) if a < b else frozenset(range(a, 86400)) | frozenset(range(0, b))


def _satisfiable(tree, free, false) -> bool:
    for bits in range(1 << len(free)):
        val = {s: bool(bits >> i & 1) for i, s in enumerate(free)}
        val.update(dict.fromkeys(false, False))
        if _eval(tree, val):
            return True
    return False


def _eval(t, val) -> bool:
    op = t[0]
    if op == "sym":
        return val[t[1]]
    if op == "not":
        return not _eval(t[1], val)
    if op == "and":
        return all(_eval(x, val) for x in t[1])
    return any(_eval(x, val) for x in t[1])


# ---------------------------------------------------------------- helpers nobody uses

def _unused_helpers(rules, by_symbol, out):
    used, todo = set(), [r.symbol for r in rules if not r.helper]
    while todo:
        s = todo.pop()
        for d in by_symbol[s].deps:
            if d not in used:
                used.add(d)
                todo.append(d)
    named_by: dict = {}
    for r in rules:
        for d in r.deps:
            named_by.setdefault(d, []).append(r.symbol)
    for r in rules:
        if r.helper and r.symbol not in used:
            by = named_by.get(r.symbol)
            how = (f"it is named only by {', '.join(by)}, which no scoring rule uses either" if by
                   else "no rule's expr names it")
            _warn(out, r, ("symbol",), f"helper {r.symbol} never affects a verdict: {how} (a helper has no score "
                                       f"or action of its own)")


# ---------------------------------------------------------------- actions and answers never used

def _dead_actions(rules, out):
    for r in rules:
        if r.action is Action.ALLOW:
            _warn(out, r, ("action",), f"{r.symbol}: action = \"allow\" forces nothing (the strongest action of "
                                       f"the hits wins, and allow is the weakest): only the rule's score counts (a "
                                       f"negative one lowers the total)")
        if r.smpp_status is not None:
            if r.action is not Action.DROP:
                _warn(out, r, ("smpp_status",), f"{r.symbol}: smpp_status is never answered: only a rule with "
                                                f"action = \"drop\" gives a drop its status")
            elif not (r.applies_to & {"sms-mt", "sms-mo"}):
                _warn(out, r, ("smpp_status",), f"{r.symbol}: smpp_status is never answered: the rule applies "
                                                f"to calls only")
        if r.sip_code is not None:
            if r.action is not Action.DROP:
                _warn(out, r, ("sip_code",), f"{r.symbol}: sip_code is never answered: only a rule with "
                                             f"action = \"drop\" gives a drop its code")
            elif "call" not in r.applies_to:
                _warn(out, r, ("sip_code",), f"{r.symbol}: sip_code is never answered: the rule does not apply "
                                             f"to calls")


# ---------------------------------------------------------------- duplicates

def _duplicates(rules, out):
    seen: dict = {}
    for r in rules:
        if r.stateful:
            continue
        # a helper and a scoring rule written alike are a named fact and its score: no warning
        key = (r.helper, repr(r.tree), tuple(sorted((name, canon) for name, _, canon in r.preds)))
        first = seen.get(key)
        if first is None:
            seen[key] = r
        elif r.applies_to <= first.applies_to:
            _warn(out, r, ("symbol",), f"{r.symbol} has the same conditions as {first.symbol} (at {first.source}): "
                                       f"the two always hold together; merge them or make them differ")


# ---------------------------------------------------------------- patterns that never match

_ALPHABET: str | None = None


def folded_alphabet() -> str:
    """Every character beyond ASCII that textnorm.fold() can output (some ASCII too), as one string: computed
    once, only when a pattern needs a character that neither it nor a case variant of it folds to itself (`ß`,
    an escaped accented letter, a zero-width character; 1-2 s on a busy 2-core host, once per process). fold() is
    applied per code point (engine/_textnorm.c computes it so), so this is the union of fold(c) over all c;
    tests/test_rules_warnings.py holds it equal to that."""
    global _ALPHABET
    if _ALPHABET is None:
        s = "".join(map(chr, range(0x80, 0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
        t = set(unicodedata.normalize("NFKD", s.translate(_ZW_D)))
        kept = "".join(itertools.filterfalse(unicodedata.combining, t)).translate(CONFUSABLE)
        _ALPHABET = "".join(set(kept.casefold()))
    return _ALPHABET


_ASCII_FOLDED = "".join(chr(i) for i in range(0x80) if not "A" <= chr(i) <= "Z")   # fold keeps all but capitals


def _in_folded(y: str) -> bool:
    """A quick, sure yes: `y` folds to itself, so folded text can hold it (a no proves nothing)."""
    from ..textnorm import fold
    return y in _ASCII_FOLDED if y.isascii() else fold(y) == y


def _can_match(rx, candidates) -> bool:
    """Whether compiled one-character pattern `rx` matches some character folded text can hold: a candidate
    that folds to itself, else a search over every character fold can output."""
    if any(len(y) == 1 and _in_folded(y) and rx.fullmatch(y) for y in candidates):
        return True
    if rx.search(_ASCII_FOLDED) is not None:
        return True
    if _ALPHABET is None and not _may_compute:
        raise _Unchecked
    return rx.search(folded_alphabet()) is not None


def _char_can_match(c: str, flags: int) -> bool:
    return _can_match(re.compile(re.escape(c), flags),
                      (c, c.lower(), c.upper(), c.casefold(), c.title(), c.swapcase()))


def _range_can_match(lo: int, hi: int, flags: int) -> bool:
    rx = re.compile("[" + re.escape(chr(lo)) + "-" + re.escape(chr(hi)) + "]", flags)
    head = [chr(cp) for cp in range(lo, min(hi, lo + 256) + 1)]
    return _can_match(rx, head + [y for c in head for y in (c.lower(), c.upper())])


# what in an ASCII pattern can still name a character fold never outputs: a flag group turning case off, escapes
_MAY_LEAVE_ASCII = re.compile(r"\(\?[a-zA-Z]*-|\\[NuUx]|\\[0-7]{3}")


def dead_char(pattern: str) -> str | None:
    """A character that makes `pattern` (as text_regex compiles it) unable to match any folded text, or None
    when it can match (or when this cannot tell: only certain dead patterns are named)."""
    folded = _fold_pattern(pattern)
    if folded.isascii() and not _MAY_LEAVE_ASCII.search(folded):
        return None                         # ASCII, always case-insensitive: every literal can match
    try:
        p = _parser.parse(folded, re.IGNORECASE)
    except Exception:                       # the loader compiled it already; nothing to add
        return None
    return _seq_dead(p, p.state.flags | re.IGNORECASE)


def _seq_dead(seq, flags):
    for op, av in seq:
        c = _item_dead(op, av, flags)
        if c is not None:
            return c
    return None


def _item_dead(op, av, flags):
    if op is C.LITERAL:
        return None if _char_can_match(chr(av), flags) else chr(av)
    if op is C.IN:
        if any(o is C.NEGATE or o not in (C.LITERAL, C.RANGE) for o, _ in av):
            return None
        first = None
        for o, a in av:
            if o is C.LITERAL:
                if _char_can_match(chr(a), flags):
                    return None
                first = first or chr(a)
            elif _range_can_match(a[0], a[1], flags):
                return None
            else:
                first = first or chr(a[0])
        return first
    if op is C.BRANCH:
        dead = [_seq_dead(s, flags) for s in av[1]]
        return dead[0] if all(d is not None for d in dead) else None
    if op is C.SUBPATTERN:
        _, add, rem, sub = av
        return _seq_dead(sub, (flags | add) & ~rem)
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)):
        lo, _, sub = av
        return _seq_dead(sub, flags) if lo > 0 else None
    if op is C.ASSERT:
        return _seq_dead(av[1], flags)
    if op is getattr(C, "ATOMIC_GROUP", None):
        return _seq_dead(av, flags)
    if op is C.GROUPREF_EXISTS:
        _, yes, no = av
        dy = _seq_dead(yes, flags)
        return dy if dy is not None and no is not None and _seq_dead(no, flags) is not None else None
    return None                             # ANY, NOT_LITERAL, categories, anchors, ASSERT_NOT, group refs


def _char_name(c: str) -> str:
    name = unicodedata.name(c, "")
    return f"{c!r} (U+{ord(c):04X}{' ' + name if name else ''})"
