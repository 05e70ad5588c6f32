"""A key of the report's tables (a sender, a caller, a model version) kept at a fixed size whatever the log holds
(aggregate.py's theory of operation; no I/O here)."""
from __future__ import annotations

import hashlib

MAX_KEY = 128           # characters of a sender, caller or model version kept (none the engine registers is near)


def bounded(s: str) -> str:
    """`s`, or past MAX_KEY characters its first 80 with its length and a digest of the whole: still readable,
    two long ones alike up to the cut still two rows, at a fixed size."""
    if len(s) <= MAX_KEY:
        return s
    d = hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{s[:80]}…[{len(s)} chars {d}]"
