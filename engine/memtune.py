"""glibc malloc in a long-running serve: a fixed mmap threshold.

glibc serves an allocation of at least M_MMAP_THRESHOLD bytes with a mapping of its own, returned to the system
when freed; below it, from a heap arena, which gives memory back only from its top. The threshold is dynamic by
default: freeing a mapped block of up to 32 MB raises it to that block's size. A model reload frees the old
model's arrays (tens of MB, mapped), so from then on arrays of that size come from the heaps -- the next reload's
among the proxy's small objects, where freeing them returns nothing: RSS grew in steps at each reload in the churn
soak (benchmarks/soak.py). Measured (15 reloads of the bundled model and the rules in a worker thread, as `ctl
reload` does): RSS 177-196 MB with the dynamic threshold, 118-119 MB with it fixed at 1 MB.

Fixed at THRESHOLD (set explicitly, glibc stops adjusting it): large arrays are always mapped and always given
back; nothing on the per-message path allocates that much. Left alone where the operator set
MALLOC_MMAP_THRESHOLD_ themselves, and on a C library other than glibc.
"""
from __future__ import annotations

import ctypes
import os
import platform

M_MMAP_THRESHOLD = -3       # glibc's malloc.h
THRESHOLD = 1 << 20


def fix_mmap_threshold() -> bool:
    """True when the threshold was fixed at THRESHOLD."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is not None or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return mallopt(M_MMAP_THRESHOLD, THRESHOLD) == 1
