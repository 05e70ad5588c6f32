"""The serves that load a model path, found by `ml promote | rollback` whatever data dir it was given.

`ml promote` told the serve on the control socket of the data dir it resolved itself (--data-dir, else
$TELFILTER_DATA_DIR, else ~/.local/share/telfilter): the analyst's shell rarely names the data dir serve runs with
(the config does not hold it), so with `--config /etc/telfilter` only the promote found no serve, said "installed;
serve loads it when it starts" (exit 0), and the running serve kept its old model until something reloaded it.

Each serve whose `[ml] model` is set notes its control socket, once it listens, in that path's versions directory:
`.<name>.versions/serves/<id>` (the id a digest of the socket's path) holding the socket's absolute path; its
clean stop removes the note. Promote and rollback tell every serve noted there as well as their data dir's. A
killed serve's note stays until a promote finds no serve answering on its socket and removes it. A serve that cannot
write there (the directory not its to write) says so at its start and is reached through its data dir only.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .promote import SERVES as DIR, versions_dir


def _entry(target: Path, sock: Path) -> Path:
    sock = Path(os.path.abspath(sock))
    return versions_dir(target) / DIR / hashlib.sha256(os.fsencode(sock)).hexdigest()[:16]


def register(target: Path, sock: Path) -> Path:
    """Note that the serve on `sock` loads the model path `target`; the note's path (OSError when it cannot)."""
    from ..durable import replace_file
    e = _entry(target, sock)
    replace_file(e, os.fsencode(os.path.abspath(sock)) + b"\n")
    return e


def unregister(entry: Path | None) -> None:
    if entry is not None:
        try:
            entry.unlink(missing_ok=True)
        except OSError:
            pass


def registered(target: Path) -> list[Path]:
    """The control sockets of the serves noted for `target`, oldest note first."""
    d = versions_dir(target) / DIR
    try:
        notes = sorted((p for p in d.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
    except OSError:
        return []
    out = []
    for p in notes:
        try:
            s = p.read_bytes().rstrip(b"\n")
        except OSError:
            continue
        if s:
            out.append(Path(os.fsdecode(s)))
    return out


def forget(target: Path, sock: Path) -> None:
    """A noted serve no longer there (no serve answers on its socket)."""
    unregister(_entry(target, sock))
