"""SIP (RFC 3261 §25) header grammar: header names, lists, name-addr, URIs, Via. No I/O.

Every numeric field is read as ASCII digits only: Python's `str.isdigit()` is also true for
"²" or Arabic-Indic digits, which `int()` then refuses (or reads as another number), so
`ascii_int()` is the one place numbers come from.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length", "c": "content-type",
           "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via", "r": "refer-to", "b": "referred-by",
           "o": "event", "u": "allow-events", "x": "session-expires", "a": "accept-contact", "j": "reject-contact",
           "d": "request-disposition", "y": "identity", "n": "identity-info"}
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_VIA_RE = re.compile(r"^SIP\s*/\s*(\d+\.\d+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+)\s*(.*)$", re.S | re.A)
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


class SipParseError(ValueError):
    """The peer sent something we cannot accept. `status` is what to answer a request with
    (None: drop silently, e.g. a broken response); `msg` what was parsed so far."""

    def __init__(self, reason: str, status: int | None = 400, msg=None, extra=()):
        super().__init__(reason)
        self.reason, self.status, self.msg, self.extra = reason, status, msg, list(extra)


_CANON: dict = {}


def canon(name: str) -> str:
    """The canonical (lower-case, long-form) header name; remembered, as names are few (bounded
    in case a peer invents them)."""
    c = _CANON.get(name)
    if c is None:
        n = name.strip().lower()
        c = COMPACT.get(n, n)
        if len(_CANON) < 4096:
            _CANON[name] = c
    return c


def ascii_int(s: str, what: str, limit: int | None = None) -> int:
    """A non-negative decimal of ASCII digits (RFC 3261 §25.1 DIGIT = %x30-39), else a 400."""
    s = s.strip()
    if not s or not s.isascii() or not s.isdigit():
        raise SipParseError(f"bad {what} {s[:20]!r}")
    n = int(s) if len(s) <= 10 else -1            # (converted once: every URI and Via port of a request comes here)
    if n < 0 or (limit is not None and n > limit):
        raise SipParseError(f"{what} {s[:20]} too large")
    return n


def is_token(s: str) -> bool:
    return _TOKEN.match(s) is not None


def split_list(value: str) -> list[str]:
    """Split a list header's value at commas outside quotes and angle brackets (§7.3.1)."""
    if '"' not in value:
        if "," not in value:
            return [value.strip()]                            # one value (a Contact <...>): nothing to split
        if "<" not in value:
            return [p.strip() for p in value.split(",")]     # the common case: one C-level split
    return list(_scan_list(value))


def iter_list(value: str):
    """split_list's values one at a time, each as it is found: a reader that wants the first few stops there and the
    rest of the value is never scanned (identity.py reads at most a few identities of a header that may hold
    hundreds). An unterminated quoted string raises when the scan reaches the end, as split_list."""
    if '"' not in value and ("," not in value or "<" not in value):
        yield from split_list(value)                          # (its C-level splits)
    else:
        yield from _scan_list(value)


def _scan_list(value: str):
    cur, q, ang, esc = [], False, 0, False
    for ch in value:
        if esc:
            cur.append(ch)
            esc = False
            continue
        if q:
            if ch == "\\":
                esc = True
            elif ch == '"':
                q = False
            cur.append(ch)
            continue
        if ch == '"':
            q = True
        elif ch == "<":
            ang += 1
        elif ch == ">":
            ang = max(0, ang - 1)
        elif ch == "," and ang == 0:
            yield "".join(cur).strip()
            cur = []
            continue
        cur.append(ch)
    if q:
        raise SipParseError("unterminated quoted string")
    yield "".join(cur).strip()


@dataclass(slots=True)      # (slots: no instance dict a parse; _sipgrammar.h writes them as members)
class NameAddr:
    display: str
    uri: str
    params: dict


