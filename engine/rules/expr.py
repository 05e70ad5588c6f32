"""Boolean composites of symbols: `__IS_AD and not (__AD_LABEL or X)`.

A tiny recursive-descent parser (no eval): identifiers, and/or/not (also & | !), parens.
Compiles to a function of a `lookup(symbol) -> bool`.
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


def guard_of(s: str) -> str | None:
    """The symbol that must hold for the expression to hold, when the expression is
    `SYM and ...` at top level (lets the evaluator skip a rule without calling it)."""
    toks = tokenize(s)
    if not toks or toks[0][0] in "()&|!":
        return None
    depth = 0
    for t, _ in toks:
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif t == "|" and depth == 0:
            return None
    if len(toks) == 1 or toks[1][0] == "&":
        return toks[0][0]
    return None


def parse(s: str):
    """Returns (fn(lookup) -> bool, [(symbol, offset), ...])."""
    toks = tokenize(s)
    symbols: list = []
    i = 0

    def peek():
        return toks[i][0] if i < len(toks) else None

    def take():
        nonlocal i
        t = toks[i]
        i += 1
        return t

    def p_or():
        left = p_and()
        while peek() == "|":
            take()
            right = p_and()
            left = (lambda a, b: lambda f: a(f) or b(f))(left, right)
        return left

    def p_and():
        left = p_not()
        while peek() == "&":
            take()
            right = p_not()
            left = (lambda a, b: lambda f: a(f) and b(f))(left, right)
        return left

    def p_not():
        if peek() == "!":
            take()
            inner = p_not()
            return lambda f: not inner(f)
        return p_atom()

    def p_atom():
        if i >= len(toks):
            raise ExprError("expression ends early", len(s))
        tok, off = take()
        if tok == "(":
            e = p_or()
            if peek() != ")":
                raise ExprError("missing ')'", toks[i][1] if i < len(toks) else len(s))
            take()
            return e
        if tok in (")", "&", "|"):
            raise ExprError(f"unexpected {tok!r}", off)
        symbols.append((tok, off))
        return lambda f: f(tok)

    if not toks:
        raise ExprError("empty expression", 0)
    fn = p_or()
    if i != len(toks):
        raise ExprError(f"unexpected {toks[i][0]!r}", toks[i][1])
    return fn, symbols
