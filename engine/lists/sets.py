"""`Lists`: the in-memory sets checks read (roaring bitmaps of E.164 ints, dicts for names)."""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from pyroaring import BitMap64

from ..numbers import LEGACY_SERVICE_RANGES, VN_LANDLINE_AREAS, format_number, legacy_service_key
from ..textnorm import domain_suffixes, host_forms
from ..urlhost import host_address
from .csvio import CsvError, SenderEntry, owner_fold, same_period_clash, sender_entry_key, sender_entry_row
from .ipranges import IpRanges
from .mlexempt import MlExemption, expired as mlexempt_expired, row_of as mlexempt_row, today as mlexempt_today


# the fields each list kind is held in: what a reload that finds a kind's file unchanged keeps (its DNC journal mark
# goes with the DNC bitmaps: how far into the journal they have read)
KIND_FIELDS = {"dnc": ("dnc_s", "dnc_v", "journal_mark", "journal_bad", "journal_folded"), "senders": ("senders",),
               "blacklist": ("bl_numbers", "bl_domains", "bl_ips"), "consent": ("consent", "owner_names"),
               "mlexempt": ("ml_exempt",)}
# the DNC changes made one by one (add_dnc, remove_dnc) that a Lists remembers, the last ones: what the SMPP proxy's
# look at the ads scheduled ahead takes (dnc_s_added_since); past them it looks at every ad to a DNC number
DNC_RING = 4096