def parse_name_addr(value: str) -> NameAddr:
    if _c_name_addr is not None:
        na = _c_name_addr(value)                # the plain case in C (_sipgrammar.h); None: decided below
        if na is not None:
            return na
    v = value.strip()
    display = ""
    if v.startswith('"'):
        i, esc = 1, False
        while i < len(v):
            ch = v[i]
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                break
            i += 1
        else:
            raise SipParseError("unterminated quoted display name")
        display = v[1:i]
        v = v[i + 1:].strip()
        if not v.startswith("<"):
            raise SipParseError("quoted display name not followed by <URI>")
    if "<" in v:
        lt = v.index("<")
        if not display:
            display = v[:lt].strip()
            # an unquoted display name is tokens separated by LWS (RFC 3261 §25.1; RFC 4475 baddn)
            if display and not all(_TOKEN.match(w) for w in display.split()):
                raise SipParseError(f"unquoted display name with non-token characters: {display[:30]!r}")
        gt = v.find(">", lt)
        if gt < 0:
            raise SipParseError("unmatched < in name-addr")
        uri, rest = v[lt + 1:gt].strip(), v[gt + 1:]
    else:
        uri, _, rest = v.partition(";")
        rest = ";" + rest if rest else ""
        uri = uri.strip()
        # RFC 3261 §20: a URI with headers ('?') or commas must be in a name-addr (RFC 4475 regbadct)
        if "?" in uri or "," in uri or " " in uri:
            raise SipParseError(f"URI with ?, comma or space outside <>: {uri[:40]!r}")
    if not uri or ":" not in uri:
        raise SipParseError(f"not a URI: {uri[:40]!r}")
    return NameAddr(display, uri, parse_params(rest))


def parse_params(s: str) -> dict:
    s = s.strip()
    if not s:
        return {}
    if not s.startswith(";"):
        raise SipParseError(f"unexpected {s[:20]!r} after URI")
    out = {}
    for p in s[1:].split(";"):
        p = p.strip()
        if not p:
            raise SipParseError("empty header parameter")
        k, _, val = p.partition("=")
        out[k.strip().lower()] = val.strip()
    return out


def tag_of(value: str | None) -> str:
    """The tag parameter of a From / To value ('' when none or unparseable)."""
    if not value or "tag" not in value.lower():       # (";tag = x": LWS may come before the "=", §25.1 EQUAL)
        return ""
    try:
        return parse_name_addr(value).params.get("tag", "")
    except SipParseError:
        return ""


@dataclass(slots=True)      # (slots: no instance dict a parse; _sipgrammar.h writes them as members)
class SipUri:
    scheme: str
    user: str
    host: str
    port: int | None
    params: dict


def _global_number(number: str, params: str) -> str:
    """A local telephone-subscriber with a global-number phone-context (RFC 3966 §5.1.5: tel:2439998888;
    phone-context=+84 is +84 24 3999 8888) as the global number it names; anything else as written (a domain
    context names no prefix)."""
    if "phone-context=" not in params or number.startswith("+"):
        return number
    for kv in params.split(";"):
        k, _, v = kv.partition("=")
        if k.strip().lower() == "phone-context" and v.startswith("+"):
            prefix = "".join(c for c in v if c.isdigit())
            # (a national number written with its trunk 0, 02439998888;phone-context=+84, as is common)
            return f"+{prefix}{number[1:] if number.startswith('0') else number}" if prefix else number
    return number


def _unescaped(number: str, params: str) -> tuple[str, str]:
    """A telephone-subscriber's number and parameters with escapes read (%2B is a '+'): an escaped ';' in the
    number starts its parameters as a written one does (sip:0987654321%3Bnpdi@h is 0987654321, not no number: the
    callee went unjudged where a next hop that unescapes calls it)."""
    if "%" not in number:
        return number, params
    number = unescape(number)
    if ";" in number:
        number, _, more = number.partition(";")
        params = f"{more};{params}" if params else more
    return number, params


