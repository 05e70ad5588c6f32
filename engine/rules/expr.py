"""Boolean composites of symbols: `__IS_AD and not (__AD_LABEL or X)`.

A tiny recursive-descent parser (no eval): identifiers, and/or/not (also & | !), parens.
Parses to a small tree of tuples (the rule plan compiles it to closures); nesting and
length are bounded so neither parsing nor evaluation can exhaust the interpreter's stack.
"""
from __future__ import annotations

import re

_TOK = re.compile(r"\s*(?:(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[()&|!]))")


class ExprError(ValueError):
    def __init__(self, msg, offset):
        super().__init__(msg)
        self.offset = offset


def tokenize(s: str):
    pos, out = 0, []
    while pos < len(s):
        m = _TOK.match(s, pos)
        if not m or m.end() == pos:
            if s[pos:].strip() == "":
                break
            off = pos + (len(s[pos:]) - len(s[pos:].lstrip()))
            raise ExprError(f"unexpected {s[off]!r} in expression", off)
        tok = m.group("id") or m.group("op")
        start = m.start("id") if m.group("id") else m.start("op")
        low = tok.lower()
        if low in ("and", "or", "not"):
            tok = {"and": "&", "or": "|", "not": "!"}[low]
        out.append((tok, start))
        pos = m.end()
    return out


MAX_DEPTH = 32          # parentheses and `not`s; a rule file never needs more
MAX_SYMBOLS = 256


def parse_tree(s: str):
    """Returns (tree, [(symbol, offset), ...]). A tree is ("sym", name), ("not", tree),
    ("and", [trees]) or ("or", [trees]); chains of one operator are flattened, so a long
    `A or B or C ...` is one node and evaluating it never recurses per operand."""
    toks = tokenize(s)
    symbols: list = []
    i = 0
    depth = 0

    def peek():
        return toks[i][0] if i < len(toks) else None

    def take():
        nonlocal i
        t = toks[i]
        i += 1
        return t

    def nest(off):
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise ExprError(f"expression nested more than {MAX_DEPTH} levels deep", off)

    def p_or():
        items = [p_and()]
        while peek() == "|":
            take()
            items.append(p_and())
        return items[0] if len(items) == 1 else ("or", items)

    def p_and():
        items = [p_not()]
        while peek() == "&":
            take()
            items.append(p_not())
        return items[0] if len(items) == 1 else ("and", items)

    def p_not():
        nonlocal depth
        if peek() == "!":
            nest(toks[i][1])
            take()
            inner = p_not()
            depth -= 1                  # nesting, not a count: `not a and not b and ...` is flat
            return ("not", inner)
        return p_atom()

    def p_atom():
        nonlocal depth
        if i >= len(toks):
            raise ExprError("expression ends early", len(s))
        tok, off = take()
        if tok == "(":
            nest(off)
            e = p_or()
            if peek() != ")":
                raise ExprError("missing ')'", toks[i][1] if i < len(toks) else len(s))
            take()
            depth -= 1
            return e
        if tok in (")", "&", "|"):
            raise ExprError(f"unexpected {tok!r}", off)
        if len(symbols) >= MAX_SYMBOLS:
            raise ExprError(f"more than {MAX_SYMBOLS} symbols in one expression", off)
        symbols.append((tok, off))
        return ("sym", tok)

    if not toks:
        raise ExprError("empty expression", 0)
    tree = p_or()
    if i != len(toks):
        raise ExprError(f"unexpected {toks[i][0]!r}", toks[i][1])
    return tree, symbols


def evaluate_tree(tree, lookup) -> bool:
    """Reference evaluation, left to right with short-circuit (the plan compiles the same)."""
    op = tree[0]
    if op == "sym":
        return lookup(tree[1])
    if op == "not":
        return not evaluate_tree(tree[1], lookup)
    if op == "and":
        return all(evaluate_tree(t, lookup) for t in tree[1])
    return any(evaluate_tree(t, lookup) for t in tree[1])


def parse(s: str):
    """Returns (fn(lookup) -> bool, [(symbol, offset), ...])."""
    tree, symbols = parse_tree(s)
    return (lambda lookup: evaluate_tree(tree, lookup)), symbols
