"""What the stateless screen remembers of recent traffic, bounded in count and in bytes. No I/O.

Theory of operation: a stateless proxy (RFC 3261 §16.11) keeps no transactions, yet a few
answers need a short memory: the verdict of a call, so its retransmissions and the INVITE it
re-sends after a 401/407 challenge are not judged as new calls (the ad-call cap would reject
the call's own copies); where an INVITE went and with which branch, so the ACK of a non-2xx
final goes the same way (§17.1.1.3); which calls were answered (call durations); which final
responses were already counted. Each such memory is a `Recent`: at most `size` entries, the
oldest dropped first, each forgotten after `ttl` seconds. Keys are fixed-size whatever the
Call-ID's length (a Call-ID may be 8 KB), so an entry's size does not depend on what a peer
sends and the memory's bound in bytes is `size` times a constant:
  - `digest()`: the interpreter's 64-bit hash of the parts, for the memories only Python reads
    (verdicts, retries, finals_seen). str hashing is SipHash keyed per process, so a peer can
    neither predict nor aim collisions; by chance, two of 131,072 live keys collide with
    probability ~5e-10. It costs ~0.1 µs where a BLAKE2b object costs ~2 (three per INVITE);
  - `dialog_digest()`: 8 bytes of BLAKE2b keyed with the screen's `dialog_key`, for the answered-call memory, which
    is saved at a clean stop and read back at the next start (dialogstore.py): a process's `hash` is not the
    next one's. ~0.2 µs in C (one compression for a Call-ID, a tag and two users);
  - `ack_key()`: 16 bytes of BLAKE2b, which the C pump computes too (_sippump.h).
Time is an argument (`now`), never read here.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

DIGEST_SIZE = 16                # ack_key: 128 bits, shared with the C pump


def py_digest(*parts: str) -> int:
    """The fixed-size key of `parts` (e.g. Call-ID and From tag) for a memory Python alone reads: `digest`, which
    is the C extension's same hash when it is built (no call frame: 7 per INVITE)."""
    return hash(parts)


try:
    from ._sipfast import digest
except ImportError:
    digest = py_digest


def py_dialog_digest(key: bytes, *parts: str) -> int:
    """The fixed-size key of `parts` for the answered-call memory: the first 8 bytes of BLAKE2b over `key` then each
    part's UTF-8 length (4 bytes, little-endian) and bytes, as an int; the same in every process holding `key`
    (the C extension's `dialog_digest` computes the same)."""
    data = [key]
    for p in parts:
        b = p.encode("utf-8", "surrogatepass")
        data += (len(b).to_bytes(4, "little"), b)
    return int.from_bytes(hashlib.blake2b(b"".join(data), digest_size=8).digest(), "little")


try:
    from ._sipfast import dialog_digest
except ImportError:
    dialog_digest = py_dialog_digest


def ack_key(top_branch: str, call_id: str) -> bytes:
    """The key an INVITE and the ACK of its non-2xx final share (§17.1.1.3: the ACK carries the
    INVITE's branch and Call-ID). The C pump computes the same bytes (_sippump.h)."""
    return _blake2b(f"{top_branch}|{call_id}".encode("utf-8", "surrogateescape"), DIGEST_SIZE)


try:                                                    # the pump's own blake2b: one call, no hash object
    from ._sipfast import blake2b_digest as _blake2b
except ImportError:
    def _blake2b(data: bytes, n: int) -> bytes:
        return hashlib.blake2b(data, digest_size=n).digest()


class PyRecentCore:
    """Recent's hot methods in Python: what the C extension's RecentCore (_siprecent.h) does when it is built, and
    its twin in tests/test_sip_recent_c.py."""

    __slots__ = ("d", "low", "size", "ttl", "low_min")

    def get(self, key: bytes, now: float = 0.0, default=None):
        where = self.d
        ent = where.get(key)
        if ent is None:
            if not self.low:
                return default
            where = self.low
            ent = where.get(key)
            if ent is None:
                return default
        if self.ttl is not None and now - ent[0] > self.ttl:
            del where[key]
            return default
        return ent[1]

    def put(self, key: bytes, value, now: float = 0.0) -> None:
        d, low = self.d, self.low
        if key in d:
            del d[key]                                  # re-stored: it is the newest again
        elif low:
            low.pop(key, None)
        d[key] = (now, value)
        if len(d) + len(low) > self.size:
            self._bound()

    def put_low(self, key: bytes, value, now: float = 0.0) -> None:
        """Store `key` as the newest of the entries forgotten first (`low`); a `put` of it later makes it an
        ordinary entry (promotes it)."""
        d, low = self.d, self.low
        if key in low:
            del low[key]
        elif d:
            d.pop(key, None)
        low[key] = (now, value)
        if len(d) + len(low) > self.size:
            self._bound()

    def promote(self, key: bytes, value, now: float = 0.0) -> None:
        """`put` for a key `low` holds (a call answered): it moves to the ordinary entries, nothing to bound."""
        if self.low.pop(key, None) is None:
            return self.put(key, value, now)
        self.d[key] = (now, value)

    def pop(self, key: bytes, default=None):
        ent = self.d.pop(key, None)
        if ent is None and self.low:
            ent = self.low.pop(key, None)
        return default if ent is None else ent[1]

    def __len__(self):
        return len(self.d) + len(self.low)

    def add(self, key: bytes) -> bool:
        """Remember `key`; False if it was already there (a set of the last `size` keys)."""
        if key in self.d:
            return False
        self.put(key, None)
        return True


try:                                                    # the same methods in C (an INVITE calls them a dozen times)
    from ._sipfast import RecentCore
except ImportError:
    RecentCore = PyRecentCore


class Bounded:
    """Recent's other methods, on either core."""

    __slots__ = ()

    def __init__(self, size: int, ttl: float | None = None, low_min: int = 0):
        self.d: "OrderedDict[bytes, tuple]" = OrderedDict()
        self.low: "OrderedDict[bytes, tuple]" = OrderedDict()
        self.size, self.ttl = size, ttl
        self.low_min = min(low_min, size // 2)

    def __contains__(self, key):
        return key in self.d or (bool(self.low) and key in self.low)

    def _bound(self) -> None:
        d, low = self.d, self.low
        while len(d) + len(low) > self.size:
            (low if len(low) > self.low_min or not d else d).popitem(last=False)

    def demote(self, key: bytes) -> None:
        """Make `key` forgotten before any entry not demoted (the demoted ones oldest first); it stays
        until the bound needs its room, or a `put` makes it an ordinary entry again."""
        ent = self.d.pop(key, None)
        if ent is not None:
            self.low[key] = ent


class Recent(Bounded, RecentCore):
    """A bounded memory: digest -> (time stored, value). `d` is a plain OrderedDict (the C pump
    reads it with PyDict_Contains); `low` holds the entries stored with `put_low` or `demote`d,
    forgotten before any other (oldest first) when the bound needs room -- while `low` holds more
    than `low_min` of them: that many places stay theirs whatever `d` holds (else an ordinary entry,
    the oldest, goes). Both together hold at most `size`: so entries in `d` keep at least
    `size - low_min` places whatever is put low, and the low ones at least `low_min`. `get`, `put`,
    `put_low`, `promote`, `pop`, `add` and len() are RecentCore's (C when built, PyRecentCore otherwise)."""

    __slots__ = ()
