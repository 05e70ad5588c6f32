"""A client certificate tied to an ESME account: `[[account]] tls_client_subject` and/or `tls_client_sha256`.

Without them any certificate the listener's `tls_client_ca` issued may bind as any account whose password it
has. With them, a bind_transmitter / _receiver / _transceiver of that account is taken only on a connection of the
TLS listener whose peer certificate matches (both, when both are set), checked after the password and source
network (so only a holder of the credentials learns of it) and refused ESME_RBINDFAIL otherwise, logged; over
plain TCP the account cannot bind at all. The certificate was verified against `tls_client_ca` in the handshake
(the config check requires it and tls_listen for such an account); a resumed TLS session carries the certificate
of its first handshake (OpenSSL keeps it in the session and its ticket).

  tls_client_subject = "CN=esme1,O=Acme"   the certificate's whole subject: the same attributes with the same
                                           values (case-sensitive), in any order (RFC 4514 writes them last RDN
                                           first, OpenSSL's one-line form first RDN first: either matches). Names
                                           are RFC 4514's (CN, O, OU, C, L, ST, STREET, DC, UID) or OpenSSL's long
                                           ones (emailAddress, serialNumber, ...); `\\,` `\\+` `\\=` `\\\\` and
                                           `\\XX` (hex, UTF-8) escape; `+` joins a multi-valued RDN's parts.
  tls_client_sha256 = "AB:CD:..."          SHA-256 of the certificate's DER (`openssl x509 -noout -fingerprint
                                           -sha256`): colons, spaces and case do not matter.

An `--esme-accounts-file` line carries them after the password (credentials.py), checked by `account_tls` as
smpp.toml's are, with the same messages:
  esme1:secret tls_client_subject=CN=esme1,O=Acme tls_client_sha256=AB:CD:...
"""
from __future__ import annotations

import hashlib
import re

# RFC 4514 §3 names (and E, the usual short form of emailAddress) -> OpenSSL's long names, as getpeercert gives them
SHORT = {"cn": "commonName", "o": "organizationName", "ou": "organizationalUnitName", "c": "countryName",
         "l": "localityName", "st": "stateOrProvinceName", "street": "streetAddress", "dc": "domainComponent",
         "uid": "userId", "e": "emailAddress"}
LONG = {n.lower(): n for n in (*SHORT.values(), "emailAddress", "serialNumber", "surname", "givenName", "title",
                               "initials", "pseudonym", "generationQualifier", "dnQualifier", "name",
                               "businessCategory", "postalCode", "jurisdictionCountryName",
                               "jurisdictionStateOrProvinceName", "jurisdictionLocalityName", "organizationIdentifier")}
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def parse_subject(text: str) -> tuple:
    """`CN=esme1,O=Acme` -> the sorted ((long name, value), ...) it names; ValueError saying what is wrong."""
    parts, cur, raw, i = [], [], bytearray(), 0

    def flush_raw():
        if raw:                             # \XX escapes: never separators either
            cur.extend("\x00" + c for c in raw.decode("utf-8"))
            raw.clear()
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1:i + 3]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", nxt):
                raw.append(int(nxt, 16))
                i += 3
                continue
            if not nxt:
                raise ValueError("ends with a lone '\\'")
            flush_raw()
            cur.append("\x00" + nxt[0])        # escaped: never a separator
            i += 2
            continue
        flush_raw()
        if ch in ",+":
            parts.append(cur)
            cur = []
        else:
            cur.append(ch)
        i += 1
    flush_raw()
    parts.append(cur)
    out = []
    for p in parts:
        eq = next((k for k, c in enumerate(p) if c == "="), None)       # an escaped '=' is "\x00="
        if eq is None:
            raise ValueError(f"{_text(p)!r} is not NAME=VALUE")
        name, value = _text(p[:eq]).strip(), _text(p[eq + 1:]).strip()
        long = SHORT.get(name.lower()) or LONG.get(name.lower())
        if long is None:
            raise ValueError(f"unknown attribute {name!r} (one of {', '.join(k.upper() for k in SHORT)} or "
                             "OpenSSL's long names, e.g. emailAddress)")
        if not value:
            raise ValueError(f"{name} has no value")
        out.append((long, value))
    return tuple(sorted(out))


def _text(chars: list) -> str:
    return "".join(c[1:] if c.startswith("\x00") else c for c in chars)


def normal_sha256(text: str) -> str:
    """`AB:CD:...` -> 64 lowercase hex digits; ValueError if it is not a SHA-256."""
    h = re.sub(r"[\s:]", "", text).lower()
    if not _HEX_SHA256.fullmatch(h):
        raise ValueError("must be a SHA-256 fingerprint: 64 hex digits, colons allowed (openssl x509 -noout "
                         "-fingerprint -sha256 -in CERT)")
    return h


class TlsKeyError(ValueError):
    """A tls_client_* value that cannot work; `key` is the key it is about (for the line to name)."""

    def __init__(self, msg: str, key: str):
        super().__init__(msg)
        self.key = key


def account_tls(values: dict, mutual_tls: bool | None) -> tuple[str, str]:
    """An account's tls_client_subject / tls_client_sha256 (`values`: those given, as written) -> (subject,
    sha256 as 64 lowercase hex digits), "" for one not given. `mutual_tls`: the listener asks for a client
    certificate ([server] tls_listen and tls_client_ca; None: not known here). TlsKeyError saying what is wrong."""
    try:
        sha256 = normal_sha256(values["tls_client_sha256"]) if "tls_client_sha256" in values else ""
    except ValueError as e:
        raise TlsKeyError(f"tls_client_sha256 {e}", "tls_client_sha256") from None
    subject = values.get("tls_client_subject", "")
    if "tls_client_subject" in values:
        try:
            parse_subject(subject)
        except ValueError as e:             # (UnicodeDecodeError, of a \XX escape, is one)
            raise TlsKeyError(f"tls_client_subject {subject!r}: {e}", "tls_client_subject") from None
    key = next((k for k in ("tls_client_subject", "tls_client_sha256") if k in values), None)
    if key and mutual_tls is False:
        raise TlsKeyError(f"{key} needs [server] tls_listen and tls_client_ca (a client certificate is asked for "
                          "only then; the account cannot bind over plain TCP)", key)
    return subject, sha256


def cert_subject(peercert: dict) -> tuple:
    """getpeercert()'s subject -> the sorted ((long name, value), ...) parse_subject gives."""
    return tuple(sorted((k, v) for rdn in peercert.get("subject", ()) for k, v in rdn))


def refusal(sess, acct) -> str | None:
    """Why `acct` may not bind on `sess` for its tls_client_* settings, else None."""
    if not (acct.tls_client_subject or acct.tls_client_sha256):
        return None
    obj = sess.transport.get_extra_info("ssl_object") if sess.transport is not None else None
    if obj is None:
        return "the account binds over TLS only (tls_client_subject / tls_client_sha256); this is plain TCP"
    der = obj.getpeercert(binary_form=True)
    if der is None:                 # no client certificate asked for (tls_client_ca gone by a reload)
        return "no client certificate"
    if acct.tls_client_sha256 and hashlib.sha256(der).hexdigest() != acct.tls_client_sha256:
        return f"client certificate SHA-256 {hashlib.sha256(der).hexdigest()} is not tls_client_sha256"
    if acct.tls_client_subject:
        got = cert_subject(obj.getpeercert() or {})
        if got != parse_subject(acct.tls_client_subject):
            return (f"client certificate subject {','.join(f'{k}={v}' for k, v in got)!r} is not tls_client_subject "
                    f"{acct.tls_client_subject!r}")
    return None
