"""The data dir's SMPP files a `serve` process holds for its life (engine/serve.py)."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


def lock_serve_files(data_dir: Path, worker: int) -> int:
    """flock the data dir's SMPP files of this process (worker i of a pool: its own set) for its life.

    Held receipts, the message-id log and map, the 5656 parts journal and the scheduled-ads journal are each
    rewritten whole at a start and a stop, and appended to by record numbers of one run: a second serve on them
    renames its copy over the first's and its records cancel the first's by number (receipts the SMSC was told
    were delivered, lost at the first's next crash). The embedded store's state/lock kept a second serve out;
    with --state redis:// nothing did. Released by the kernel when the process dies (kill -9 included)."""
    d = data_dir / "smpp"
    d.mkdir(parents=True, exist_ok=True)
    name = f"serve.w{worker}.lock" if worker else "serve.lock"
    fd = os.open(d / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        from .state import StateError
        raise StateError(f"{data_dir}: in use by another telfilter serve (smpp/{name} is held)") from None
    return fd
