"""One-entry edits of the lists (`lists add|remove`, `ctl lists`, imports): a value as a typed record, and
adding, clearing and removing in a Lists. Pure: no files."""
from __future__ import annotations

import re

from pyroaring import BitMap64

from ..numbers import normalise_number, normalise_sender_id, vn_whole
from .csvio import (KINDS, CsvError, _date, _subscriber, owner_clash, owner_clash_message, parse_domain, parse_row,
                    sender_entry_key)
from .mlexempt import HORIZON_DAYS, MAX_ENTRIES
from .ipranges import IpRanges, parse_cidr, parse_ip, url_host_if_ip
from .sets import Lists, owner_fold


_NUMBER_RANGE = re.compile(r"[+\d\s().-]*\d[\d\s().-]*[xX*?]+")


def record(kind, value, channel, extra, now=None):
    if kind == "dnc":
        return parse_row("dnc", [value, channel])
    if kind == "senders":
        row = [value] + list(extra or [])
        row += [""] * (6 - len(row))
        if len(row) != 6 or not row[1]:
            raise ValueError("senders needs SENDER --owner OWNER --category QC|CSKH [--valid-from] [--valid-to] [--accounts]")
        if not row[2].strip():         # (read as a CSV row's empty cell: "category must be QC or CSKH, got ''")
            raise ValueError("senders needs --category (QC or CSKH)")
        return parse_row("senders", row)
    if kind == "blacklist":
        value = url_host_if_ip(value)
        if _is_cidr(value) or _is_ip(value) or _IPV4_SHAPE.fullmatch(value) and not _vn_dotted(value):
            return parse_row("blacklist", ["cidr" if "/" in value else "ip", value])
        if normalise_number(value) is not None:
            return parse_row("blacklist", ["number", value])
        if _NUMBER_RANGE.fullmatch(value):        # "0901555*", "09xx": the range a subscriber quoted
            raise ValueError(f"not a phone number: {value!r}: the blacklist holds whole numbers, no prefixes or "
                             "wildcards")
        if "." not in value and not any(ch.isalpha() for ch in value):
            # no letter and no dot: meant as a number (a digit missing or one too many), never a domain, which
            # the error said
            raise ValueError(f"not a phone number: {value!r}")
        return parse_row("blacklist", ["domain", value])
    if kind == "consent":
        if not extra or not extra[0]:
            raise ValueError("consent needs NUMBER --owner OWNER")
        return parse_row("consent", [extra[0], value])
    if kind == "mlexempt":
        valid_to, note = (list(extra or []) + ["", ""])[:2]
        if not valid_to.strip():
            raise ValueError(f"mlexempt needs NUMBER --valid-to YYYY-MM-DD (required: at most {HORIZON_DAYS} days "
                             "ahead) [--note TEXT]")
        return parse_row("mlexempt", [value, valid_to, note], now=now)
    raise CsvError(f"unknown list kind {kind!r}; one of {', '.join(KINDS)}")


def as_exported(kind: str, r) -> str:
    """Record `r` as `lists export` writes it: the CSV line a value given in any form was stored as (a number in
    E.164, a link's address as kind ip, a Unicode domain in its IDNA form)."""
    import io

    from .csvio import write_csv
    L = Lists()
    add(L, kind, r)
    out = io.StringIO()
    write_csv(kind, L.rows(kind), out)
    return out.getvalue().splitlines()[1]


def _is_cidr(v: str) -> bool:
    """An address/prefix: anything with a '/' but a URL (whose '/' is a path's). A mistyped network stays a
    network, and its error says so (it must never read as a phone number)."""
    return "/" in v and "://" not in v


# four or more dot-separated groups of 1-3 digits: an IPv4 address, mistyped or not. Never a phone number with dots
# (`300.1.1.1` was blacklisted as the number 300111, `1.2.3.4.5` as 12345, and the address meant was not)
_IPV4_SHAPE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3,}")


def _vn_dotted(v: str) -> bool:
    """A Vietnamese number in dotted groups (091.234.56.78): begins with the trunk 0 and a digit, as no IPv4 address
    is written, and is a whole subscriber number."""
    n = normalise_number(v) if v[:1] == "0" and v[1:2] != "." else None
    return n is not None and vn_whole(n)


def _is_ip(v: str) -> bool:
    try:
        parse_ip(v)
        return True
    except ValueError:
        return False


class ListFull(ValueError):
    """An add past a list's stated bound (mlexempt.MAX_ENTRIES): nothing was changed."""


class OwnerClash(ValueError):
    """A registration of a sender to another owner than the one it has on some of the same dates."""


