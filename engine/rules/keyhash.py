"""Key hashes of the flat tables (slots.py), the same in every process and on every machine.

`stable_hash`: ints as they are, strings and bytes by an 8-byte BLAKE2b digest, tuples folded
element by element; never Python's per-process salted `hash()`, because a snapshot or journal
written by one process, or a shared store (issue 13), must find the same rows in another.
`key_hash` multiplies it by an odd constant so ints spread over all 64 bits; `value_fp` is the
32-bit fingerprint of a counted value.
"""
from __future__ import annotations

from hashlib import blake2b as _blake

M64 = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15          # odd: multiplying by it is a bijection on 64-bit values

_STR_HASHES: dict = {}             # sender IDs and owners recur: their digests are cached (engine/rules/
#                                    _slotsfast.c reads this dict: it is cleared in place, never replaced)
_STR_CACHE = 1 << 16


def stable_hash(x) -> int:
    """A 64-bit hash of an int, str, bytes, None or tuple of those that is the same in every
    process (Python's `hash()` of a str is salted per process)."""
    t = type(x)
    if t is int or t is bool:
        return x & M64
    if t is str:
        h = _STR_HASHES.get(x)
        if h is None:
            if len(_STR_HASHES) >= _STR_CACHE:      # bounded; cleared whole: O(1) amortised
                _STR_HASHES.clear()
            h = _STR_HASHES[x] = int.from_bytes(
                _blake(x.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        return h
    if t is tuple:
        # the tuple hash of ints is not salted (only str/bytes hashes are): deterministic for a
        # given CPython >= 3.8, so strings are replaced by their digests and the rest is hash()
        return hash(tuple([e if type(e) is int else stable_hash(e) for e in x])) & M64
    if x is None:
        return 0x5A5A5A5A5A5A5A5A
    if t is bytes:
        return int.from_bytes(_blake(x, digest_size=8, person=b"b").digest(), "little")
    if t is float and x.is_integer():
        return int(x) & M64
    raise TypeError(f"no stable hash for {t.__name__}")


def key_hash(key) -> int:
    """64-bit hash of a state key (never 0, which marks an empty slot)."""
    return (stable_hash(key) * _MIX) & M64 or 1


def value_fp(value) -> int:
    """32-bit fingerprint of a counted value (never 0, which marks an empty entry)."""
    return ((stable_hash(value) * _MIX) >> 32) & 0xFFFFFFFF or 1
