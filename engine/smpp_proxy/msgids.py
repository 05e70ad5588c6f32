"""Which account sent each message the SMSC accepted: its message_id -> the ESME account, so
a delivery receipt (which names only the message_id) goes back to the account that sent it.

Theory of operation. One entry per forwarded message, so this grows with traffic: it is
bounded (`bound`, 2M by default: ~7 minutes at 5k/s, the span receipts usually come back in)
and the oldest entry makes room for the newest (first in, first out). With a shared state store
(`--state redis://`, `--workers N`) every process also holds the other processes' ids, in a
second MessageIds of the same bound (engine/state/receipts.py, SharedMessageIds.learned): its
own ids keep the coverage above, the other processes' get as much again (memory: up to twice
the figure below). The layout is a plain dict {message_id: account number} and a
fixed ring of the ids in arrival order: the ring slot about to be reused names the entry to
forget, so eviction is O(1) with no per-entry links (an OrderedDict keeps a node of ~48 B for
each). Accounts are numbered, the number being a small int the interpreter shares, so an entry
holds no object of its own but its id.

Bytes per entry, measured with tracemalloc (2M ids of 10 characters): the id string 64 (CPython:
49 + length, rounded up to 8), the dict's slot and index, the ring slot 8: ~99 B when the bound is first
reached, against ~144 B with the OrderedDict it replaces. That is not the figure to plan with: once full,
every id added deletes one, the deleted slots fill the dict's table, and the resize that clears them sizes
it for 3x the live ids (CPython's dict growth rule), so a dict of 2M ids settles at 2^23 slots (~62 MB
more than when the bound was first reached): ~130 B an id at the bound in steady traffic (`BYTES_PER_ID`
without notes; 2M ids ~260 MB), reached within 2 bounds' worth of messages and flat from then on
(tests/test_smpp_msgids.py measures it after 4 bounds' worth).
An id the SMSC hands out again while its entry lives gets the newer account and keeps its
first ring slot (it is forgotten one bound's worth of messages after its first use).

What was sent under each id (`note`, read back by `sent`): what a replace_sm of it is judged with
(submit.py `_replace`): SINGLE / MULTI / PART, data_coding, a 32-bit fingerprint of source_addr,
the scheduled delivery (Unix seconds, 0 = at once; for a message counted toward an advertiser's cap, the
second it was counted at), the destination as an E.164 int and whether it was so counted (`charged`: a
replace_sm of it is judged without that count, and a replace_sm or cancel_sm the SMSC takes gives it back),
packed in one int (125 bits) in a second
dict, forgotten with the id. Measured as above with notes: ~169 B an id when the bound is first reached, ~70 B
more than the id alone (the second dict's slot and index ~31, the packed int 48: CPython, 5 digits of 30
bits), and ~231 B at the bound in steady traffic, the second dict doubling as the first does
(`BYTES_PER_ID_NOTED`; 2M ids ~462 MB of Python objects, ~486 MB of RSS measured). Only this process's own ids have notes (not the ones learned
from other `--workers` processes: their replace_sm is refused, see submit.py).

Id spaces. One SMSC (or a cluster) hands out unique ids on all its binds, and a receipt may come
back on another bind than the submit went out on (TX + RX binds): by default every link shares one
space. Links to different SMSCs, whose ids may collide, are given different `id_space` names
(smpp.toml, per link); their ids are then kept as "space<US>id" (`id_key`) and a receipt is looked
up in the space of the link it came on.

Across a restart. A clean stop writes the map (`dump`: the ids oldest first with their accounts, msgpack,
~12 B an id: 2M ids are 24 MB, written in 0.4 s, read in 1 s; with the notes, an extra column `sent` of
16 bytes an id, the format's version unchanged (a reader that does not know the column skips it, a map
without it loads with no notes): ~28 B an id, 2M ids 56 MB written in 1.3 s, read in 2.3 s) to DATA_DIR/smpp/message_ids.msgpack and the next start reads it back (`load`), so the
receipts of messages sent before a deploy still reach their accounts (they used to be held receipt_wait
and refused ESME_RX_T_APPN at every attempt). A pool process (state/receipts.py SharedMessageIds) writes the
ids it learned from the others too (up to twice the size). Between clean stops the ids are also logged as they
come (idlog.py: `journal` takes each id `add` sees, and each note `note` sets into a crash spool at once).
"""
from __future__ import annotations

import struct
import sys
import zlib
from hashlib import blake2b
from typing import NamedTuple

import msgpack

BOUND = 2_000_000
MID_MAX = 64            # characters of a message_id (SMPP 3.4 §5.2.23: 65 octets with its NUL)
# bytes an id costs at the bound once traffic has run through it (the dicts' tables after their first resize
# past the bound; see above), without and with its note; tests/test_smpp_msgids.py holds the figures to them
BYTES_PER_ID = 131
BYTES_PER_ID_NOTED = 232
FORMAT = "telfilter-message-ids"

