"""Ads scheduled ahead, by recipient, so that one whose recipient registers `DK DNC` before its delivery is cancelled
at the SMSC (dnc_cancel.py).

Decree 91: never an advertisement to a number on the Do-Not-Advertise list without its consent. DNC and consent are
judged when a message is submitted; an ad scheduled ahead (schedule_delivery_time, up to max_schedule_days) is
delivered by the SMSC later, and a recipient who registers meanwhile still got it. This index keeps, for each ad this
process forwarded with a delivery still ahead, what a cancel_sm of it needs (its message_id and id space, service
type, source and destination as submitted) and its recipient as an E.164 int; the proxy's housekeeping asks it,
when the DNC list has changed, which of its recipients are on it now (`dests`, a roaring bitmap: one intersection
with the list).

Which messages are ads is policy: those an advertiser's cap counted at their delivery (a counter with
`at = "delivery"` on an sms-mt rule, the Decree 91 pack's AD_FREQUENCY_CAP; Pipeline.counted_at_delivery).

Bounds: BOUND entries (a carrier's ads scheduled within max_schedule_days and not yet due); past it a new one is not
indexed (counted in `unindexed`, said in the log once an hour): it is delivered as judged at its submission, as
every scheduled ad was before this index. An entry goes when its delivery time passes, when its receipt comes (the
SMSC reached a final state), when an ESME's own cancel_sm or replace_sm of it is taken, or when it is cancelled
here. Layout: a dict id key -> entry tuple (~330 B an entry with its strings: ~66 MB at the bound), a dict
recipient -> key (a tuple of keys for the rare recipient with several), the bitmap of recipients, and a heap of
(due, key) for the expiry (stale items skipped as they surface, rebuilt when they outnumber the entries).

Across a restart: written at a clean stop (DATA_DIR/smpp/scheduled_ads.msgpack, msgpack, replaced whole), read at
the next start (entries already due dropped). A crash loses the index (see README Known limits).
"""
from __future__ import annotations

import heapq
import logging
from typing import NamedTuple

import msgpack
from pyroaring import BitMap64

log = logging.getLogger("telfilter.smpp")

BOUND = 200_000
FORMAT, VERSION = "telfilter-scheduled-ads", 1


class PendingAd(NamedTuple):
    key: str                # the message_id's key in the id map (msgids.id_key: space and id)
    space: str              # the id space of the link that took it (a cancel goes to a link of that space)
    message_id: str
    account: str
    due: int                # its delivery, Unix seconds
    recipient: int          # E.164
    service_type: str
    source_ton: int
    source_npi: int
    source: str
    dest_ton: int
    dest_npi: int
    destination: str