def parse_uri(uri: str) -> SipUri:
    if _c_uri is not None:
        u = _c_uri(uri)                         # the plain case in C (_sipgrammar.h); None: decided below
        if u is not None:
            return u
    scheme, sep, rest = uri.partition(":")
    if not sep or not _TOKEN.match(scheme):
        raise SipParseError(f"bad URI {uri[:40]!r}")
    scheme = scheme.lower()
    if scheme == "tel":
        num, _, p = rest.partition(";")
        # (RFC 3966 has no escapes in the number, but a next hop that unescapes reads tel:%2B84… as +84…: read as
        # a sip user is, else the screen judges no number where the next hop calls one)
        num, p = _unescaped(num, p)
        return SipUri("tel", _global_number(num, p), "", None, {})
    if scheme not in ("sip", "sips"):
        return SipUri(scheme, "", "", None, {})
    user = ""
    rest = rest.split("?", 1)[0]            # ?headers (a Replaces value may hold an unescaped '@' in practice)
    if "@" in rest:
        # the userinfo ends at the first '@' (RFC 3261 §25.1: none in a user part); it may hold ';' itself: a
        # telephone-subscriber's own parameters (sip:+842439998888;npdi;rn=+84243@host;user=phone, §19.1.1,
        # RFC 3966). A stray '@' further on (sip:0987000666@h;x=@h) is the parameters' problem, never the
        # number's: the caller is still the number before it.
        userinfo, _, rest = rest.partition("@")
        user, _, uparams = userinfo.split(":", 1)[0].partition(";")     # the number, without password or parameters
        user = _global_number(*_unescaped(user, uparams))                          # (%2B is a '+')
    hostpart, _, params = rest.partition(";")
    host, port = hostpart, None
    if hostpart.startswith("["):
        end = hostpart.find("]")
        host, tail = hostpart[1:end], hostpart[end + 1:]
        if tail.startswith(":"):
            port = _port(tail[1:])
    elif ":" in hostpart:
        host, p = hostpart.rsplit(":", 1)
        port = _port(p)
    if not host:
        raise SipParseError(f"URI without host: {uri[:40]!r}")
    prm = {}
    for kv in params.split(";") if params else []:
        if kv:
            k, _, v = kv.partition("=")
            prm[k.lower()] = v
    return SipUri(scheme, user, host.lower(), port, prm)


def _port(p: str) -> int:
    n = ascii_int(p, "port", 65535) if p.strip() else 0
    if n == 0:
        raise SipParseError(f"bad port {p[:10]!r}")
    return n


def unescape(s: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), s)


@dataclass(slots=True)      # (slots: no instance dict a parse; _sipgrammar.h writes them as members)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict
    raw: str


def parse_via(value: str) -> Via:
    if _c_via is not None:
        via = _c_via(value)                     # the plain case in C (_sipgrammar.h); None: decided below
        if via is not None:
            return via
    v = value.strip()
    m = _VIA_RE.match(v)
    if not m:
        raise SipParseError(f"bad Via {value[:60]!r}")
    if m.group(1) != "2.0":
        raise SipParseError(f"Via version SIP/{m.group(1)[:20]}", 505)
    sent_by, params = m.group(3), m.group(4)
    host, port = sent_by, None
    if sent_by.startswith("["):
        end = sent_by.find("]")
        host, tail = sent_by[1:end], sent_by[end + 1:]
        port = _port(tail[1:]) if tail.startswith(":") else None
    elif ":" in sent_by:
        host, p = sent_by.rsplit(":", 1)
        port = _port(p)
    prm = {}
    params = params.strip()
    if params:
        if not params.startswith(";"):
            raise SipParseError(f"bad Via parameters {params[:40]!r}")
        for kv in params[1:].split(";"):
            kv = kv.strip()
            if not kv:
                raise SipParseError("empty Via parameter")
            k, _, val = kv.partition("=")
            prm[k.strip().lower()] = val.strip()
        rp = prm.get("rport")
        if rp:
            _port(rp)                                       # RFC 3581: rport is a port when it has a value
    return Via(m.group(2).upper(), host.lower(), port, prm, v)


# The plain cases of parse_uri, parse_name_addr and parse_via in C (_sipgrammar.h), building these same classes:
# each answers only when its value is plain and the Python function would accept it, else None and the Python
# function decides (tests/test_sip_grammar_c.py). Without the extension, Python does it all.
try:
    from ._sipfast import parse_name_addr as _c_name_addr, parse_uri as _c_uri, parse_via as _c_via, set_types
    set_types(SipUri, NameAddr, Via)
except ImportError:
    _c_name_addr = _c_uri = _c_via = None
