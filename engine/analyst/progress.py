"""Progress bars while the analyst tools read and group a large report store (none when small or not on a terminal)."""
from __future__ import annotations

from pathlib import Path


def bar(path: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
        size = path.stat().st_size
    except (ImportError, OSError):
        return None
    # disable=None: no bar when stderr is not a terminal; none for small stores
    return tqdm(total=size, unit="B", unit_scale=True, desc="reading reports", leave=False,
                disable=None if size > 4 << 20 else True)


def count_bar(total: int, desc: str, enabled: bool):
    if not enabled or total < 20000:         # ~75 µs a report: below this it is done in under 2 s
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="report", desc=desc, leave=False, disable=None)
