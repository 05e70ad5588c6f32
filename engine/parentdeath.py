"""A child process that must not outlive its parent: Linux's PR_SET_PDEATHSIG, then a check that the
parent it was started by is still its parent (it may have died between the fork and the call)."""
from __future__ import annotations

import os
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int, parent: int) -> bool:
    """Ask the kernel for `sig` when our parent dies (Linux; elsewhere nothing). False when `parent` is
    no longer our parent: the caller stops at once."""
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    return os.getppid() == parent
