"""CSV import/export for the five list kinds (a user-facing contract; UTF-8, header row).

    dnc.csv        number,channel                      channel S, V or SV; empty = SV
    senders.csv    sender,owner,category,valid_from,valid_to,accounts
                   category QC|CSKH; dates YYYY-MM-DD inclusive or empty; accounts space-separated
    blacklist.csv  kind,value                          kind number|domain|ip|cidr
                   ip = one IPv4/IPv6 address, cidr = a network (192.0.2.0/24, 2001:db8::/32)
    consent.csv    owner,number
    mlexempt.csv   number,valid_to,note                valid_to required, at most 366 days ahead (mlexempt.py)

Every bad row is reported with its physical line number (the header is line 1) and why;
the good rows are returned for import.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from ..csvcell import writer
from ..textnorm import DOMAIN_MAX
from ..numbers import format_number, is_shortcode, normalise_number, normalise_sender_id, subscriber_problem
from ..urlhost import link_host
from .csvhints import header_hint, not_utf8
from .ipranges import parse_cidr, parse_ip, url_host_if_ip

HEADERS = {
    "dnc": ["number", "channel"],
    "senders": ["sender", "owner", "category", "valid_from", "valid_to", "accounts"],
    "blacklist": ["kind", "value"],
    "consent": ["owner", "number"],
    "mlexempt": ["number", "valid_to", "note"],
}
KINDS = tuple(HEADERS)
CHANNELS = {"S": "S", "V": "V", "SV": "SV", "VS": "SV", "": "SV"}
_DOMAIN_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class SenderEntry:
    sender: str                 # as written (display); matched through its key
    owner: str
    category: str               # "QC" | "CSKH"
    valid_from: date | None
    valid_to: date | None
    accounts: frozenset         # empty = any account


@dataclass
class RowError:
    line: int
    message: str
    count: int = 1                  # bad rows it stands for (the last one past MAX_ROW_ERRORS counts the rest)
    owner_clashes: int = 0          # of those, rows registering a sender to a second owner (refuse the whole import)

    def __str__(self):
        return f"line {self.line}: {self.message}"


ALNUM_SENDER_MAX = 11      # characters of an alphanumeric sender ID (GSM 03.40 TP-OA; Vietnam's brandnames)
SYSTEM_ID_MAX = 15         # characters of an SMPP system_id (16 octets with its NUL)


class CsvError(Exception):
    pass


def _number(v: str) -> int:
    n = normalise_number(v)
    if n is None:
        raise ValueError(f"not a phone number: {v!r}")
    return n


def _subscriber(v: str, strict: bool = True) -> int:
    """A DNC or consent entry: a subscriber's number, never a short code (a DNC registration is
    made from a phone; "0912" is a truncated number, not a subscriber)."""
    n = _number(v)
    if is_shortcode(n):
        raise ValueError(f"not a subscriber number (a short code or a truncated number): {v!r}")
    why = subscriber_problem(n) if strict else None
    if why:
        raise ValueError(f"not a subscriber number: {v!r}: {why}")
    return n


def parse_channel(v: str) -> str:
    c = CHANNELS.get(v.strip().upper())
    if c is None:
        raise ValueError(f"channel must be S, V or SV (empty = SV), got {v!r}")
    return c


def parse_domain(v: str) -> str:
    d = v.strip().lower().rstrip(".")
    if d.startswith(("http://", "https://")):
        d = link_host(d).rstrip(".")            # (`https://phish.example?x=1`: its host, as a browser reads it)
    if d.startswith("*."):
        d = d[2:]
    try:
        d = d.encode("idna").decode("ascii") if not d.isascii() else d
    except UnicodeError:
        raise ValueError(f"not a domain: {v!r}") from None
    if "." not in d or not _DOMAIN_RE.fullmatch(d):      # fullmatch: `$` alone lets a final "\n" through
        raise ValueError(f"not a domain: {v!r}")
    if len(d) > DOMAIN_MAX:          # DNS: a longer name cannot exist, and rbldnsd drops it from the zone
        raise ValueError(f"not a domain: {len(d)} characters, DNS names have at most {DOMAIN_MAX}: {v[:40]!r}…")
    return d


def _date(v: str, field: str) -> date | None:
    v = v.strip()
    if not v:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        raise ValueError(f"{field} must be YYYY-MM-DD, got {v!r}")
    try:
        return date.fromisoformat(v)
    except ValueError as e:
        raise ValueError(f"{field}: {e}") from None


def _latin1(s: str) -> bool:
    """Whether `s` fits SMPP's octet strings as the proxy reads them (Latin-1: one octet a character)."""
    return all(ord(c) < 256 for c in s)


