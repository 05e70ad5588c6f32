"""JSON text the verdict log writes by hand (engine/verdictlog.py): numbers as json.dumps prints them, a score
rounded to 4 places at half round()'s cost, and a line with every non-ASCII character escaped."""
from __future__ import annotations

import re

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _u_escape(m) -> str:
    o = ord(m.group())
    if o > 0xFFFF:                      # JSON escapes astral characters as a surrogate pair
        o -= 0x10000
        return "\\u%04x\\u%04x" % (0xD800 + (o >> 10), 0xDC00 + (o & 0x3FF))
    return "\\u%04x" % o


def ascii_json(line: str) -> str:
    """The same JSON text with every non-ASCII character escaped (valid JSON, any encoding)."""
    return _NON_ASCII.sub(_u_escape, line)


def number_text(x) -> str:
    # json.dumps writes any float (numpy's too) with float.__repr__
    return float.__repr__(x) if isinstance(x, float) else int.__repr__(int(x))


def score_text(x) -> str:
    """float.__repr__(round(x, 4)) for a float with |x| < 1e11, character for character, at half the cost:
    "%.4f" rounds the exact binary value to 4 places as round() does (the same dtoa call), and below 1e11 a
    double's spacing is under 1e-4, so the shortest text that reads back as that double (repr) is those
    digits without their trailing zeros (round() then repr() parse and print the digits once more)."""
    s = ("%.4f" % x).rstrip("0")
    return s + "0" if s[-1] == "." else s


_SURROGATE = re.compile("[\ud800-\udfff]")


def surrogates_escaped(line: str) -> str:
    """The same JSON text with each lone surrogate (no character: UTF-8 cannot hold it) as its \\uXXXX escape."""
    return _SURROGATE.sub(_u_escape, line)
