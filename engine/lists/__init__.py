"""DNC, sender registry, blacklists and consent: the sets every check reads.

Theory of operation: `Lists` is the in-memory view checks read (roaring bitmaps of E.164
ints, dicts for names). `ListStore` owns a data directory: one verified snapshot per list
kind plus an append-only delta journal for the DNC changes 5656 commands make between
snapshots. Every write builds the complete new state first and swaps it in with an atomic
rename, so a list is never half-written; a corrupt snapshot is refused and the previous good
generation (`.prev`) is used instead, with a warning.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
from pyroaring import BitMap64

from ..numbers import format_number, normalise_number, normalise_sender_id
from ..textnorm import domain_suffixes
from .ipranges import IpRanges, parse_cidr, parse_ip
from .csvio import (KINDS, CsvError, RowError, SenderEntry, parse_channel, parse_domain,
                    parse_row, read_csv, sender_entry_key, sender_entry_row, write_csv)
from .journal import (append_line, flocked, journal_header, keep_rejected, read_journal, read_journal_gen,
                      replace_with_tail)
from .snapshot import SnapshotError, install_snapshot, prepare_snapshot, read_snapshot

__all__ = ["Lists", "ListStore", "SenderEntry", "SnapshotError", "CsvError", "ImportRefused", "RowError", "KINDS"]


@dataclass
class Lists:
    dnc_s: BitMap64 = field(default_factory=BitMap64)
    dnc_v: BitMap64 = field(default_factory=BitMap64)
    senders: dict = field(default_factory=dict)        # key -> tuple[SenderEntry, ...]
    bl_numbers: BitMap64 = field(default_factory=BitMap64)
    bl_domains: set = field(default_factory=set)
    bl_ips: IpRanges = field(default_factory=IpRanges)  # kinds ip and cidr (the published email-spam list)
    consent: dict = field(default_factory=dict)        # owner casefold -> BitMap64
    owner_names: dict = field(default_factory=dict)    # owner casefold -> owner as written
    # the DNC journal as far as applied here: (generation, byte offset), see journal.py
    journal_mark: tuple | None = field(default=None, compare=False)
    journal_bad: list = field(default_factory=list, compare=False, repr=False)

    # --- reads (hot path) ---
    def in_dnc(self, number: int | None, channel: str) -> bool:
        if number is None:
            return False
        return number in (self.dnc_s if channel == "S" else self.dnc_v)

    def sender_entries(self, key) -> tuple:
        return self.senders.get(key, ())

    def number_blacklisted(self, number: int | None) -> bool:
        return number is not None and number in self.bl_numbers

    def domain_blacklisted(self, hosts) -> str | None:
        """The listed domain a host falls under (itself or a parent), or None."""
        if not self.bl_domains:
            return None
        for h in hosts:
            for suf in domain_suffixes(h):
                if suf in self.bl_domains:
                    return suf
        return None

    def has_consent(self, owner: str | None, number: int | None) -> bool:
        if owner is None or number is None:
            return False
        bm = self.consent.get(owner.casefold())
        return bm is not None and number in bm

    # --- mutations (used by the store; callers hold the only reference) ---
    def add_dnc(self, number: int, channel: str) -> None:
        if "S" in channel:
            self.dnc_s.add(number)
        if "V" in channel:
            self.dnc_v.add(number)

    def remove_dnc(self, number: int, channel: str) -> None:
        if "S" in channel:
            self.dnc_s.discard(number)
        if "V" in channel:
            self.dnc_v.discard(number)

    def add_sender(self, e: SenderEntry) -> None:
        k = sender_entry_key(e)
        old = [x for x in self.senders.get(k, ()) if (x.valid_from, x.valid_to) != (e.valid_from, e.valid_to)]
        self.senders[k] = tuple(old + [e])

    def add_consent(self, owner: str, number: int) -> None:
        k = owner.casefold()
        self.owner_names.setdefault(k, owner)
        self.consent.setdefault(k, BitMap64()).add(number)

    def stats(self) -> dict:
        both = self.dnc_s & self.dnc_v
        return {
            "dnc": {"S_only": len(self.dnc_s) - len(both), "V_only": len(self.dnc_v) - len(both),
                    "SV": len(both), "total": len(self.dnc_s | self.dnc_v)},
            "senders": {"names": len(self.senders),
                        "entries": sum(len(v) for v in self.senders.values()),
                        "QC": sum(1 for v in self.senders.values() for e in v if e.category == "QC"),
                        "CSKH": sum(1 for v in self.senders.values() for e in v if e.category == "CSKH")},
            "blacklist": {"numbers": len(self.bl_numbers), "domains": len(self.bl_domains),
                          "ip_ranges": len(self.bl_ips)},
            "consent": {"owners": len(self.consent), "pairs": sum(len(b) for b in self.consent.values())},
        }

    # --- export rows in the CSV contract ---
    def rows(self, kind: str):
        if kind == "dnc":
            both = self.dnc_s & self.dnc_v
            allnum = self.dnc_s | self.dnc_v
            for n in allnum:
                yield [format_number(n), "SV" if n in both else ("S" if n in self.dnc_s else "V")]
        elif kind == "senders":
            for k in sorted(self.senders, key=str):
                for e in sorted(self.senders[k], key=lambda e: (str(e.valid_from), str(e.valid_to))):
                    yield sender_entry_row(e)
        elif kind == "blacklist":
            for n in self.bl_numbers:
                yield ["number", format_number(n)]
            for d in sorted(self.bl_domains):
                yield ["domain", d]
            for k, v in self.bl_ips.cidrs():
                yield [k, v]
        elif kind == "consent":
            for k in sorted(self.consent):
                for n in self.consent[k]:
                    yield [self.owner_names.get(k, k), format_number(n)]
        else:
            raise CsvError(f"unknown list kind {kind!r}")


# ---------------------------------------------------------------- persistence

def _ser_bitmap(b: BitMap64) -> bytes:
    b.run_optimize()
    return b.serialize()


def _encode(kind: str, L: Lists) -> dict[str, bytes]:
    if kind == "dnc":
        return {"S": _ser_bitmap(L.dnc_s), "V": _ser_bitmap(L.dnc_v)}
    if kind == "senders":
        rows = [sender_entry_row(e) for v in L.senders.values() for e in v]
        return {"rows": msgpack.packb(rows)}
    if kind == "blacklist":
        v4, v6 = L.bl_ips.to_bytes()
        return {"numbers": _ser_bitmap(L.bl_numbers), "domains": msgpack.packb(sorted(L.bl_domains)),
                "ip4": v4, "ip6": v6}
    if kind == "consent":
        out = {"owners": msgpack.packb({k: L.owner_names.get(k, k) for k in sorted(L.consent)})}
        for k in sorted(L.consent):
            out["o:" + k] = _ser_bitmap(L.consent[k])
        return out
    raise CsvError(f"unknown list kind {kind!r}")


def _decode(kind: str, secs: dict[str, bytes], L: Lists, path) -> None:
    try:
        if kind == "dnc":
            L.dnc_s, L.dnc_v = BitMap64.deserialize(secs["S"]), BitMap64.deserialize(secs["V"])
        elif kind == "senders":
            L.senders = {}
            for row in msgpack.unpackb(secs["rows"]):
                L.add_sender(parse_row("senders", row))
        elif kind == "blacklist":
            L.bl_numbers = BitMap64.deserialize(secs["numbers"])
            L.bl_domains = set(msgpack.unpackb(secs["domains"]))
            L.bl_ips = IpRanges.from_bytes(secs.get("ip4", b""), secs.get("ip6", b""))   # absent before kinds ip/cidr
        elif kind == "consent":
            L.owner_names = dict(msgpack.unpackb(secs["owners"]))
            L.consent = {k: BitMap64.deserialize(secs["o:" + k]) for k in L.owner_names}
    except Exception as e:      # garbage that passed its CRC: msgpack, pyroaring and parse_row raise several types
        raise SnapshotError(path, f"bad section contents ({e.__class__.__name__}: {e})") from None


class ImportRefused(CsvError):
    """A `--replace` import with bad rows or no rows at all: nothing was changed."""

    def __init__(self, message, errors):
        super().__init__(message)
        self.errors = errors


class ListStore:
    """A data directory of list snapshots. `load()` returns a fresh `Lists`; the write
    operations follow the locking protocol in `journal.py`, so they can run beside `serve`."""

    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir)
        self.warnings: list[str] = []

    def path(self, kind: str) -> Path:
        return self.dir / "lists" / f"{kind}.snap"

    @property
    def delta_path(self) -> Path:
        return self.dir / "lists" / "dnc.delta"

    @property
    def journal_lock(self) -> Path:
        return self.dir / "lists" / "journal.lock"

    @property
    def write_lock(self) -> Path:
        return self.dir / "lists" / "write.lock"

    def snapshot_signature(self) -> tuple:
        """Changes whenever any snapshot is replaced (serve polls it to pick up CLI changes)."""
        sig = []
        for kind in KINDS:
            try:
                st = os.stat(self.path(kind))
                sig.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                sig.append(None)
        return tuple(sig)

    def load(self, strict: bool = False) -> Lists:
        """Load every kind, then the journal. A bad snapshot falls back to `.prev` (warning)
        unless strict."""
        L = Lists()
        self.warnings = []
        mark = None
        for kind in KINDS:
            extra = self._load_kind(kind, L, strict)
            if kind == "dnc" and extra and "journal_gen" in extra:
                mark = (extra["journal_gen"], int(extra.get("journal_offset", 0)))
        if self.delta_path.exists() or self.journal_lock.exists():
            with flocked(self.journal_lock):      # no half-written line from a concurrent append
                j = read_journal(self.delta_path, mark)
        else:
            j = read_journal(self.delta_path, mark)
        self._apply(L, j)
        return L

    def _load_kind(self, kind: str, L: Lists, strict: bool) -> dict | None:
        p = self.path(kind)
        prev = p.with_name(p.name + ".prev")
        if not p.exists() and not prev.exists():
            return None
        try:
            secs, extra = read_snapshot(p, kind)
            _decode(kind, secs, L, p)
            return extra
        except SnapshotError as e:
            if strict:
                raise
            try:
                secs, extra = read_snapshot(prev, kind)
                _decode(kind, secs, L, prev)
            except SnapshotError:
                raise e from None
            msg = f"{e}; using previous good snapshot {prev}"
            if kind == "dnc":
                msg += " (DNC changes folded into the refused generation may be missing: re-import the last DNC file)"
            self.warnings.append(msg)
            return extra

    def _apply(self, L: Lists, j) -> None:
        for op, n, ch in j.ops:
            (L.add_dnc if op == "add" else L.remove_dnc)(n, ch)
        for lineno, _ in j.bad:
            self.warnings.append(f"{self.delta_path}:{lineno}: unreadable DNC journal line "
                                 f"(kept; moved to {self.delta_path.name}.rejected by the next write)")
        L.journal_mark = (j.gen, j.end)
        L.journal_bad = list(L.journal_bad) + j.bad

    def catch_up(self, L: Lists) -> None:
        """Apply journal lines appended since `L` was loaded (serve, after a background reload)."""
        self.warnings = []
        with flocked(self.journal_lock):
            j = read_journal(self.delta_path, L.journal_mark)
        self._apply(L, j)

    def append_delta(self, op: str, number: int, channel: str) -> None:
        """Journal one DNC change (5656 command) durably; folded into the snapshot by the next write."""
        append_line(self.delta_path, self.journal_lock, op, number, channel)

    def save(self, L: Lists, kinds=KINDS) -> None:
        """Write `L`'s lists of `kinds`. The journal lines `L` has applied (its mark) are
        folded into the dnc snapshot; lines appended since stay in the journal."""
        with flocked(self.write_lock):
            self._save(L, kinds)

    def _save(self, L: Lists, kinds) -> None:
        (self.dir / "lists").mkdir(parents=True, exist_ok=True)
        mark = L.journal_mark
        staged = []
        for kind in kinds:
            extra = {"journal_gen": mark[0], "journal_offset": mark[1]} if kind == "dnc" and mark else {}
            staged.append((kind, prepare_snapshot(self.path(kind), kind, _encode(kind, L), extra)))
        with flocked(self.journal_lock):
            for kind, tmp in staged:
                install_snapshot(tmp, self.path(kind), kind)
            if "dnc" not in kinds or mark is None or read_journal_gen(self.delta_path) != mark[0]:
                return
            if L.journal_bad:
                rej = keep_rejected(self.delta_path, L.journal_bad)
                for lineno, _ in L.journal_bad:
                    self.warnings.append(f"{self.delta_path}:{lineno}: unreadable DNC journal line moved to {rej}")
                L.journal_bad = []
            gen = secrets.token_hex(8)
            replace_with_tail(self.delta_path, mark[1], gen)
            L.journal_mark = (gen, len(journal_header(gen)))

    def _modify(self, kind: str, change):
        """Read-modify-write one kind under the writer lock; `change(L)` returns False for no change."""
        with flocked(self.write_lock):
            L = self.load(strict=True)
            result = change(L)
            if result is not False:
                self._save(L, (kind,))
            return result

    # --- user operations ---
    def import_csv(self, kind: str, data: bytes, name: str = "<csv>", replace: bool = False,
                   allow_partial: bool = False):
        """Import good rows; returns (count, errors). Raises CsvError on a fatal file error and
        ImportRefused when `replace` would install a list with errors or no rows (unless
        `allow_partial`)."""
        records, errors = read_csv(kind, data, name)
        if replace and not allow_partial and (errors or not records):
            why = f"{len(errors)} bad row(s)" if errors else "no rows"
            raise ImportRefused(f"{name}: --replace refused, {kind} list unchanged: {why} "
                                f"(fix the file, or pass --allow-partial to replace with the good rows only)", errors)
        if not records and not replace:
            return 0, errors

        def change(L):
            if replace:
                _clear(L, kind)
            for r in records:
                _add(L, kind, r)
        self._modify(kind, change)
        return len(records), errors

    def add(self, kind: str, value: str, channel: str = "SV", extra: list[str] | None = None):
        r = _record(kind, value, channel, extra)
        self._modify(kind, lambda L: _add(L, kind, r))

    def remove(self, kind: str, value: str, channel: str = "SV", extra: list[str] | None = None) -> bool:
        return self._modify(kind, lambda L: _remove(L, kind, value, channel, extra))

    def export(self, kind: str, out) -> int:
        return write_csv(kind, self.load().rows(kind), out)


def _record(kind, value, channel, extra):
    if kind == "dnc":
        return parse_row("dnc", [value, channel])
    if kind == "senders":
        row = [value] + list(extra or [])
        row += [""] * (6 - len(row))
        if len(row) != 6 or not row[1]:
            raise ValueError("senders needs SENDER --owner OWNER --category QC|CSKH [--valid-from] [--valid-to] [--accounts]")
        return parse_row("senders", row)
    if kind == "blacklist":
        if "/" in value or _is_ip(value):
            return parse_row("blacklist", ["cidr" if "/" in value else "ip", value])
        if normalise_number(value) is not None:
            return parse_row("blacklist", ["number", value])
        return parse_row("blacklist", ["domain", value])
    if kind == "consent":
        if not extra or not extra[0]:
            raise ValueError("consent needs NUMBER --owner OWNER")
        return parse_row("consent", [extra[0], value])
    raise CsvError(f"unknown list kind {kind!r}; one of {', '.join(KINDS)}")


def _is_ip(v: str) -> bool:
    try:
        parse_ip(v)
        return True
    except ValueError:
        return False


def _add(L: Lists, kind: str, r) -> None:
    if kind == "dnc":
        L.add_dnc(*r)
    elif kind == "senders":
        L.add_sender(r)
    elif kind == "blacklist":
        if r[0] == "ip":
            L.bl_ips.add(*r[1])
        else:
            (L.bl_numbers.add if r[0] == "number" else L.bl_domains.add)(r[1])
    elif kind == "consent":
        L.add_consent(*r)


def _clear(L: Lists, kind: str) -> None:
    if kind == "dnc":
        L.dnc_s, L.dnc_v = BitMap64(), BitMap64()
    elif kind == "senders":
        L.senders = {}
    elif kind == "blacklist":
        L.bl_numbers, L.bl_domains, L.bl_ips = BitMap64(), set(), IpRanges()
    elif kind == "consent":
        L.consent, L.owner_names = {}, {}


def _remove(L: Lists, kind, value, channel, extra) -> bool:
    if kind == "dnc":
        n, ch = parse_row("dnc", [value, channel])
        found = any(n in b for c, b in (("S", L.dnc_s), ("V", L.dnc_v)) if c in ch)
        L.remove_dnc(n, ch)
        return found
    if kind == "senders":
        n = normalise_number(value)
        k = n if n is not None else normalise_sender_id(value)
        return L.senders.pop(k, None) is not None
    if kind == "blacklist":
        if "/" in value or _is_ip(value):
            return L.bl_ips.remove(*(parse_cidr(value) if "/" in value else parse_ip(value)))
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
        n = parse_row("consent", [extra[0], value])[1]
        bm = L.consent.get(extra[0].strip().casefold())
        if bm is None or n not in bm:
            return False
        bm.discard(n)
        return True
    raise CsvError(f"unknown list kind {kind!r}")