class ScheduledAds:
    __slots__ = ("bound", "entries", "by_dest", "dests", "heap", "unindexed")

    def __init__(self, bound: int = BOUND):
        self.bound = bound
        self.entries: dict[str, PendingAd] = {}
        self.by_dest: dict[int, str | tuple] = {}
        self.dests = BitMap64()
        self.heap: list = []
        self.unindexed = 0

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, ad: PendingAd) -> bool:
        """Indexed (False: the bound is reached, counted in `unindexed`). An id given again replaces its entry."""
        if ad.key in self.entries:
            self.discard(ad.key)
        elif len(self.entries) >= self.bound:
            self.unindexed += 1
            return False
        self.entries[ad.key] = ad
        n = ad.recipient
        had = self.by_dest.get(n)
        self.by_dest[n] = ad.key if had is None else (had + (ad.key,) if type(had) is tuple else (had, ad.key))
        self.dests.add(n)
        heapq.heappush(self.heap, (ad.due, ad.key))
        return True

    def discard(self, key: str) -> PendingAd | None:
        """The entry of `key` gone (its receipt came, it was cancelled or replaced); it, or None."""
        ad = self.entries.pop(key, None)
        if ad is None:
            return None
        n = ad.recipient
        had = self.by_dest.get(n)
        if type(had) is tuple:
            rest = tuple(k for k in had if k != key)
            self.by_dest[n] = rest[0] if len(rest) == 1 else rest
        else:
            del self.by_dest[n]
            self.dests.discard(n)
        if not self.entries:        # its stale items with them (`expire`, which rebuilds it, is not run when empty)
            self.heap.clear()
        return ad

    def expire(self, now: int) -> int:
        """Entries whose delivery is at or before `now` (Unix seconds) gone: the SMSC has sent them. How many."""
        heap, entries, n = self.heap, self.entries, 0
        while heap and heap[0][0] <= now:
            due, key = heapq.heappop(heap)
            ad = entries.get(key)
            if ad is not None and ad.due == due:
                self.discard(key)
                n += 1
        if len(heap) > 2 * len(entries) + 1024:         # stale items (discarded, replaced): rebuilt
            self.heap = [(a.due, a.key) for a in entries.values()]
            heapq.heapify(self.heap)
        return n

    def to(self, numbers) -> list[PendingAd]:
        """The entries whose recipient is in `numbers` (a BitMap64: the DNC list), oldest due first."""
        hit = self.dests & numbers if self.dests else ()
        out = []
        for n in hit:
            had = self.by_dest.get(n)
            for k in had if type(had) is tuple else (had,):
                out.append(self.entries[k])
        out.sort(key=lambda a: a.due)
        return out

    # ------------------------------------------------------------ across a restart
    def dump(self) -> bytes:
        return msgpack.packb({"format": FORMAT, "version": VERSION,
                              "ads": [list(a) for a in self.entries.values()]}, use_bin_type=True)

    def load(self, data: bytes, now: int) -> int:
        """Entries of a clean stop's `dump` still ahead of `now`; how many. ValueError: not such a file."""
        try:
            d = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (msgpack.UnpackException, ValueError, TypeError) as e:
            raise ValueError(f"not a scheduled-ads file ({type(e).__name__})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("version") != VERSION \
                or not isinstance(d.get("ads"), list):
            raise ValueError("not a scheduled-ads file")
        n = 0
        for row in d["ads"]:
            try:
                ad = PendingAd(*row)
            except TypeError:
                raise ValueError(f"not a scheduled-ads entry: {row!r:.80}") from None
            if not (isinstance(ad.key, str) and isinstance(ad.due, int) and isinstance(ad.recipient, int)):
                raise ValueError(f"not a scheduled-ads entry: {row!r:.80}")
            if ad.due > now and self.add(ad):
                n += 1
        return n


def save(ads: ScheduledAds, path) -> int:
    """At a clean stop: the index to `path` (replaced whole), or the file removed when it is empty."""
    from pathlib import Path

    from ..durable import replace_file
    path = Path(path)
    if not len(ads):
        path.unlink(missing_ok=True)
        return 0
    replace_file(path, ads.dump())
    return len(ads)


def read(ads: ScheduledAds, path, now: int) -> int:
    """At a start: a clean stop's index back, and the file removed: the index is in memory from now on, and a
    crash must not bring back entries gone since (an ad its ESME replaced by a message that is not one). Never
    raises: a file not read is said and left as it is."""
    from pathlib import Path
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    except OSError as e:
        log.error("scheduled ads %s not read (%s): ads scheduled before the restart are not cancelled if their "
                  "recipient registers DK DNC", path, e)
        return 0
    try:
        n = ads.load(data, now)
    except ValueError as e:
        log.error("scheduled ads %s: %s; left as it is, ads scheduled before the restart are not cancelled if their "
                  "recipient registers DK DNC", path, e)
        return 0
    try:
        path.unlink()
    except OSError as e:
        log.warning("scheduled ads %s read but not removed (%s)", path, e)
    if n:
        log.info("scheduled ads: %d ads scheduled ahead from the last stop, cancelled if their recipient registers "
                 "DK DNC before their delivery", n)
    return n