@dataclass
class Lists:
    dnc_s: BitMap64 = field(default_factory=BitMap64)
    dnc_v: BitMap64 = field(default_factory=BitMap64)
    senders: dict = field(default_factory=dict)        # key -> tuple[SenderEntry, ...]
    bl_numbers: BitMap64 = field(default_factory=BitMap64)
    bl_domains: set = field(default_factory=set)
    bl_ips: IpRanges = field(default_factory=IpRanges)  # kinds ip and cidr (published; links to them: listed_host)
    consent: dict = field(default_factory=dict)        # owner_fold(owner) -> BitMap64
    owner_names: dict = field(default_factory=dict)    # owner_fold(owner) -> owner as first written
    ml_exempt: dict = field(default_factory=dict)      # E.164 int -> MlExemption (mlexempt.py): no ML_SPAM until then
    # the DNC journal as far as applied here: (generation, byte offset), see journal.py
    journal_mark: tuple | None = field(default=None, compare=False)
    journal_bad: list = field(default_factory=list, compare=False, repr=False)
    # the journal's generation before the one the mark is in, when every line of it is applied here (the dnc snapshot
    # read folded it, and the journal read is the one that snapshot began, holding the rest): a 5656 change written
    # there before a compaction is not applied again over a later line (Pipeline.apply_command)
    journal_folded: tuple = field(default=(), compare=False, repr=False)
    # changes made to the DNC lists in memory so far (add_dnc, remove_dnc, an import, a clear; a consent withdrawn
    # or a sender's owner changed in place, ads_may_be_barred): how the SMPP proxy sees that the list changed
    # (smpp_proxy/dnc_cancel.py: ads scheduled ahead to a number that registers are cancelled); a reload's new Lists
    # starts again (the proxy sees another object)
    dnc_changes: int = field(default=0, compare=False, repr=False)
    # the last DNC_RING of them made one by one: change c at slot c % DNC_RING, as (c, the number it added to S, 0
    # for none), 64 KB (made at the first); a change not made so (a bulk one) leaves its slot stale: dnc_s_added_since
    dnc_ring: array | None = field(default=None, compare=False, repr=False)
    # kind -> the identity of the snapshot file it was read from (snapshot.py), None: there was none; a kind read
    # from a previous generation, or not read from files at all, is not there (a reload reads it again)
    sources: dict = field(default_factory=dict, compare=False, repr=False)
    # kind -> when the generation it was read from was written (the snapshot's `created`), as far as known
    created: dict = field(default_factory=dict, compare=False, repr=False)

    def keep_from(self, old: "Lists", kinds) -> None:
        """Take `old`'s lists of `kinds`: the same objects, not copies (a DNC change the loop made to `old` is in
        them), with the identities of their files."""
        for kind in kinds:
            for f in KIND_FIELDS[kind]:
                setattr(self, f, getattr(old, f))
            for mine, theirs in ((self.sources, old.sources), (self.created, old.created)):
                mine.pop(kind, None)
                if kind in theirs:
                    mine[kind] = theirs[kind]

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
        found = self.listed_host(hosts)
        return found[2] if found is not None else None

    def listed_host(self, hosts) -> tuple | None:
        """(the first host under a listed domain, the form it was found as, that domain), or None. A host that is
        an address as a browser reads a link's (urlhost.host_address: `http://192.0.2.8/…`, and `3221225992`,
        `0xC0000208`, `0300.0.02.010`, `192.0.520`, `[::ffff:192.0.2.8]` alike; `[2001:db8::9]`) is looked up in
        the blacklist's addresses and networks, where `lists add blacklist http://192.0.2.8/` and an `ip`, `cidr` or
        (naming an address) `domain` row list it: (host, None, the address) when it is there; never as a domain (nor
        is a host that ends in a number but is no address: no browser opens it)."""
        ips = self.bl_ips if len(self.bl_ips) else None
        if not self.bl_domains and ips is None:
            return None
        for h in hosts:
            last = h[-1]
            if "0" <= last <= "9" or last == "]" or "0x" in h:     # (cheap: a name rarely ends so or has a 0x)
                try:
                    a = host_address(h)
                except ValueError:          # no address, yet no name either: no browser opens it
                    continue
                if a is not None:
                    if ips is not None and a in ips:
                        return h, None, str(a)
                    continue
            # a link written in Unicode ("https://ví-dụ.vn") is looked up as listed: its IDNA form (was never found),
            # and, drawn with look-alike letters of a listed ASCII name ("vсb-vn.com", a Cyrillic с), that name
            for form in (h,) if h.isascii() else host_forms(h):
                for suf in domain_suffixes(form):
                    if suf in self.bl_domains:
                        return h, form, suf
        return None

    def has_consent(self, owner: str | None, number: int | None) -> bool:
        if owner is None or number is None:
            return False
        bm = self.consent.get(owner_fold(owner))
        return bm is not None and number in bm

    def rekey_service_numbers(self) -> int:
        """Vietnam's 1800/1900 service numbers stored before they were read as such (1900123456 as +1900123456):
        moved to their key now (+841900123456), in every list; how many moved. Lossless: no number is read as
        the old key any more."""
        legacy = BitMap64()
        for lo, hi in LEGACY_SERVICE_RANGES:
            legacy.add_range(lo, hi + 1)
        moved = 0
        for bm in (self.dnc_s, self.dnc_v, self.bl_numbers, *self.consent.values()):
            old = bm & legacy
            for n in old:
                bm.discard(n)
                bm.add(legacy_service_key(n))
            moved += len(old)
        for k in [k for k in self.senders if type(k) is int and legacy_service_key(k) is not None]:
            self.senders[legacy_service_key(k)] = self.senders.pop(k)
            moved += 1
        return moved

    def foreign_landline_forms(self) -> int:
        """Entries stored under a key that a Vietnamese landline written without its trunk 0 ("2439998888") had before
        it was read as +84 (+2439998888: ten digits, the first three a Vietnamese area code). Not moved: one may be
        the foreign number it says (+220 …, Gambia); counted for a warning."""
        n = 0
        for bm in (self.dnc_s, self.dnc_v, self.bl_numbers, *self.consent.values()):
            for a in VN_LANDLINE_AREAS:
                lo = int(a) * 10 ** 7
                n += bm.range_cardinality(lo, lo + 10 ** 7)
        n += sum(1 for k in self.senders if type(k) is int and len(str(k)) == 10 and str(k)[:3] in VN_LANDLINE_AREAS)
        return n

    # --- mutations (used by the store; callers hold the only reference) ---
    def add_dnc(self, number: int, channel: str) -> None:
        self._dnc_change(number if "S" in channel else 0)
        if "S" in channel:
            self.dnc_s.add(number)
        if "V" in channel:
            self.dnc_v.add(number)

    def remove_dnc(self, number: int, channel: str) -> None:
        self._dnc_change(0)             # (a removal bars no ad)
        if "S" in channel:
            self.dnc_s.discard(number)
        if "V" in channel:
            self.dnc_v.discard(number)

    def _dnc_change(self, added_s: int) -> None:
        c = self.dnc_changes = self.dnc_changes + 1
        r = self.dnc_ring
        if r is None:
            r = self.dnc_ring = array("Q", bytes(16 * DNC_RING))
        i = 2 * (c % DNC_RING)
        r[i], r[i + 1] = c, added_s

    def ads_may_be_barred(self) -> None:
        """A change other than one DNC number's that may bar an ad scheduled ahead (numbers added to the DNC list in
        bulk, consent withdrawn, a sender's owner changed): counted, so that the next look at those ads
        (smpp_proxy/dnc_cancel.py) takes every ad to a DNC number."""
        self.dnc_changes += 1

    def dnc_s_added_since(self, seen: int) -> set | None:
        """The numbers the changes after the `seen`-th added to DNC S (removals none: they bar no ad), or None when
        one of those changes is not known one by one (ads_may_be_barred, or more than DNC_RING of them since)."""
        c, r = self.dnc_changes, self.dnc_ring
        if not 0 <= c - seen <= DNC_RING:
            return None
        out = set()
        for k in range(seen + 1, c + 1):
            i = 2 * (k % DNC_RING)
            if r is None or r[i] != k:
                return None
            if r[i + 1]:
                out.add(r[i + 1])
        return out

    def add_sender(self, e: SenderEntry) -> tuple:
        """Add registration `e`; the registrations it replaced (other than `e` itself)."""
        k = sender_entry_key(e)
        # an entry is replaced by one for the same dates and category, or by another owner's for those dates (an
        # edit of who holds the brand then); the other category for those dates, same owner, stays beside it
        was = self.senders.get(k, ())
        old = [x for x in was if not same_period_clash(x, e)]
        self.senders[k] = tuple(old + [e])
        return tuple(x for x in was if x != e and same_period_clash(x, e))

    def add_consent(self, owner: str, number: int) -> None:
        k = owner_fold(owner)
        self.owner_names.setdefault(k, owner)
        self.consent.setdefault(k, BitMap64()).add(number)

    def add_ml_exemption(self, e: MlExemption) -> None:
        self.ml_exempt[e.number] = e            # one row a number: a later one (a renewal) replaces it

    def stats(self, day=None) -> dict:
        """The lists' figures; `day`: the local day an mlexempt row is read against (ListStore.today: the `[engine]
        timezone`'s; None: the host's). A row past its valid_to exempts nothing but stays until the list's next add
        or import: counted apart (`expired`), not among the numbers exempt."""
        both = self.dnc_s & self.dnc_v
        day = day or mlexempt_today()
        gone = len(mlexempt_expired(self.ml_exempt, day))
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
            "mlexempt": {"numbers": len(self.ml_exempt) - gone, "expired": gone},
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
        elif kind == "mlexempt":
            for n in sorted(self.ml_exempt):
                yield mlexempt_row(self.ml_exempt[n])
        else:
            raise CsvError(f"unknown list kind {kind!r}")
