"""DNC changes waiting to be published to the other nodes (replication.py): per channel, the net
numbers added and removed since the last publish, as roaring bitmaps. A number is in one run at most,
so the order of the runs is free; segments keep the order of changes of different kinds (`j`).
A 5656 or ctl change also keeps the time it was put in force (`at`, the newest MAX_TIMED), published
beside the runs: a follower skips a change older than the last one it applied to that number and channel,
so a queue published late (Redis away) cannot undo a subscriber's later command made on another node."""
from __future__ import annotations

from collections import OrderedDict

import msgpack
from pyroaring import BitMap64

CHANNELS = ("S", "V")
MAX_TIMED = 100_000         # (number, channel) changes whose time is kept while they wait (~300 B each)


class Changes:
    """DNC changes waiting to be published: the net add and remove sets per channel, and whether they
    were journalled here (`j`: a 5656 or ctl change, journalled again when it comes back) or are a CLI
    snapshot's difference (in the snapshot already)."""
    __slots__ = ("j", "add", "rem", "at")

    def __init__(self, j: bool):
        self.j = j
        self.add = {c: BitMap64() for c in CHANNELS}
        self.rem = {c: BitMap64() for c in CHANNELS}
        self.at = OrderedDict()     # (number, channel) -> time.time() it was put in force, oldest first

    def put(self, op: str, ch: str, number: int, at: float | None = None) -> None:
        """One change; ch is "S", "V" or "SV" (both, published as one run per channel); `at`: when it was put
        in force here."""
        gain, lose = (self.add, self.rem) if op == "add" else (self.rem, self.add)
        for c in ch:
            lose[c].discard(number)
            gain[c].add(number)
            self.at.pop((number, c), None)
            if at is not None:
                self.at[(number, c)] = at
                if len(self.at) > MAX_TIMED:
                    self.at.popitem(last=False)             # the oldest is published without its time

    def merge(self, ch: str, added, removed) -> None:
        """Later changes of one channel, whole sets at a time (a snapshot's difference)."""
        self.add[ch] = (self.add[ch] - removed) | added
        self.rem[ch] = (self.rem[ch] - added) | removed

    def __len__(self) -> int:
        return sum(len(b) for c in CHANNELS for b in (self.add[c], self.rem[c]))

    def runs(self):
        """(op, channel, bitmap) of what is waiting; one number is in one run at most, so their order is free."""
        for c in CHANNELS:
            for op, b in (("remove", self.rem[c]), ("add", self.add[c])):
                if b:
                    yield op, c, b

    def to_dict(self) -> dict:
        """For msgpack: the sets as serialised roaring bitmaps."""
        return {"j": self.j, "add": {c: self.add[c].serialize() for c in CHANNELS},
                "rem": {c: self.rem[c].serialize() for c in CHANNELS},
                "at": [[n, c, t] for (n, c), t in self.at.items()]}

    @classmethod
    def from_dict(cls, d) -> "Changes":
        c = cls(bool(d["j"]))
        for ch in CHANNELS:
            c.add[ch] = BitMap64.deserialize(d["add"][ch])
            c.rem[ch] = BitMap64.deserialize(d["rem"][ch])
        # ("at" is absent from a file saved before the times were kept)
        c.at = OrderedDict(((int(n), str(ch)), float(t)) for n, ch, t in d.get("at", ()))
        return c

    def fold(self, later: "Changes") -> None:
        """Fold a later segment of the same kind into this one, its changes winning."""
        for c in CHANNELS:
            self.merge(c, later.add[c], later.rem[c])
        for k in [k for k in self.at if k[0] in later.add[k[1]] or k[0] in later.rem[k[1]]]:
            del self.at[k]                  # changed again later: the later time (if kept) is the one
        self.at.update(later.at)

    def entries(self, chunk: int):
        """The stream entries of this segment: (msgpack list of runs [op, channel, [numbers]], msgpack list of
        their times, a list per run with None where not kept; None when none is), at most `chunk` numbers an
        entry, produced a chunk at a time (a million-number difference is never one list)."""
        cur, times, size = [], [], 0
        for op, ch, b in self.runs():
            for i in range(0, len(b), chunk):
                part = list(b[i:i + chunk])
                if cur and size + len(part) > chunk:
                    yield self._entry(cur, times)
                    cur, times, size = [], [], 0
                cur.append([op, ch, part])
                times.append([self.at.get((n, ch)) for n in part] if self.at else None)
                size += len(part)
        if cur:
            yield self._entry(cur, times)

    @staticmethod
    def _entry(runs, times):
        timed = any(ts and any(t is not None for t in ts) for ts in times)
        return msgpack.packb(runs), msgpack.packb(times) if timed else None