def add(L: Lists, kind: str, r):
    """Add record `r`; OwnerClash (nothing changed) for a sender registration that would give its sender a
    second owner on some date (another owner's for the very same dates is replaced: Lists.add_sender). Returns the
    records `r` replaced (a registration for the same dates, an mlexempt renewal's row), other than `r` itself."""
    if kind == "dnc":
        L.add_dnc(*r)
    elif kind == "senders":
        other = owner_clash(L.sender_entries(sender_entry_key(r)), r)
        if other is not None:
            raise OwnerClash(owner_clash_message(r, other, "in the registry as stored (lists export senders)"))
        L.ads_may_be_barred()           # (another owner for some dates: an ad's consent is to its owner)
        return L.add_sender(r)
    elif kind == "blacklist":
        if r[0] == "ip":
            L.bl_ips.add(*r[1])
        else:
            (L.bl_numbers.add if r[0] == "number" else L.bl_domains.add)(r[1])
    elif kind == "consent":
        L.add_consent(*r)
    elif kind == "mlexempt":
        if len(L.ml_exempt) >= MAX_ENTRIES and r.number not in L.ml_exempt:
            raise ListFull(f"the mlexempt list holds its most, {MAX_ENTRIES} numbers in force: remove rows no longer "
                           "needed first (lists export mlexempt; expired rows have left it)")
        old = L.ml_exempt.get(r.number)
        L.add_ml_exemption(r)
        return (old,) if old is not None and old != r else ()
    return ()


def clear(L: Lists, kind: str) -> None:
    if kind == "dnc":
        L.dnc_s, L.dnc_v = BitMap64(), BitMap64()
        L.ads_may_be_barred()
    elif kind == "senders":
        L.senders = {}
        L.ads_may_be_barred()           # (an ad's owner, whose consent lets it go: sets.py)
    elif kind == "blacklist":
        L.bl_numbers, L.bl_domains, L.bl_ips = BitMap64(), set(), IpRanges()
    elif kind == "consent":
        L.consent, L.owner_names = {}, {}
        L.ads_may_be_barred()
    elif kind == "mlexempt":
        L.ml_exempt = {}


def remove(L: Lists, kind, value, channel, extra) -> bool:
    if kind == "dnc":
        n, ch = parse_row("dnc", [value, channel], strict=False)      # (what an older import stored too)
        found = any(n in b for c, b in (("S", L.dnc_s), ("V", L.dnc_v)) if c in ch)
        L.remove_dnc(n, ch)
        return found
    if kind == "senders":
        L.ads_may_be_barred()
        return _remove_senders(L, value, extra)
    if kind == "blacklist":
        value = url_host_if_ip(value)
        if _is_cidr(value) or _is_ip(value):
            # (strict=False: a network broader than a /8 an earlier version stored must be removable)
            found = L.bl_ips.remove(*(parse_cidr(value, strict=False) if "/" in value else parse_ip(value)))
            stored_as_domain = value.strip().lower() in L.bl_domains     # (a `domain` row an import took as one)
            L.bl_domains.discard(value.strip().lower())
            return found or stored_as_domain
        n = normalise_number(value)
        if n is not None:
            found = n in L.bl_numbers
            L.bl_numbers.discard(n)
            return found
        d = parse_domain(value)
        found = d in L.bl_domains
        L.bl_domains.discard(d)
        return found
    if kind == "consent":
        if not extra or not extra[0]:
            raise ValueError("consent needs NUMBER --owner OWNER")
        n = parse_row("consent", [extra[0], value], strict=False)[1]
        k = owner_fold(extra[0])
        bm = L.consent.get(k)
        if bm is None or n not in bm:
            return False
        bm.discard(n)
        L.ads_may_be_barred()
        if not bm:              # its last number: the advertiser goes too (stats counted it; a new spelling is kept)
            del L.consent[k]
            L.owner_names.pop(k, None)
        return True
    if kind == "mlexempt":
        if extra and any(x.strip() for x in extra):
            raise ValueError("mlexempt: remove takes the NUMBER alone (its one row goes, whatever its date and note)")
        n = _subscriber(value, strict=False)
        return L.ml_exempt.pop(n, None) is not None
    raise CsvError(f"unknown list kind {kind!r}")


def _remove_senders(L: Lists, value: str, extra):
    """`lists remove senders SENDER`: every registration of SENDER; with any of --owner, --category, --valid-from,
    --valid-to, --accounts, only those that match each one given (they were ignored: taking out a brand's expired QC
    period took its CSKH registration, the bank's OTPs, with it). The registrations removed, else False."""
    n = normalise_number(value)
    k = n if n is not None else normalise_sender_id(value)
    owner, category, vfrom, vto, accounts = (list(extra or []) + [""] * 5)[:5]
    tests = []
    if owner:
        tests.append(lambda e: owner_fold(e.owner) == owner_fold(owner))
    if category:
        if category.strip().upper() not in ("QC", "CSKH"):
            raise ValueError(f"category must be QC or CSKH, got {category!r}")
        tests.append(lambda e: e.category == category.strip().upper())
    for field, v in (("valid_from", vfrom), ("valid_to", vto)):
        if v:
            d = _date(v, field)
            tests.append(lambda e, field=field, d=d: getattr(e, field) == d)
    if accounts:
        tests.append(lambda e: e.accounts == frozenset(accounts.split()))
    entries = L.senders.get(k, ())
    keep = tuple(e for e in entries if not all(t(e) for t in tests))
    if len(keep) == len(entries):
        return False
    if keep:
        L.senders[k] = keep
    else:
        del L.senders[k]
    return tuple(e for e in entries if e not in keep)
