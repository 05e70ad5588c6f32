"""Ads scheduled ahead, by recipient, so that one whose recipient registers `DK DNC` before its delivery is cancelled
at the SMSC (dnc_cancel.py).

Decree 91: never an advertisement to a number on the Do-Not-Advertise list without its consent. DNC and consent are
judged when a message is submitted; an ad scheduled ahead (schedule_delivery_time, up to max_schedule_days) is
delivered by the SMSC later, and a recipient who registers meanwhile still got it. This index keeps, for each ad this
process forwarded with a delivery still ahead, what a cancel_sm of it needs (its message_id and id space, service
type, source and destination as submitted -- the last two NULL for an ad a replace_sm made one) and its recipient
as an E.164 int; the proxy's housekeeping asks it,
when the DNC list has changed, which of its recipients are on it now (`dests`, a roaring bitmap: one intersection
with the list).

Which messages are ads is policy: those an advertiser's cap counted at their delivery (a counter with
`at = "delivery"` on an sms-mt rule, the Decree 91 pack's AD_FREQUENCY_CAP; Pipeline.counted_at_delivery).

Bounds: BOUND entries (a carrier's ads scheduled within max_schedule_days and not yet due); past it a new one is not
indexed (counted in `unindexed`, said in the log once an hour): it is delivered as judged at its submission, as
every scheduled ad was before this index. An entry goes when its delivery time passes, when its receipt comes (the
SMSC reached a final state), when an ESME's own cancel_sm or replace_sm of it is taken (a replace_sm that keeps
it an ad ahead re-times it; one that makes a message scheduled ahead an ad indexes it), or when it is cancelled
here. A submit_multi's ad is one entry per recipient (`member_key`: its id's key and the recipient), tied by
`groups`: one cancel_sm cancels every recipient's copy (SMPP 3.4 §4.9: one message_id), so all go together; its
receipt, one per recipient, takes that recipient's out. Layout: a dict id key -> entry tuple (~330 B an entry with
its strings), a dict recipient -> key (a tuple of keys for the rare recipient with several), the bitmap of
recipients, and a heap of (due, key) for the expiry (stale items skipped as they surface; rebuilt when they outnumber
the entries, and by the proxy a slice at a time: `expire` with `most`, COMPACT_STEP entries pushed onto the new heap
a call, the old one in force until it is whole -- in one go, ~65 ms at 200,000 entries, no submit_sm served
meanwhile); in serve, the journal's copy of each
entry (~250 B more): ~580 B an entry, ~116 MB at the bound.

Across a restart, a crash too: in serve every entry is journalled as it is indexed and as it goes (`open`:
DATA_DIR/smpp/scheduled_ads.journal, heldjournal.RecordLog, the held receipts' kind: a writer thread, several
records in one fsync, rewritten when mostly gone records and at a clean stop). The next start reads it back (the
entries already due dropped). A crash loses what the writer had not written yet (the last few milliseconds).
"""
from __future__ import annotations

import heapq
import logging
from itertools import islice
from typing import NamedTuple

import msgpack
from pyroaring import BitMap64

log = logging.getLogger("telfilter.smpp")

BOUND = 200_000
COMPACT_STEP = 2048   # live entries pushed onto the new heap per `expire` given `most`, while one is built
MEMBER = "\x1e"       # a submit_multi recipient's entry: its id's key, this, the recipient (E.164)


def member_key(key: str, recipient: int) -> str:
    """The entry key of `recipient`'s copy of the submit_multi whose id's key is `key`."""
    return f"{key}{MEMBER}{recipient}"


def group_of(key: str) -> str | None:
    """The id's key of the submit_multi an entry key is a recipient's copy of; None for a message of its own."""
    base, sep, tail = key.rpartition(MEMBER)
    return base if sep and tail.isdigit() else None


class PendingAd(NamedTuple):
    key: str                # the message_id's key in the id map (msgids.id_key: space and id); a submit_multi
                            # recipient's: member_key(that, recipient)
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
    destination: str        # as submitted; "" for an ad a replace_sm made one and a submit_multi's (its cancel_sm
                            # names the message_id)

    @property
    def to(self) -> str:
        """The recipient as the log and the verdict log name it: as submitted, else as an E.164 number."""
        return self.destination or f"+{self.recipient}"