# what was forwarded under an id (`MessageIds.note`): one message to one destination, a submit_multi (one id
# for several destinations), or one part of a concatenated message
SINGLE, MULTI, PART = 1, 2, 3
_SENT_BYTES = 16                    # a `note` as written by `dump` (little-endian; 0 = none)
_CHARGED = 1 << 124                 # a note's charged bit (_unpack)


class Sent(NamedTuple):
    """What a replace_sm needs to be judged as the message it becomes (submit.py)."""
    kind: int               # SINGLE, MULTI or PART
    data_coding: int        # the stored message's (replace_sm carries none: SMPP 3.4 §4.10.1)
    source_fp: int          # source_fp(source_addr) of the submit (a replace_sm must name the same)
    delivery: int           # when it is to be delivered (scheduled), Unix seconds; 0 = at once (a charged
                            # one: the second its advertiser-cap count is stamped at, its delivery)
    destination: int        # E.164 int; 0 = not a number
    charged: bool = False   # counted toward an advertiser's cap at `delivery` (a count at delivery)


def source_fp(source_addr: str) -> int:
    """A 32-bit fingerprint of a source_addr (kept instead of the text: 4 bytes in the packed note)."""
    return _crc32(source_addr.encode("latin-1", "replace"))


_crc32 = zlib.crc32


_LAST_FP = [None, 0]


# A note packed in one int (`note` packs it inline): kind | data_coding << 2 | source_fp << 10 | delivery << 42 |
# destination << 74 | _CHARGED
def _unpack(n: int) -> Sent:
    return Sent(n & 3, n >> 2 & 0xFF, n >> 10 & 0xFFFFFFFF, n >> 42 & 0xFFFFFFFF, n >> 74 & _DEST,
                bool(n & _CHARGED))


_DEST = (1 << 50) - 1


