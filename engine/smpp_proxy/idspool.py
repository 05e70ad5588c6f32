"""The crash spool's records of message ids (idlog.py's module text): a forwarded message's id, account and note
copied into the spool (engine/crashspool.py) as it is noted, and read back from a dead writer's spool."""
from __future__ import annotations

import os
import struct

from ..crashspool import Spool

# a record put into the ring in C in its common case (an ASCII id; engine/_idrecord.h): ~7,000 instructions less a
# forwarded message. TELFILTER_STAMPS_PURE=1 (that module's switch) or no module: `_noted` alone, the reference
_c_record = None
if os.environ.get("TELFILTER_STAMPS_PURE") != "1":
    try:
        from .._stamps import spool_record as _c_record
    except ImportError:
        pass

# a spool record: id length, account name length, note (low and high 64 bits), then the id and the account (UTF-8)
_ID = struct.Struct("<HHQQ")
_LOW = (1 << 64) - 1


class SpoolJournal(list):
    """`MessageIds.journal` while the log runs: the ids added since the last write (the list `flush` packs), and
    `noted`: a forwarded message's id, account and note copied into the crash spool at once."""
    __slots__ = ("spool", "accounts", "names", "unspooled")

    def __init__(self, spool, accounts: list):
        super().__init__()
        self.spool = spool
        self.accounts = accounts            # MessageIds' account names, by number (grows as accounts come)
        self.names: list = []               # the same, UTF-8
        self.unspooled = 0                  # records the spool had no room for (a disk stalled that long)

    def noted(self, mid: str, account: int, note: int) -> None:
        sp = self.spool
        if sp is None:
            return
        names = self.names
        while len(names) <= account:
            names.append(self.accounts[len(names)].encode("utf-8", "surrogateescape"))
        # (the spool's `append` of this record, done in C: the same bytes, `end` and header; None: not its case; a
        # ring that overwrites, as a verdict log's, is not the id log's)
        end = None if _c_record is None or type(sp) is not Spool or sp.overwrite else \
            _c_record(sp.ring, sp.head, sp.end, sp.written, sp.cap, mid, names[account], note)
        if end is None:
            return self._noted(sp, mid, names[account], note)
        if end < 0:
            self.unspooled += 1
        else:
            sp.end = end

    def _noted(self, sp, mid: str, name: bytes, note: int) -> None:
        b = mid.encode("utf-8", "surrogateescape")
        if not sp.append(_ID.pack(len(b), len(name), note & _LOW, note >> 64) + b + name):
            self.unspooled += 1


def spool_records(data: bytes) -> dict:
    """A dead writer's unwritten spool records as `MessageIds.columns()` (ValueError: not records)."""
    accounts, numbers, ids, of, sent = [], {}, [], [], bytearray()
    o, size, end = 0, _ID.size, len(data)
    while o < end:
        if o + size > end:
            raise ValueError(f"a record cut at byte {o}")
        ni, na, lo, hi = _ID.unpack_from(data, o)
        o += size
        if o + ni + na > end:
            raise ValueError(f"a record cut at byte {o}")
        mid = data[o:o + ni].decode("utf-8", "surrogateescape")
        name = data[o + ni:o + ni + na].decode("utf-8", "surrogateescape")
        o += ni + na
        k = numbers.get(name)
        if k is None:
            k = numbers[name] = len(accounts)
            accounts.append(name)
        ids.append(mid)
        of.append(k)
        sent += struct.pack("<QQ", lo, hi)
    return {"accounts": accounts, "ids": ids, "account_of": of, "sent": bytes(sent)}