def parse_row(kind: str, row: list[str], strict: bool = True, now=None):
    """One CSV row -> a typed record, or ValueError with the reason. `strict=False` (a snapshot's rows, the
    value a removal names) leaves out the checks added after rows could be stored without them: whole subscriber
    numbers, an alphanumeric sender's length, the accounts' form (a data dir saved before them still loads, and
    what it holds can still be removed). `now`: the day an mlexempt row is checked against (ListStore.today)."""
    if kind == "dnc":
        if not row[0].strip():
            raise ValueError("empty number")
        return (_subscriber(row[0], strict), parse_channel(row[1]))
    if kind == "senders":
        sender, owner, cat, vf, vt, accts = (c.strip() for c in row)
        if not sender:
            raise ValueError("empty sender")
        if len(sender) > 32:
            raise ValueError(f"sender longer than 32 characters: {sender!r}")
        if strict and len(sender) > ALNUM_SENDER_MAX and any(c.isalpha() for c in sender):
            raise ValueError(f"alphanumeric sender of {len(sender)} characters: {sender!r} (a brandname has at most "
                             f"{ALNUM_SENDER_MAX}: GSM 03.40's alphanumeric originator; no handset would show it)")
        if strict and not _latin1(sender):
            raise ValueError(f"sender {sender!r} has characters outside Latin-1: an SMPP source_addr (octets, read as "
                             "Latin-1) never carries them, so no message would ever match it")
        if not owner:
            raise ValueError("empty owner")
        cat = cat.upper()
        if cat not in ("QC", "CSKH"):
            raise ValueError(f"category must be QC or CSKH, got {row[2]!r}")
        f, t = _date(vf, "valid_from"), _date(vt, "valid_to")
        if f and t and f > t:
            raise ValueError(f"valid_from {vf} is after valid_to {vt}")
        for a in accts.split() if strict else ():
            if "," in a or ";" in a:
                raise ValueError(f"accounts are space-separated ESME system_ids, got {accts!r}")
            if len(a) > SYSTEM_ID_MAX:
                raise ValueError(f"account {a!r} is longer than an SMPP system_id ({SYSTEM_ID_MAX} characters)")
            if not _latin1(a):
                raise ValueError(f"account {a!r} has characters outside Latin-1: no SMPP bind carries them")
        return SenderEntry(sender, owner, cat, f, t, frozenset(accts.split()))
    if kind == "blacklist":
        k, v = row[0].strip().lower(), row[1].strip()
        if k == "number":
            return ("number", _number(v))
        if k == "domain":
            try:                    # an address (`domain,http://192.0.2.7/`) lists the address, as `lists add` does:
                return ("ip", parse_ip(url_host_if_ip(v)))      # never a "domain" no DNS name can be
            except ValueError:
                return ("domain", parse_domain(v))
        if k in ("ip", "cidr"):           # -> ("ip", (family, first, last))
            return ("ip", parse_ip(url_host_if_ip(v)) if k == "ip" else parse_cidr(v))
        raise ValueError(f"kind must be number, domain, ip or cidr, got {row[0]!r}")
    if kind == "consent":
        owner = row[0].strip()
        if not owner:
            raise ValueError("empty owner")
        return (owner, _subscriber(row[1], strict))
    if kind == "mlexempt":
        from .mlexempt import parse_row as mlexempt_row     # (it imports this module: read here, not at its top)
        return mlexempt_row(row, strict, now)
    raise CsvError(f"unknown list kind {kind!r}")


MAX_ROW_ERRORS = 1000        # bad rows reported one by one; past this they are counted in one last line


def read_csv(kind: str, data: bytes, name: str = "<csv>", now=None):
    """Parse a whole CSV file. Returns (records, errors). A bad header is fatal (CsvError). `now`: as parse_row's."""
    records, errors = [], []
    for item in iter_csv(kind, data, name, now=now):
        (errors if isinstance(item, RowError) else records).append(item)
    return records, errors


