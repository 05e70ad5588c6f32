"""Each list kind's sections in its snapshot (snapshot.py frames them): encoded from a `Lists` and decoded into
one. No I/O."""
from __future__ import annotations

import msgpack
from pyroaring import BitMap64

from .csvio import CsvError, SenderEntry, parse_row, sender_entry_row
from .ipranges import IpRanges
from .mlexempt import row_of as mlexempt_row
from .sets import Lists, owner_fold
from .snapshot import SnapshotError


def _ser_bitmap(b: BitMap64) -> bytes:
    b.run_optimize()
    return b.serialize()


def encode(kind: str, L: Lists) -> dict[str, bytes]:
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
    if kind == "mlexempt":
        return {"rows": msgpack.packb([mlexempt_row(L.ml_exempt[n]) for n in sorted(L.ml_exempt)])}
    raise CsvError(f"unknown list kind {kind!r}")


def _items(packed: bytes):
    """The items of a msgpack array one at a time: msgpack.unpackb of 200k registry rows is one call that held the GIL
    for 94-233 ms, the loop's longest stall in a reload (serve loads lists in a worker thread)."""
    up = msgpack.Unpacker(max_buffer_size=max(len(packed), 1))
    up.feed(packed)
    for _ in range(up.read_array_header()):
        yield up.unpack()
    if up.tell() != len(packed):
        raise ValueError(f"{len(packed) - up.tell()} bytes after the array")


def decode(kind: str, secs: dict[str, bytes], L: Lists, path) -> None:
    try:
        if kind == "dnc":
            L.dnc_s, L.dnc_v = BitMap64.deserialize(secs["S"]), BitMap64.deserialize(secs["V"])
        elif kind == "senders":
            L.senders = {}
            # one object for each owner, category, date and accounts set the rows repeat: 200k rows took 119 MB
            # as separate copies, 48 MB so (and 20% less time to load); entries are frozen, so sharing is safe
            same = {}.setdefault
            for row in _items(secs["rows"]):
                e = parse_row("senders", row, strict=False)      # (as stored: checks since are import's)
                L.add_sender(SenderEntry(e.sender, same(e.owner, e.owner), same(e.category, e.category),
                                         same(e.valid_from, e.valid_from), same(e.valid_to, e.valid_to),
                                         same(e.accounts, e.accounts)))
        elif kind == "blacklist":
            L.bl_numbers = BitMap64.deserialize(secs["numbers"])
            # strip: before parse_domain used fullmatch, "http://x.example\n/" was stored as "x.example\n"
            L.bl_domains = {d.strip() for d in _items(secs["domains"])}
            L.bl_ips = IpRanges.from_bytes(secs.get("ip4", b""), secs.get("ip6", b""))   # absent before kinds ip/cidr
        elif kind == "consent":
            L.consent, L.owner_names = {}, {}
            for k, name in msgpack.unpackb(secs["owners"]).items():
                f = owner_fold(name)        # keys saved before owner_fold were casefold only: merged
                bm = BitMap64.deserialize(secs["o:" + k])
                if not bm:          # an advertiser whose last number a `lists remove` took, saved before it went too
                    continue
                if f in L.consent:
                    L.consent[f] |= bm
                else:
                    L.consent[f], L.owner_names[f] = bm, name
        elif kind == "mlexempt":
            L.ml_exempt = {}
            for row in _items(secs["rows"]):
                L.add_ml_exemption(parse_row("mlexempt", row, strict=False))     # (expired rows too: as stored)
    except Exception as e:      # garbage that passed its CRC: msgpack, pyroaring and parse_row raise several types
        raise SnapshotError(path, f"bad section contents ({e.__class__.__name__}: {e})") from None
