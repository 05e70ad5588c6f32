"""DNC changes waiting to be published to the other nodes (replication.py): per channel, the net
numbers added and removed since the last publish, as roaring bitmaps. A number is in one run at most,
so the order of the runs is free; segments keep the order of changes of different kinds (`j`)."""
from __future__ import annotations

import msgpack
from pyroaring import BitMap64

CHANNELS = ("S", "V")


class Changes:
    """DNC changes waiting to be published: the net add and remove sets per channel, and whether they
    were journalled here (`j`: a 5656 or ctl change, journalled again when it comes back) or are a CLI
    snapshot's difference (in the snapshot already)."""
    __slots__ = ("j", "add", "rem")

    def __init__(self, j: bool):
        self.j = j
        self.add = {c: BitMap64() for c in CHANNELS}
        self.rem = {c: BitMap64() for c in CHANNELS}

    def put(self, op: str, ch: str, number: int) -> None:
        """One change; ch is "S", "V" or "SV" (both, published as one run per channel)."""
        gain, lose = (self.add, self.rem) if op == "add" else (self.rem, self.add)
        for c in ch:
            lose[c].discard(number)
            gain[c].add(number)

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
                "rem": {c: self.rem[c].serialize() for c in CHANNELS}}

    @classmethod
    def from_dict(cls, d) -> "Changes":
        c = cls(bool(d["j"]))
        for ch in CHANNELS:
            c.add[ch] = BitMap64.deserialize(d["add"][ch])
            c.rem[ch] = BitMap64.deserialize(d["rem"][ch])
        return c

    def fold(self, later: "Changes") -> None:
        """Fold a later segment of the same kind into this one, its changes winning."""
        for c in CHANNELS:
            self.merge(c, later.add[c], later.rem[c])

    def entries(self, chunk: int):
        """The stream entries of this segment: msgpack lists of runs [op, channel, [numbers]], at most
        `chunk` numbers an entry, produced a chunk at a time (a million-number difference is never one list)."""
        cur, size = [], 0
        for op, ch, b in self.runs():
            for i in range(0, len(b), chunk):
                part = list(b[i:i + chunk])
                if cur and size + len(part) > chunk:
                    yield msgpack.packb(cur)
                    cur, size = [], 0
                cur.append([op, ch, part])
                size += len(part)
        if cur:
            yield msgpack.packb(cur)