def iter_csv(kind: str, data: bytes, name: str = "<csv>", on_progress=None, lines: bool = False,
             now=None):
    """The records of a CSV file (with `lines`, each as (its line, the record); a senders row repeating a
    registration of an earlier row as (its line, None)), and a RowError for each bad row
    (at most MAX_ROW_ERRORS, then one that counts the rest), in file order. The bytes are decoded as they are read
    (a 10M-row file is never held as text too). A bad header is fatal (CsvError)."""
    if kind not in HEADERS:
        raise CsvError(f"unknown list kind {kind!r}; one of {', '.join(KINDS)}")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 4 and (data[1] == data[3] == 0 or data[0] == data[2] == 0)):
        raise CsvError(f"{name}: the file is UTF-16 (a byte-order mark or NUL bytes between its characters); "
                       "save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(stream, strict=True)
    want = HEADERS[kind]
    seen: dict = {}                   # senders: sender key -> [(line, entry)] of its rows taken so far
    bad, last_bad, clashes = 0, 0, 0
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError(f"{name}: empty file, expected header {','.join(want)}") from None
    except csv.Error as e:
        raise CsvError(f"{name}:1: {e}") from None
    if [h.strip().lower() for h in header] != want:
        got = ",".join(header).encode("utf-8", "backslashreplace").decode("utf-8")
        raise CsvError(f"{name}:1: header must be {','.join(want)}, got {got!r}{header_hint(header, want)}")
    line = reader.line_num

    def error(at, why, clash=False):
        nonlocal bad, last_bad, clashes
        bad += 1
        last_bad = at
        if bad <= MAX_ROW_ERRORS:
            return RowError(at, why, owner_clashes=int(clash))
        clashes += clash
        return None

    while True:
        start = line + 1
        if on_progress is not None and not start & 0xFFFF:
            on_progress(stream.buffer.tell())          # bytes read so far (a progress bar on big files)
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            err = error(start, f"CSV syntax: {e}")
            if err:
                yield err
            line = reader.line_num
            continue
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        why = None
        if any("\udc80" <= ch <= "\udcff" for c in row for ch in c):
            why = not_utf8(row, want)
        elif len(row) != len(want):
            why = f"expected {len(want)} columns ({','.join(want)}), got {len(row)}"
        else:
            try:
                rec = parse_row(kind, row, now=now)
            except ValueError as e:
                why = str(e)
        clash = False
        if why is None and kind == "senders":
            firsts = seen.setdefault(sender_entry_key(rec), [])
            why, seen_as = _against_earlier_rows(firsts, rec, name)
            if seen_as == "again":          # the same registration again: adds nothing, but is a good row
                if lines:                   # (counted in `imported`, as a DNC number given twice is)
                    yield start, None
                continue
            clash = seen_as == "owner"
            if why is None:
                firsts.append((start, rec))
        if why is not None:
            err = error(start, why, clash)
            if err:
                yield err
            continue
        yield (start, rec) if lines else rec
    if bad > MAX_ROW_ERRORS:
        yield RowError(last_bad, f"... and {bad - MAX_ROW_ERRORS} more bad rows (the first {MAX_ROW_ERRORS} are "
                                 "listed above; the last is on this line)", bad - MAX_ROW_ERRORS, clashes)


def _against_earlier_rows(firsts, rec, name):
    """A registry row against the rows of its sender taken before it: (None, "again") the same registration
    again, (None, None) it stands beside them, (why, "owner") it registers the sender to another owner on dates one
    of them covers too, (why, None) it would replace one (the same owner, dates and category, other accounts).

    One owner per sender on any date: two owners on overlapping dates (the same dates, one period inside the
    other, one open-ended) left checks to read whichever row came first, for the caps, consent and ad rules. The
    same owner may hold overlapping registrations (a renewal granted before the old one ends, QC beside CSKH):
    on a date the entries valid then stand together, their categories and accounts added up (context.py)."""
    for at, f in firsts:
        if owner_fold(f.owner) != owner_fold(rec.owner):
            both = period_overlap(f, rec)
            if both is not None:
                return owner_clash_message(rec, f, f"on {name}:{at}", both), "owner"
        elif (f.valid_from, f.valid_to) == (rec.valid_from, rec.valid_to) and f.category == rec.category:
            if f.accounts == rec.accounts:
                return None, "again"
            return f"sender {rec.sender!r} for the same dates is already on line {at} with another list of accounts", \
                None
    return None, None


def bad_rows(errors) -> int:
    """How many bad rows `errors` stand for."""
    return sum(getattr(e, "count", 1) for e in errors)


def write_csv(kind: str, rows, out) -> int:
    w = writer(out)                  # a bare CR in a value quoted (csvcell)
    w.writerow(HEADERS[kind])
    n = 0
    for r in rows:
        w.writerow(r)
        n += 1
    return n


def sender_entry_row(e: SenderEntry) -> list[str]:
    return [e.sender, e.owner, e.category, e.valid_from.isoformat() if e.valid_from else "",
            e.valid_to.isoformat() if e.valid_to else "", " ".join(sorted(e.accounts))]


_OWNERS: dict = {}              # owner as written -> owner_fold(owner) (bounded: cleared whole when full)
_OWNERS_MAX = 65536


def owner_fold(owner: str) -> str:
    """One advertiser however its name is written: casefolded, Unicode NFC, runs of whitespace made
    one space, no blanks at the ends. The registry and consent lists keep owners as written, and one
    advertiser is often written several ways across rows and files (a Vietnamese name composed in
    one export and decomposed, NFD, in another; a doubled space): its consent and its
    per-advertiser caps (Decree 91: 3 ads a day per recipient) must see one advertiser. An ASCII
    name with single spaces folds to `owner.casefold()`, as before, so saved keys keep matching."""
    k = _OWNERS.get(owner)
    if k is None:
        f = owner.casefold()
        if not f.isascii():
            f = unicodedata.normalize("NFC", unicodedata.normalize("NFD", f).casefold())
        k = " ".join(f.split())
        if len(_OWNERS) >= _OWNERS_MAX:
            _OWNERS.clear()
        _OWNERS[owner] = k
    return k


def same_period_clash(a: SenderEntry, b: SenderEntry) -> bool:
    """Whether registrations `a` and `b` of one sender cannot both stand: the same dates and either the same
    category (one registration) or another owner (one brandname, one advertiser at a time). A brand may hold QC
    and CSKH both, granted the same day: those two stand side by side."""
    return (a.valid_from, a.valid_to) == (b.valid_from, b.valid_to) and (
        a.category == b.category or owner_fold(a.owner) != owner_fold(b.owner))


def period_overlap(a: SenderEntry, b: SenderEntry):
    """(first, last) day both registrations are valid (None: open on that side), or None when they share none."""
    first = max((d for d in (a.valid_from, b.valid_from) if d), default=None)
    last = min((d for d in (a.valid_to, b.valid_to) if d), default=None)
    return None if first and last and first > last else (first, last)


def period_text(first, last) -> str:
    return f"{first or '(open)'}..{last or '(open)'}" if first or last else "every date"


def owner_clash(entries, e: SenderEntry):
    """The first of `entries` (one sender's stored registrations) that `e` cannot be added beside: another owner's
    on dates overlapping e's, other than e's own dates (those `e` replaces, Lists.add_sender: an edit of who holds
    the brand then)."""
    for x in entries:
        if owner_fold(x.owner) != owner_fold(e.owner) and (x.valid_from, x.valid_to) != (e.valid_from, e.valid_to) \
                and period_overlap(x, e) is not None:
            return x
    return None


def owner_clash_message(e: SenderEntry, other: SenderEntry, where: str, both=None) -> str:
    """Why `e` is refused beside `other`, another owner's registration of its sender (`where`: "on FILE:LINE")."""
    both = both or period_overlap(e, other)
    return (f"sender {e.sender!r} registered to {e.owner!r} for {period_text(e.valid_from, e.valid_to)} and to "
            f"{other.owner!r} for {period_text(other.valid_from, other.valid_to)} {where}: both hold it "
            f"{period_text(*both)} (a sender has one owner at a time: end one registration before the other starts)")


def sender_entry_key(e: SenderEntry):
    n = normalise_number(e.sender)
    return n if n is not None else normalise_sender_id(e.sender)


__all__ = ["read_csv", "iter_csv", "bad_rows", "write_csv", "SenderEntry", "RowError", "CsvError", "KINDS", "HEADERS",
           "parse_row", "parse_channel", "parse_domain", "format_number", "sender_entry_row", "sender_entry_key",
           "owner_fold", "same_period_clash", "period_overlap", "owner_clash", "owner_clash_message"]