class ScheduledAds:
    __slots__ = ("bound", "entries", "by_dest", "dests", "heap", "unindexed", "log", "hids", "groups", "fresh",
                 "rest", "old")

    def __init__(self, bound: int = BOUND):
        self.bound = bound
        self.entries: dict[str, PendingAd] = {}
        self.by_dest: dict[int, str | tuple] = {}
        self.dests = BitMap64()
        self.heap: list = []
        self.unindexed = 0
        self.log = None                     # heldjournal.RecordLog once `open` ran (serve): every change journalled
        self.hids: dict[str, int] = {}      # key -> its record in the journal
        self.groups: dict[str, tuple] = {}  # a submit_multi's id key -> its recipients' entry keys
        self.fresh = None                   # the heap being rebuilt (without stale items), or None
        self.rest = None                    # ... the keys still to push onto it (an iterator)
        self.old = None                     # the heap it replaced, freed 4 * COMPACT_STEP items a call (200,000 at
                                            # once: ~20 ms)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, ad: PendingAd) -> bool:
        """Indexed (False: the bound is reached, counted in `unindexed`). An id given again replaces its entry."""
        if ad.key in self.entries:
            self.discard(ad.key)
        elif len(self.entries) >= self.bound:
            self.unindexed += 1
            return False
        self._put(ad)
        if self.log is not None:
            self.hids[ad.key] = self.log.add(ad.key, _pack(ad))
        return True

    def _put(self, ad: PendingAd) -> None:
        self.entries[ad.key] = ad
        n = ad.recipient
        had = self.by_dest.get(n)
        self.by_dest[n] = ad.key if had is None else (had + (ad.key,) if type(had) is tuple else (had, ad.key))
        self.dests.add(n)
        heapq.heappush(self.heap, (ad.due, ad.key))
        if self.fresh is not None:
            heapq.heappush(self.fresh, (ad.due, ad.key))
        g = group_of(ad.key)
        if g is not None:
            self.groups[g] = self.groups.get(g, ()) + (ad.key,)

    def discard(self, key: str) -> PendingAd | None:
        """The entry of `key` gone (its receipt came, it was cancelled or replaced); it, or None."""
        ad = self.entries.pop(key, None)
        if ad is None:
            return None
        if self.log is not None:
            hid = self.hids.pop(key, None)
            if hid is not None:
                self.log.gone(hid)
        n = ad.recipient
        had = self.by_dest.get(n)
        if type(had) is tuple:
            rest = tuple(k for k in had if k != key)
            self.by_dest[n] = rest[0] if len(rest) == 1 else rest
        else:
            del self.by_dest[n]
            self.dests.discard(n)
        g = group_of(key)
        if g is not None:
            rest = tuple(k for k in self.groups.get(g, ()) if k != key)
            if rest:
                self.groups[g] = rest
            else:
                self.groups.pop(g, None)
        if not self.entries:        # its stale items with them (`expire`, which rebuilds it, is not run when empty)
            self.heap.clear()
            self.fresh = self.rest = None
        return ad

    def siblings(self, key: str) -> tuple:
        """The entry keys one cancel_sm of `key`'s message settles: its own, or every recipient's of a submit_multi."""
        g = group_of(key)
        return self.groups.get(g, (key,)) if g is not None else (key,)

    def discard_message(self, key: str) -> list[PendingAd]:
        """Every entry of the message whose id's key is `key` gone (an ESME's cancel_sm taken, its own entry or a
        submit_multi's recipients'); them."""
        keys = self.groups.get(key, ()) if key not in self.entries else (key,)
        return [ad for ad in map(self.discard, keys) if ad is not None]

    def expire(self, now: int, on_due=None, most: int | None = None) -> int:
        """Entries whose delivery is at or before `now` (Unix seconds) gone: the SMSC has sent them (each given to
        `on_due`, when given). With `most`, that many heap items looked at, at most (due or stale: `due_left` says
        whether more are due), and the heap's rebuild, once stale items outnumber the entries, goes on by
        COMPACT_STEP entries; without it, all in one go. How many gone."""
        heap, entries, n = self.heap, self.entries, 0
        left = -1 if most is None else most
        while heap and heap[0][0] <= now and left:
            left -= 1
            due, key = heapq.heappop(heap)
            ad = entries.get(key)
            if ad is not None and ad.due == due:
                self.discard(key)
                n += 1
                if on_due is not None:
                    on_due(ad)
        rebuilt = self.fresh is None and self.old is None      # (none under way, nor the last one's heap freeing)
        if rebuilt and len(self.heap) > 2 * len(entries) + 1024:   # stale items (discarded, replaced): rebuilt from
            # the keys as they are now, their items pushed from the next call on (this one's slice: ~4 ms at 200,000
            # keys); those put meanwhile are pushed onto both heaps
            self.fresh, self.rest = [], iter(list(entries))
            if most is None:
                self._rebuild(None)
        elif self.fresh is not None:
            self._rebuild(None if most is None else COMPACT_STEP)
        elif self.old is not None:
            del self.old[-4 * COMPACT_STEP:]
            if not self.old:
                self.old = None
        return n

    def due_left(self, now: int) -> bool:
        """Whether an item due at or before `now` is still on the heap (`expire` with `most` stopped short)."""
        return bool(self.heap) and self.heap[0][0] <= now

    @property
    def rebuilding(self) -> bool:
        """A heap's rebuild under way, or the old heap still being freed."""
        return self.fresh is not None or self.old is not None

    def _rebuild(self, most: int | None) -> None:
        fresh, entries, push, took = self.fresh, self.entries, heapq.heappush, 0
        for key in (self.rest if most is None else islice(self.rest, most)):
            took += 1
            ad = entries.get(key)
            if ad is not None:
                push(fresh, (ad.due, key))
        if most is None or took < most:         # (the keys are all on it: in force)
            self.old = self.heap if most is not None else None
            self.heap, self.fresh, self.rest = fresh, None, None

    def due_before(self, t: int, most: int, among=None, visit: int | None = None) -> list[str]:
        """The keys of the entries due before `t` (Unix seconds), soonest first, at most `most`: read off the heap
        by delivery (a walk of its items before `t` in order, the stale ones among them skipped), not the index.
        With `among` (recipients: a BitMap64, a set), those to one of them only, the walk looking at `visit` items
        at most (the others due before them skipped as the stale ones are)."""
        heap, entries, out = self.heap, self.entries, {}
        todo, n = [(heap[0], 0)] if heap else [], len(heap)
        left = len(heap) if visit is None else visit
        while todo and len(out) < most and left > 0:
            (due, key), i = heapq.heappop(todo)
            if due >= t:
                break
            left -= 1
            ad = entries.get(key)
            if ad is not None and ad.due == due and (among is None or ad.recipient in among):
                out[key] = None         # (an id given again for the same delivery: two items)
            for j in (2 * i + 1, 2 * i + 2):
                if j < n and heap[j][0] < t:        # (one due at `t` or after: nor its subtree)
                    heapq.heappush(todo, (heap[j], j))
        return list(out)

    def keys_to(self, number: int) -> tuple:
        """The entry keys of the ads to `number` (E.164)."""
        had = self.by_dest.get(number)
        return () if had is None else had if type(had) is tuple else (had,)

    def to(self, numbers) -> list[PendingAd]:
        """The entries whose recipient is in `numbers` (a BitMap64: the DNC list), oldest due first."""
        hit = self.dests & numbers if self.dests else ()
        out = []
        for n in hit:
            out.extend(map(self.entries.__getitem__, self.keys_to(n)))
        out.sort(key=lambda a: a.due)
        return out

    # ------------------------------------------------------------ across a restart
    def open(self, path, loop, now: int, stats=None, adopt=()) -> int:
        """Journal the index from now on (`path`, a RecordLog), after reading back what the last run left (its
        entries still ahead of `now`; the rest, and records this version cannot read, gone), the journals in
        `adopt` (a pool's workers no longer started) with it. How many."""
        from ..disktrouble import trouble
        from .heldjournal import RecordLog
        rl = RecordLog(path, "telfilter-scheduled-writer", "scheduled ad", stats, "scheduled_journal",
                       trouble=trouble("scheduled_ads"))
        live = rl.open(loop, adopt=adopt)
        self.log = rl
        bad = n = 0
        for hid, key, raw in live:
            ad = _unpack(raw)
            if ad is None or ad.key != key:
                bad += 1
            if key in self.entries:         # a gone record lost (the writer full): the later record is in force
                self.discard(key)
                n -= 1
            if ad is None or ad.key != key or ad.due <= now or len(self.entries) >= self.bound:
                rl.gone(hid)
                continue
            self._put(ad)
            self.hids[key] = hid
            n += 1
        if bad:
            log.error("scheduled ads %s: %d records not read (not this version's): those ads are not cancelled if "
                      "their recipient registers DK DNC", path, bad)
        if n:
            log.info("scheduled ads: %d ads scheduled ahead from the last run, cancelled if their recipient registers "
                     "DK DNC before their delivery", n)
        return n

    async def close(self) -> int:
        """Clean stop: the journal rewritten as what is indexed (read by the next start). How many."""
        rl, self.log = self.log, None
        return await rl.close() if rl is not None else 0


def _pack(ad: PendingAd) -> bytes:
    return msgpack.packb(list(ad), use_bin_type=True)


_TYPES = (str, str, str, str, int, int, str, int, int, str, int, int, str)


def _unpack(raw: bytes) -> PendingAd | None:
    """An entry from its journal record, or None when the record is not one (a later version's)."""
    try:
        row = msgpack.unpackb(raw, raw=False)
    except (msgpack.UnpackException, ValueError, TypeError):
        return None
    if not isinstance(row, list) or len(row) != len(_TYPES) or \
            not all(type(v) is t for v, t in zip(row, _TYPES)):
        return None
    return PendingAd(*row)
