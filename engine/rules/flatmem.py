"""Flat word arrays in anonymous mappings: the storage of the tables' rows and indexes (slots.py).

A table reserves address space for all the rows it may ever hold and the kernel commits a page
only when it is first touched, so a table of any size is allocated at once and never moves its
rows; moved-out parts of an index are given back with madvise. Where strict overcommit refuses
the reservation, `room` falls back to arrays grown by copying.
"""
from __future__ import annotations

import mmap
import sys

_RESERVE = 1 << 30                  # bytes of address space reserved for a table's rows at most (more: copied)
# an anonymous mapping's pages are only committed when touched; Linux does not count the
# untouched reservation against the commit limit with MAP_NORESERVE (0x4000, not in Python's mmap)
_NORESERVE = 0x4000 if sys.platform.startswith("linux") else 0


def zeros(fmt: str, n: int) -> memoryview:
    """n zeroed words of struct format `fmt` ("Q" or "I") in an anonymous mapping: the kernel
    hands out zero pages on first touch, so a table of any size is allocated at once (an
    `array` of 40 MB is zero-filled in ~50 ms, a pause), and moved-out parts can be given back
    with madvise. Indexing and slicing are as fast as an array's."""
    size = 8 if fmt == "Q" else 4
    try:
        m = mmap.mmap(-1, max(1, n) * size, flags=mmap.MAP_PRIVATE | _NORESERVE)
    except (OSError, ValueError):
        # private too: a shared mapping would show a forked snapshot writer (state/forksnap.py) the
        # parent's later writes
        m = mmap.mmap(-1, max(1, n) * size, flags=mmap.MAP_PRIVATE)
    _no_huge_pages(m)
    return memoryview(m).cast("B").cast(fmt)


def _no_huge_pages(m) -> None:
    """No transparent huge pages for a table (where THP is "always", as on many distributions): the state
    snapshot is written by a forked child (state/forksnap.py), and while it runs every first write to a
    page the parent shares with it copies the page -- 4 KB, or 2 MB of a huge page, a latency spike per
    table row touched (the reason Redis asks for THP off)."""
    advice = getattr(mmap, "MADV_NOHUGEPAGE", None)
    if advice is not None:
        try:
            m.madvise(advice)
        except (OSError, ValueError):
            pass


def copy(fmt: str, data, n: int | None = None) -> memoryview:
    """A table array holding a copy of `data` (bytes, array or memoryview of that format),
    `n` words long (at least the data's length)."""
    b = memoryview(data).cast("B")
    size = 8 if fmt == "Q" else 4
    v = zeros(fmt, max(len(b) // size, n or 0))
    v.cast("B")[:len(b)] = b
    return v


def room(fmt: str, data, n: int) -> memoryview:
    """`copy(fmt, data, n)` for a row array: where the address space for n words cannot be had
    (strict overcommit ignores MAP_NORESERVE), room for twice the data, grown later by copying."""
    try:
        return copy(fmt, data, n)
    except OSError:
        size = 8 if fmt == "Q" else 4
        return copy(fmt, data, 2 * len(memoryview(data).cast("B")) // size + 1024)


def release(v: memoryview, start: int) -> None:
    """Give the pages of words [start, end) of a table array back to the kernel (they read as 0)."""
    size = v.itemsize
    a = -(-start * size // mmap.PAGESIZE) * mmap.PAGESIZE
    end = len(v) * size // mmap.PAGESIZE * mmap.PAGESIZE
    if end > a:
        v.obj.madvise(mmap.MADV_DONTNEED, a, end - a)


def reserve_rows(width: int, max_keys: int, top: int = 0) -> int:
    """Rows to reserve: room for max_keys rows, or what _RESERVE bytes hold (then grown by copying)."""
    return max(top + 1, min(max_keys + 1, max(1024, _RESERVE // (4 * width + 8))))
