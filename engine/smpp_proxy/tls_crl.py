"""Certificate revocation for the TLS listener's client certificates: `[server] tls_client_crl = "PATH"`.

Theory of operation. The file holds one or more PEM CRLs (`-----BEGIN X509 CRL-----`, RFC 5280 §5), loaded into
the listener's context beside `tls_client_ca` (`load_verify_locations`) with `VERIFY_CRL_CHECK_LEAF`: OpenSSL then
refuses, in the handshake, a client certificate whose serial its issuer's CRL lists ("certificate revoked"), and
also every client certificate whose issuer has no CRL in the file ("unable to get certificate CRL") or whose
issuer's CRL is past its nextUpdate ("CRL has expired") or fails its signature. Only the leaf is checked, not
the chain (`VERIFY_CRL_CHECK_CHAIN`): that would need a current CRL from every CA up to the root too, roots
publish theirs rarely (often from an offline key), and a missing one refuses every handshake; an intermediate
CA that is compromised is taken out of `tls_client_ca` instead.

So a CRL that cannot work is refused before it is put in force (`check_crl`, run by the config check, serve's
start and `ctl reload accounts`, as the certificate files are): no PEM CRL in the file, one that does not parse,
one not issued by a certificate of `tls_client_ca`, one whose nextUpdate has passed or whose thisUpdate is still
to come, are errors at the key's line (a reload keeps the old context); a CA of `tls_client_ca` without a CRL
is a warning (the clients it issues directly are all refused). The CRL's signature is checked by OpenSSL at
each handshake only (serve has no X.509 library beside `ssl`): one that fails refuses every handshake, logged
with OpenSSL's reason. The CRL is read whole at load. OpenSSL's check at each client handshake costs time that
grows with the CRL's size, not with traffic: +2-3 ms of CPU at 100,000 entries (3.8 MB), up to +0.8 ms at 10,000
(benchmarks/tls_crl_cost.py; README "SMPP over TLS"): a large CRL wants a lower tls_handshakes_per_second.

A CRL that expires while serve runs (nextUpdate passes between reloads) makes OpenSSL refuse every client
certificate: counted (`tls_client_crl_expired`), logged as an error at most every LOG_EVERY s, and the earliest
nextUpdate loaded is exported (/metrics `telfilter_smpp_tls_client_crl_next_update_seconds`) for an alert before
it comes. A revoked certificate's refusal is counted (`tls_client_revoked`) and logged at most once per source
per LOG_EVERY s (with the number since), as the handshake rate's refusals are (tls_rate.py).
"""
from __future__ import annotations

import base64
import binascii
import calendar
import logging
import re
import ssl
import time
from collections import OrderedDict

from ..servicelog import LogThrottle
from ..sourcekey import source_key
from .tls_rate import LOG_EVERY, MAX_SOURCES

log = logging.getLogger("telfilter.smpp")

