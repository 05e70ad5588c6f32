"""How a 5656 report's source is read when it is a number (engine/rules/shortcode.py parses the commands): digit groups
one space apart ("S 0912 345 678 ..."), an area or country code in parentheses, punctuation ending it with or without a
space after it ("S 0912345678,lua dao"), or in brackets as Circular 22/2021 writes a report ("S (0912345678)(...)")."""
from __future__ import annotations

import re

from ..numbers import is_shortcode, normalise_number, vn_whole
from ..textnorm import fold

_TOKEN = re.compile(r"\S+")
# a reported number's digit groups: the first may carry a '+'; dots and hyphens inside a group
_FIRST_GROUP = re.compile(r"\+?[0-9]+(?:[.-][0-9]+)*")
_GROUP = re.compile(r"[0-9]+(?:[.-][0-9]+)*")
# groups are joined across spaces on one line (a run of them: "0987  000  777" as an autocorrect or a copied call
# log spaces it was read as "0987", the short code 987); a line break ends a number
_GROUP_SEP = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")   # spaces of any width (a formatter's thin one)
_MAX_GROUPS = 6                        # "+84 91 234 56 78" is 5; more is content
_MAX_DIGITS = 17                       # "00" + 15 digits of E.164
_NUMBER_END = ",;:.!?"                 # "S 0912345678, ...", "S 0912 345 678. ..." : the number ends there
# an area code or country code in parentheses: "(024) 3999 8888", "(+84) 912 345 678", "+84 (0) 912 345 678"
_PAREN = re.compile(r"\((\+?[0-9]+)\)")
# Circular 22/2021/TT-BTTTT's user guidance writes a report "S [Nguồn phát tán][Nội dung tin nhắn rác]" or
# "S (Nguồn phát tán)(Nội dung tin nhắn rác)" (V alike): the source in brackets, its content right after, with or
# without a space. Read when the number alone did not parse ("(0912345678)(vay" is no number)
_BRACKETED = re.compile(r"[(\[]([^()\[\]]+)[)\]]\s*")
_PAIRS = {"(": ")", "[": "]"}


def _vn_subscriber(n: int, written: str) -> bool:
    """Whether digit groups joined into `n` make a whole subscriber number: a Vietnamese mobile
    (84 + 9 digits, 3/5/7/8/9...), landline (84 + 10 digits, 2...) or service number (1800/1900
    and 4 or 6 digits: "1900 1234"), or any number written in international form (+CC / 00CC).
    Stricter than normalise_number, so that a figure in the content ("S 0912345678 1 ty") is not
    glued onto the number."""
    if is_shortcode(n):
        return False
    s = str(n)
    if s.startswith("84"):
        nsn = s[2:]
        return vn_whole(n) or (len(nsn) in (8, 10) and nsn[:4] in ("1800", "1900"))
    return written.startswith(("+", "00"))


def _reported(text: str, first) -> tuple[int | None, str, int]:
    """The reported number starting at token `first` (a match of _TOKEN in `text`): the longest
    run of digit groups, one space apart, that is a whole subscriber number; else the first
    token alone, as normalise_number reads it (short codes, "0912.345.678"). Returns
    (number or None, the first token as written, where the content starts)."""
    groups: list[str] = []
    ends: list[int] = []
    m, pat, digits = first, _FIRST_GROUP, 0
    while m is not None and len(groups) < _MAX_GROUPS:
        tok, end = _glued(m)
        g = _PAREN.sub(r"\1", fold(tok), count=1)
        stripped = g.rstrip(_NUMBER_END)
        if not pat.fullmatch(stripped):
            break
        digits += sum(c.isdigit() for c in stripped)
        if digits > _MAX_DIGITS:
            break
        groups.append(stripped)
        ends.append(end)
        if stripped != g:                         # "0912 345 678," : the comma ends it
            break
        nxt = _TOKEN.search(text, m.end())
        if not _spaced(text, m, nxt):
            break
        m, pat = nxt, _GROUP
    for k in range(len(groups), 1, -1):
        joined = "".join(groups[:k])
        n = normalise_number(joined)
        if n is not None and _vn_subscriber(n, joined):
            return n, first.group(), ends[k - 1]
    tok, end = _glued(first)
    g = fold(tok)
    written = g.rstrip(_NUMBER_END) or g
    n = normalise_number(written)
    if n is not None and is_shortcode(n) and next((c for c in written if c.isdigit()), "") == "0":
        # a group written with its trunk 0 is a piece of a longer number ("0987 000 7771" with a digit too many),
        # never a short code (none starts with 0): 987 was reported, and the reporter told so
        n = None
    return n, first.group(), end


def _spaced(text: str, m, nxt) -> bool:
    """Whether token `nxt` follows token `m` across spaces on the same line (digit groups of one number, words of
    one name)."""
    return nxt is not None and _GROUP_SEP.fullmatch(text, m.end(), nxt.start()) is not None


def _glued(m, ends: str = _NUMBER_END) -> tuple[str, int]:
    """Token `m` up to the punctuation that ends a number in it with text right after it, no space between
    ("0912345678,lua" -> "0912345678,", as a phone keyboard leaves it), and where that text starts; the whole token
    and its end when there is none ("0912.345.678": a digit follows the dots; "0912345678...": nothing does)."""
    tok = m.group()
    i = 0
    while i < len(tok):
        if i and _punct(tok[i], ends):
            j = i
            while j < len(tok) and _punct(tok[j], ends):
                j += 1
            if j < len(tok) and not fold(tok[j]).isdigit():
                return tok[:j], m.start() + j
            i = j
        else:
            i += 1
    return tok, m.end()


def _punct(c: str, ends: str) -> bool:
    f = fold(c)                                   # a full-width comma is one too
    return len(f) == 1 and f in ends


def _bracketed(text: str, start: int) -> tuple[int | None, str, bool]:
    """A report's source written in brackets at `start` ("(0912 345 678)(vay tien)", "[0912345678] [vay tien]",
    Circular 22's own notation): (the number, the content after it, itself out of one enclosing bracket pair,
    whether the number is a whole subscriber number), or (None, "", False) when the brackets hold no number alone."""
    m = _BRACKETED.match(text, start)
    tok = _TOKEN.search(m.group(1)) if m is not None else None
    if tok is None:
        return None, "", False
    inner = m.group(1)
    n, _, end = _reported(inner, tok)
    if n is None or inner[end:].strip():
        return None, "", False
    return n, _unwrapped(text[m.end():].strip()), _vn_subscriber(n, inner.strip())


def _unwrapped(content: str) -> str:
    """Report content out of one bracket pair enclosing all of it ("(vay tien)" -> "vay tien")."""
    if len(content) >= 2 and _PAIRS.get(content[0]) == content[-1]:
        return content[1:-1].strip()
    return content