def id_key(space: str, mid: str) -> str:
    """The map's key for message_id `mid` issued in id space `space` ("" = the shared space: the id itself). An id
    over SMPP 3.4's 64 characters (§5.2.23; an SMSC's response is read leniently) is keyed by a digest of it: the map
    is bounded by count, and a 4 KB id a message would make its 2M ids 8 GB."""
    if len(mid) > MID_MAX:
        mid = "#" + blake2b(mid.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{space}\x1f{mid}" if space else mid


class MessageIds:
    __slots__ = ("bound", "_ids", "_ring", "_next", "_accounts", "_numbers", "_sent", "journal")

    def __init__(self, bound: int = BOUND):
        self.bound = bound
        self._ids: dict[str, int] = {}
        self._ring: list = []                   # ids in arrival order; once full, the oldest is at _next
        self._next = 0
        self._accounts: list[str] = []           # number -> account system_id
        self._numbers: dict[str, int] = {}       # account system_id -> number
        self._sent: dict[str, int] = {}          # id -> its `note`, packed in one int (_unpack)
        self.journal = None                      # idspool.py's SpoolJournal (a list of the ids added, `noted`)

    def __len__(self) -> int:
        return len(self._ids)

    def memory_bytes(self) -> int:
        """The bytes this map holds, in O(1) (read at scrape time: /metrics telfilter_table_bytes): the two dicts'
        and the ring's own tables exactly (sys.getsizeof: what they allocated, deleted slots included, not the
        objects they point to), the id strings as many times the newest one's size (an SMSC's ids are of one
        length), the notes as many 125-bit ints. Python objects, before the allocator's rounding (see above)."""
        ids, ring = self._ids, self._ring
        size = sys.getsizeof(ids) + sys.getsizeof(self._sent) + sys.getsizeof(ring)
        if ring:
            size += len(ids) * sys.getsizeof(ring[self._next - 1])     # (the newest: _next - 1, or the last)
        return size + len(self._sent) * sys.getsizeof(_CHARGED)

    def __contains__(self, mid: str) -> bool:
        return mid in self._ids

    def add(self, mid: str, account: str) -> None:
        n = self._numbers.get(account)
        if n is None:
            n = self._numbers[account] = len(self._accounts)
            self._accounts.append(account)
        ids = self._ids
        j = self.journal
        if j is not None:
            j.append(mid)
        if mid in ids:
            ids[mid] = n
            self._sent.pop(mid, None)           # another message now: its own note follows
            return
        ids[mid] = n
        ring = self._ring
        if len(ring) < self.bound:              # filling up (grown as used: no 16 MB up front)
            ring.append(mid)
            return
        i = self._next
        old = ring[i]
        del ids[old]
        if self._sent:
            self._sent.pop(old, None)
        ring[i] = mid
        self._next = i + 1 if i + 1 < self.bound else 0

    def get(self, mid: str, default=None):
        n = self._ids.get(mid)
        return default if n is None else self._accounts[n]

    def note(self, mid: str, kind: int, data_coding: int, source: str, delivery: int, destination: int | None,
             charged: bool = False) -> None:
        """What was forwarded under `mid` (added just before): kept with it, forgotten with it."""
        if mid in self._ids:
            j = self.journal
            if j is not None and mid in self._sent:     # a note rewritten (relay.py): logged again, or a
                j.append(mid)                           # crash reads back the one it replaced
            fp = _LAST_FP
            if fp[0] != source:             # (most messages come in runs from one source)
                fp[0], fp[1] = source, _crc32(source.encode("latin-1", "replace"))     # (source_fp, inline)
            # (packed here, _unpack's layout, the delivery clamped to 0 .. 2^32 - 1 without min / max: a frame and two
            # calls less a forwarded message)
            d = delivery or 0
            n = self._sent[mid] = kind | (data_coding & 0xFF) << 2 | fp[1] << 10 \
                | (0 if d < 0 else d if d <= 0xFFFFFFFF else 0xFFFFFFFF) << 42 \
                | (destination if destination and 0 < destination < 1 << 50 else 0) << 74 \
                | (_CHARGED if charged and 0 < delivery <= 0xFFFFFFFF else 0)
            if j is not None:               # into the id log's crash spool now, before the ESME has the resp
                j.noted(mid, self._ids[mid], n)

    def add_noted(self, mid: str, account: str, kind: int, data_coding: int, source: str, delivery: int,
                  destination: int | None, charged: bool = False) -> None:
        """`add(mid, account)` then `note(mid, ...)`, in one call: a forwarded message's id (forward.py; a frame and
        the second look-ups less). The same map, notes and journal after it as the two calls."""
        n = self._numbers.get(account)
        if n is None:
            n = self._numbers[account] = len(self._accounts)
            self._accounts.append(account)
        ids = self._ids
        j = self.journal
        if j is not None:
            j.append(mid)
        if mid in ids:
            ids[mid] = n
            self._sent.pop(mid, None)           # another message now: its own note follows
        else:
            ids[mid] = n
            ring = self._ring
            if len(ring) < self.bound:
                ring.append(mid)
            else:
                i = self._next
                old = ring[i]
                del ids[old]
                if self._sent:
                    self._sent.pop(old, None)
                ring[i] = mid
                self._next = i + 1 if i + 1 < self.bound else 0
        # (note's body: `mid` is in the map now and has no note, so no second journal entry)
        fp = _LAST_FP
        if fp[0] != source:
            fp[0], fp[1] = source, _crc32(source.encode("latin-1", "replace"))
        d = delivery or 0
        note = self._sent[mid] = kind | (data_coding & 0xFF) << 2 | fp[1] << 10 \
            | (0 if d < 0 else d if d <= 0xFFFFFFFF else 0xFFFFFFFF) << 42 \
            | (destination if destination and 0 < destination < 1 << 50 else 0) << 74 \
            | (_CHARGED if charged and 0 < delivery <= 0xFFFFFFFF else 0)
        if j is not None:
            j.noted(mid, n, note)

    def receipted(self, mid: str) -> None:
        """A delivery receipt for `mid` came: its message has reached a final state, and a cancel_sm or replace_sm
        the SMSC answers 0 after it (some queue them) gives no count back (relay.py): the note's charged bit goes."""
        n = self._sent.get(mid)
        if n is not None and n & _CHARGED:
            self._sent[mid] = n & ~_CHARGED
            j = self.journal
            if j is not None:
                j.append(mid)

    def forget_charges(self) -> int:
        """Clear every note's charged bit (read back after a crash: the id log is written every 0.05 s, the state
        journal every 0.25 s, so a note may say "counted at S" for a count the crash lost, and giving it back
        would take another ad's stamp of that second). Returns how many were cleared."""
        n = 0
        sent = self._sent
        for mid, v in sent.items():
            if v & _CHARGED:
                sent[mid] = v & ~_CHARGED
                n += 1
        return n

    def sent(self, mid: str) -> Sent | None:
        """The `note` of `mid`, None if there is none (an id this process did not forward, forgotten, or
        read back from a map written before notes were kept)."""
        n = self._sent.get(mid)
        return None if n is None else _unpack(n)

    def columns(self) -> dict:
        """The map as columns: its ids oldest first, each with its account's number, and (when any id has
        one) `sent`: each id's note as 16 bytes, little-endian (0 = none)."""
        ring = self._ring
        return self._columns(ring[self._next:] + ring[:self._next] if self._next else ring)

    def columns_of(self, mids) -> dict:
        """`columns()` of the ids `mids` alone, in that order (those no longer in the map left out)."""
        ids = self._ids
        return self._columns([m for m in mids if m in ids], self._accounts[:])

    def _columns(self, order, accounts=None) -> dict:
        ids = self._ids
        cols = {"accounts": self._accounts if accounts is None else accounts, "ids": order,
                "account_of": [ids[m] for m in order]}
        sent = self._sent
        if sent:
            # each note as 16 little-endian bytes: its low 64 bits then its high ones, each little-endian, is the
            # 128-bit int little-endian (a note is under 2^125): one to_bytes an id, not two appends and two shifts
            get = sent.get
            cols["sent"] = b"".join([get(m, 0).to_bytes(16, "little") for m in order])
        return cols

    def dump(self) -> bytes:
        return msgpack.packb({"format": FORMAT, "version": 1, **self.columns()}, use_bin_type=True)

    def add_columns(self, d) -> int:
        """Add the ids of `columns()` (oldest first: at this map's bound the oldest make room); ValueError if
        `d` is not that. Never broadcast (a SharedMessageIds' own `add` would)."""
        try:
            accounts, ids, of = d["accounts"], d["ids"], d["account_of"]
            if len(ids) != len(of) or not all(isinstance(a, str) for a in accounts) \
                    or not all(isinstance(m, str) for m in ids) or not all(type(n) is int and 0 <= n < len(accounts) for n in of):
                raise ValueError("message-id map: malformed columns")
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a message-id map ({type(e).__name__})") from None
        sent = d.get("sent") if isinstance(d, dict) else None
        if sent is not None and (not isinstance(sent, bytes) or len(sent) != _SENT_BYTES * len(ids)):
            raise ValueError("message-id map: malformed sent column")
        add = MessageIds.add
        for m, n in zip(ids, of):
            add(self, m, accounts[n])
        if sent:
            kept, own = self._sent, self._ids
            for m, (lo, hi) in zip(ids, struct.iter_unpack("<QQ", sent)):
                if (lo or hi) and m in own:
                    kept[m] = lo | hi << 64
        return len(ids)

    def load(self, data: bytes) -> int:
        """Add the ids of a `dump`. ValueError if `data` is not one."""
        d = unpack_map(data)
        return self.add_columns(d)


def unpack_map(data: bytes) -> dict:
    try:
        d = msgpack.unpackb(data, raw=False)
    except (msgpack.UnpackException, ValueError, TypeError) as e:
        raise ValueError(f"not a message-id map ({type(e).__name__})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("version") != 1:
        raise ValueError("not a message-id map")
    return d


def save_map(ids: MessageIds, path) -> int:
    """At a clean stop: the map to `path` (replaced whole), or the file removed when the map is empty."""
    from pathlib import Path

    from ..durable import replace_file
    path = Path(path)
    if not len(ids):
        path.unlink(missing_ok=True)
        return 0
    replace_file(path, ids.dump())
    return len(ids)


class RecentlyAnswered:
    """The message_ids relayed to an ESME in a submit_sm_resp (or learned from another --workers process) within
    the last `span` seconds at least, and 2 x `span` at most: two generations of sets, the older dropped when the
    newer is `span` old (`rotate`, on a timer). routing.py asks `due(key, now)`: None when the id's resp went out
    `span` ago or more (or is not known), else the time by which it has: for an id of the newer set, `now` + span
    (its resp may have gone out just now), for one of the older set, that set's end + span.

    Cost per forwarded message: one set.add of the id string the map of message ids already holds (no clock read,
    no object of its own). Memory: at most 2 x `bound` entries, a set slot each (16 B at <= 60 % fill: ~40 B an
    id; the bound, 2 x 65,536, is ~5 MB); a generation that reaches `bound` (over 130,000 resps a second with
    span 0.5) is rotated early, and a receipt of an id so dropped goes at once, as before (`dropped` counts
    them)."""
    __slots__ = ("span", "bound", "new", "old", "new_since", "old_until", "dropped")

    def __init__(self, span: float, bound: int = 65_536):
        self.span, self.bound = span, bound
        self.new: set = set()
        self.old: set = set()
        self.new_since = self.old_until = 0.0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.new) + len(self.old)

    def add(self, key: str) -> None:
        new = self.new
        new.add(key)
        if len(new) >= self.bound:
            self.dropped += len(self.old)
            self.old, self.new = new, set()
            self.old_until = float("inf")   # (rotated without a clock: its ids wait span from when they are asked)

    def rotate(self, now: float) -> None:
        self.old, self.new = self.new, set()
        self.old_until, self.new_since = now, now

    def due(self, key: str, now: float) -> float | None:
        if key in self.new:
            return now + self.span
        if key in self.old:
            t = min(self.old_until, now) + self.span
            return t if t > now else None
        return None
