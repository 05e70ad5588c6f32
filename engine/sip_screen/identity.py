"""Who an initial INVITE is from and to: the identities the screen judges a call as (screening.py judges it).

The callee is the Request-URI's user, else the To user (`_callee`). The caller is the first identity that is a
number, in the order they are believed (`_caller`): P-Asserted-Identity (its tel identity first, RFC 3325 §9.1),
From, Remote-Party-ID's calling party, P-Preferred-Identity -- the asserted ones (ASSERTING) only from a peer in
trusted_identity_networks (RFC 3325 §5), From alone otherwise. `dialog_parties` and `caller_side` are the
fixed-size keys of the dialog an INVITE opens, by which its re-INVITEs and BYEs find the answered call
(dialogs.py, responses.py).
"""
from __future__ import annotations

from ..numbers import normalise_number
from .grammar import SipParseError, parse_uri
from .grammar import iter_list
from .recent import dialog_digest, digest

ASSERTING = ("p-asserted-identity", "remote-party-id", "p-preferred-identity")    # read from a trusted peer only
# identities read of each of those headers, in order: RFC 3325 §9.1 allows a P-Asserted-Identity (and §9.2 a
# P-Preferred-Identity) one sip and one tel identity, a Remote-Party-ID one per party. A peer may send hundreds in
# 64 KB (every one parsed cost an INVITE ~10 ms, 100 times a plain one); those beyond are not read
MAX_IDENTITIES = 8

try:                                        # grammar.parse_uri(uri).user of a plain URI, in C (_sipgrammar.h)
    from ._sipfast import uri_user as _c_user
except ImportError:
    _c_user = None


def dialog_parties(key: bytes, msg, frm, to, from_user=None, tag=None) -> int:
    """A fixed-size key of the dialog an INVITE opens, seen from its caller: its From tag, the From user and the
    To user. A re-INVITE from the caller has the same key; one from the callee has it with From and To
    swapped (`dialog_parties(key, msg, to, frm)`). `from_user`: `_user_of(msg, frm or "")` when the caller has it.
    `key`: the screen's dialog_key (recent.dialog_digest: the key is the same after a restart); `tag`: the From
    tag, `msg.tag_in(frm)`, when the caller has it."""
    if from_user is None:
        from_user = _user_of(msg, frm or "")
    return dialog_digest(key, msg.tag_in(frm) if tag is None else tag, from_user, _user_of(msg, to or ""))


def caller_side(key: bytes, msg, frm, from_user=None, tag=None) -> int:
    """A fixed-size key of the caller's side of the dialog an INVITE opens: its From tag and From user, which the
    callee's answer and RFC 4916 leave as they are (the caller's From in its re-INVITEs, its To in the callee's)."""
    if from_user is None:
        from_user = _user_of(msg, frm or "")
    return dialog_digest(key, msg.tag_in(frm) if tag is None else tag, from_user)


def caller_key(caller: str) -> int:
    """A fixed-size key of the caller a call was judged as: its number however written (+84, 84, 0, separators),
    else the text. A call tried again after a final that asks for it is replayed only for the same key
    (screening._screen_once): tried again as another caller, it is a call of its own."""
    n = normalise_number(caller)
    return digest(caller if n is None else str(n))


def _user_of(msg, v: str) -> str:
    """The user part of the URI in a From / To / P-Asserted-Identity value ('' if it does not parse). A plain URI's
    user is read in C, no SipUri built (~2,500 instructions less a read, two an INVITE: _c_user, None when undecided);
    the rest by parse_uri."""
    try:
        uri = msg.name_addr(v).uri
        if _c_user is not None and (user := _c_user(uri)) is not None:
            return user
        return parse_uri(uri).user
    except SipParseError:
        return ""


def _callee(msg, first) -> str:
    """The number (URI user) an initial INVITE calls: its Request-URI's, else its To's."""
    try:
        callee = (msg.ruri or parse_uri(msg.uri)).user
    except SipParseError:
        callee = ""
    return callee or _user_of(msg, first.get("to") or "")