# OpenSSL's X509_V_ERR_* codes, as SSLCertVerificationError.verify_code carries them (x509_vfy.h)
CERT_REVOKED, CRL_HAS_EXPIRED, UNABLE_TO_GET_CRL = 23, 12, 3
_PEM = re.compile(rb"-----BEGIN (X509 CRL|CERTIFICATE)-----\s*(.*?)\s*-----END \1-----", re.S)
_NAMES = {"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
          "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "emailAddress"}


# ---------------------------------------------------------------- just enough DER (X.690) for CRLs and certificates

def _tlv(b: bytes, i: int) -> tuple[int, int, int]:
    """-> (tag, start of the content, end of the content) of the DER element at b[i]; ValueError when cut short."""
    if i + 2 > len(b):
        raise ValueError("truncated")
    tag, n, i = b[i], b[i + 1], i + 2
    if n & 0x80:
        k = n & 0x7F
        if not 1 <= k <= 4 or i + k > len(b):
            raise ValueError("bad length")
        n, i = int.from_bytes(b[i:i + k], "big"), i + k
    if i + n > len(b):
        raise ValueError("truncated")
    return tag, i, i + n


def _children(b: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, content start, content end, element start) of each element in b[start:end]."""
    out = []
    while start < end:
        tag, s, e = _tlv(b, start)
        out.append((tag, s, e, start))
        start = e
    return out


def _time(b: bytes, tag: int, s: int, e: int) -> float:
    """UTCTime (0x17) or GeneralizedTime (0x18), as RFC 5280 §4.1.2.5 writes them (Z) -> seconds since the epoch."""
    t = b[s:e].decode("ascii")
    if tag == 0x17:
        yy = int(t[:2])
        t = ("19" if yy >= 50 else "20") + t
    if tag not in (0x17, 0x18) or not re.fullmatch(r"\d{14}Z", t):
        raise ValueError("bad time")
    return calendar.timegm(time.strptime(t, "%Y%m%d%H%M%SZ"))


def _oid(v: bytes) -> str:
    parts, n = [str(v[0] // 40), str(v[0] % 40)], 0
    for c in v[1:]:
        n = (n << 7) | (c & 0x7F)
        if not c & 0x80:
            parts.append(str(n))
            n = 0
    return ".".join(parts)


def name_text(der: bytes) -> str:
    """A DER Name -> `CN=test CA,O=Acme` (OpenSSL's one-line order: first RDN first), for messages."""
    out = []
    _, s, e = _tlv(der, 0)
    for _, rs, re_, _ in _children(der, s, e):
        for _, as_, ae, _ in _children(der, rs, re_):
            (_, os_, oe, _), (_, vs, ve, _) = _children(der, as_, ae)[:2]
            oid = _oid(der[os_:oe])
            out.append(f"{_NAMES.get(oid, oid)}={der[vs:ve].decode('utf-8', 'replace')}")
    return ",".join(out)


def _pem_blocks(data: bytes, kind: bytes) -> list[bytes]:
    out = []
    for m in _PEM.finditer(data):
        if m.group(1) == kind:
            out.append(base64.b64decode(re.sub(rb"\s", b"", m.group(2)), validate=True))
    return out


def parse_crl(der: bytes) -> dict:
    """A DER CertificateList (RFC 5280 §5.1) -> {"issuer": DER Name, "name": it as text, "this_update",
    "next_update" (None if absent): epoch seconds}; ValueError, IndexError or UnicodeDecodeError if it is not one."""
    _, s, e = _tlv(der, 0)
    tbs_tag, ts, te, _ = _children(der, s, e)[0]
    items = _children(der, ts, te)
    if tbs_tag != 0x30 or not items:
        raise ValueError("not a CertificateList")
    if items[0][0] == 0x02:             # version v2, optional
        items = items[1:]
    (sig_tag, *_), (iss_tag, _, ie, istart) = items[0], items[1]
    if sig_tag != 0x30 or iss_tag != 0x30:
        raise ValueError("not a CertificateList")
    this_update = _time(der, *items[2][:3])
    nxt = items[3] if len(items) > 3 and items[3][0] in (0x17, 0x18) else None
    return {"issuer": der[istart:ie], "name": name_text(der[istart:ie]), "this_update": this_update,
            "next_update": _time(der, *nxt[:3]) if nxt else None}


def cert_subjects(data: bytes) -> list[bytes]:
    """The DER subject Name of each PEM certificate in `data` (a CA file)."""
    out = []
    try:
        blocks = _pem_blocks(data, b"CERTIFICATE")
    except ValueError:                  # (binascii.Error is one) OpenSSL read it: let it be the judge
        return out
    for der in blocks:
        try:
            _, s, e = _tlv(der, 0)
            _, ts, te, _ = _children(der, s, e)[0]
            items = _children(der, ts, te)
            if items[0][0] == 0xA0:     # [0] version
                items = items[1:]
            _, _, se, sstart = items[4]         # serial, signature, issuer, validity, subject
            out.append(der[sstart:se])
        except (ValueError, IndexError):
            continue                    # (the CA file itself is checked as certificates elsewhere)
    return out


def _name_or_hex(der: bytes) -> str:
    try:
        return name_text(der)
    except (ValueError, IndexError):
        return der.hex()


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def check_crl(path: str, ca_path: str, now: float) -> tuple[str | None, list[str], float | None]:
    """-> (why `path` cannot be put in force or None, warnings, the earliest nextUpdate in it)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return "no such file", [], None
    except IsADirectoryError:
        return "is a directory", [], None
    except OSError as e:
        return f"cannot be read ({e.strerror})", [], None
    try:
        blocks = _pem_blocks(data, b"X509 CRL")
    except (binascii.Error, ValueError):
        return "a PEM block that is not base64", [], None
    if not blocks:
        return "holds no PEM CRL (-----BEGIN X509 CRL-----)", [], None
    try:
        ca_data = open(ca_path, "rb").read() if ca_path else b""
    except OSError:
        ca_data = b""                   # (tls_client_ca's own error is said at its key)
    cas = cert_subjects(ca_data)
    crls, nexts = [], []
    for n, der in enumerate(blocks, 1):
        try:
            c = parse_crl(der)
        except (ValueError, IndexError, UnicodeDecodeError):
            return f"CRL #{n} is not a DER X.509 CRL (RFC 5280 §5)", [], None
        who = f"CRL #{n} (issuer {c['name']})"
        if cas and c["issuer"] not in cas:
            return f"{who} is not issued by a certificate of tls_client_ca {ca_path}", [], None
        if c["next_update"] is not None and c["next_update"] <= now:
            return (f"{who} expired: its nextUpdate was {_utc(c['next_update'])}; with it OpenSSL refuses every "
                    "client certificate ('CRL has expired'): fetch a current one", [], None)
        if c["this_update"] > now:
            return (f"{who} is not valid yet: its thisUpdate is {_utc(c['this_update'])} (is the clock right?)",
                    [], None)
        crls.append(c["issuer"])
        if c["next_update"] is not None:
            nexts.append(c["next_update"])
    try:                                # what OpenSSL itself makes of the file (it reads the PEM again)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=path)
    except (ssl.SSLError, ValueError) as e:
        return f"OpenSSL cannot load it ({e})", [], None
    warnings = [f"no CRL for {_name_or_hex(s)} of tls_client_ca: every client certificate it issues is refused "
                "('unable to get certificate CRL')" for s in dict.fromkeys(cas) if s not in crls]
    return None, warnings, min(nexts) if nexts else None


def earliest_next_update(path: str) -> float | None:
    """The earliest nextUpdate of the CRLs in `path` (checked by check_crl before), None if none has one or the
    file changed since into one that does not parse (the context loaded from it then says so at each handshake)."""
    try:
        with open(path, "rb") as f:
            nexts = [parse_crl(der)["next_update"] for der in _pem_blocks(f.read(), b"X509 CRL")]
    except (OSError, ValueError, IndexError):
        return None
    return min((n for n in nexts if n is not None), default=None)


# ---------------------------------------------------------------- refusals at the handshake

class CertRefusals:
    """Handshakes OpenSSL refused for revocation: counted in `stats`, a revoked client logged at most once per
    source (an address; IPv6 by its /64, as the handshake rate's) per LOG_EVERY s (at most MAX_SOURCES sources
    remembered, least recently seen forgotten first), an expired CRL logged at most every LOG_EVERY s."""

    def __init__(self, stats, max_sources: int = MAX_SOURCES):
        self.stats, self.max_sources = stats, max_sources
        self.sources: OrderedDict[str, LogThrottle] = OrderedDict()    # host -> its refusals' lines
        self.expired = LogThrottle(LOG_EVERY)

    def refused(self, host: str, e: BaseException, now: float) -> bool:
        """True if `e` (a failed handshake of `host`) was a revocation refusal, counted and logged here."""
        code = getattr(e, "verify_code", None)
        if code == CERT_REVOKED:
            self.stats["tls_client_revoked"] += 1
            key = source_key(host)
            b = self.sources.get(key)
            if b is None:
                b = self.sources[key] = LogThrottle(LOG_EVERY)
                if len(self.sources) > self.max_sources:
                    self.sources.popitem(last=False)
            else:
                self.sources.move_to_end(key)
            n = b.due(now)
            if n:
                log.warning("TLS client certificate of %s refused: revoked (tls_client_crl); %d refusal(s) from it "
                            "since the last such line", host, n)
            return True
        if code == CRL_HAS_EXPIRED:
            self.stats["tls_client_crl_expired"] += 1
            n = self.expired.due(now)
            if n:
                log.error("TLS handshake refused: tls_client_crl has expired (its nextUpdate passed): every client "
                          "certificate is refused until a current CRL is loaded (telfilter ctl reload accounts); "
                          "%d refusal(s) since the last such line (the last from %s)", n, host)
            return True
        return False