def _identities(msg, name: str, strict=False) -> list:
    """The first MAX_IDENTITIES identities of the `name` headers, in order (a header's split at commas outside <>
    and quotes, RFC 3325 §9.1: `<a>, <b>`), the rest of the headers not scanned. `strict`: an unterminated quoted
    string read raises SipParseError (as P-Asserted-Identity, a list header, always did); else what was read."""
    out = []
    for h in msg.headers:
        if h[2] == name:
            try:
                for x in iter_list(h[1]):
                    if x:
                        out.append(x)
                        if len(out) == MAX_IDENTITIES:
                            return out
            except SipParseError:
                if strict:
                    raise
    return out


def _asserted(msg, values) -> tuple:
    """(the caller a P-Asserted-Identity asserts, its number or None) (`values`: _identities'): its tel identity when
    it has one (RFC 3325 §9.1 allows a sip and a tel identity, in one header or two, in either order: the number is
    what the caps count), else the first. The number is the one read here (it was read again by _caller_number)."""
    for v in values:
        if "tel:" in v.lower():
            user = _user_of(msg, v)
            if user and (n := normalise_number(user)) is not None:
                return user, n
    for v in values:
        user = _user_of(msg, v)
        if user and (n := normalise_number(user)) is not None:
            return user, n
    return (_user_of(msg, values[0]) if values else ""), None     # (none a number: the loop above read them all)


def _calling_party(msg, rpid) -> str:
    """The number a Remote-Party-ID names as the calling party (draft-ietf-sip-privacy-04 §6: `party=calling`, or
    no party, which means calling), or ''. Its `privacy=full` hides the number from the callee, not from us."""
    for x in rpid:
        try:
            na = msg.name_addr(x)
            if na.params.get("party", "calling").lower() != "calling":
                continue
            user = parse_uri(na.uri).user
        except SipParseError:
            continue
        if user and normalise_number(user) is not None:
            return user
    return ""


def _caller(msg, first, trusted=True) -> tuple:
    """(the caller an initial INVITE is judged as, its From user or None when not read): _caller_number's first two."""
    return _caller_number(msg, first, trusted)[:2]


def _caller_number(msg, first, trusted=True) -> tuple:
    """(the caller an initial INVITE is judged as, its From user or None when not read, the caller's number --
    normalise_number's, read once here: the call's MessageContext takes it from Call.nums): the first identity that is
    a number, in the order they are believed -- P-Asserted-Identity (_asserted), From, Remote-Party-ID's calling
    party (the asserted identity where trunks send that instead, behind an anonymous From), P-Preferred-Identity
    (what the caller's UA asks to be asserted, RFC 3325 §9.2). An identity that is no number ('anonymous', RFC 3323
    §4.1.1.3) asserts nothing to judge: it never hides a number written in another (an advertiser's registered
    number in From beside `P-Asserted-Identity: <sip:anonymous@anonymous.invalid>` rang a DNC callee), and no header
    but P-Asserted-Identity is read before a From that is a number (a Remote-Party-ID the caller adds would
    otherwise hide its From). No number anywhere: as before, the asserted user, else the From user.
    `trusted`: whether the INVITE's previous hop is in trusted_identity_networks; if not, only From is read (RFC 3325
    §5: an identity is asserted only inside a trust domain; a caller sending straight to the screen with a clean
    number in P-Asserted-Identity dodged its blacklisted From, or borrowed an advertiser's registered number)."""
    if not trusted:
        from_user = _user_of(msg, first.get("from") or "")
        return from_user, from_user, normalise_number(from_user)
    asserted, n = _asserted(msg, _identities(msg, "p-asserted-identity", True)) if "p-asserted-identity" in first \
        else ("", None)
    if n is not None:
        return asserted, None, n
    from_user = _user_of(msg, first.get("from") or "")
    if from_user and (n := normalise_number(from_user)) is not None:
        return from_user, from_user, n
    if "remote-party-id" in first:
        rpid = _calling_party(msg, _identities(msg, "remote-party-id"))
        if rpid:
            return rpid, from_user, normalise_number(rpid)
    if "p-preferred-identity" in first:
        ppi, n = _asserted(msg, _identities(msg, "p-preferred-identity"))
        if n is not None:
            return ppi, from_user, n
    return asserted or from_user, from_user, None          # (neither is a number: read above)
