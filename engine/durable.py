"""Durable writes. Appends: every journal telfilter appends to (the DNC journal, reports.jsonl, the state journal's
segments, the analysts' labels) goes through `append_all`. Whole files written at a stop (held receipts, the
message-id map) go through `replace_file`; a directory whose entries changed goes through `fsync_dir`.

`os.write` may write less than it was given (a nearly full disk, a file-size limit): a record cut short and
then fsynced would be reported as written, and on the next start the reader would drop it (or, in a
framed journal, everything after it). `append_all` writes every byte or none: on any error it cuts the
file back to the length it had and raises, so the caller can keep the record and answer "not done".
"""
from __future__ import annotations

import errno
import os
from pathlib import Path


def process_umask() -> int:
    """The process's umask, read (Linux 4.7+: /proc/self/status "Umask:") rather than set and put back: os.umask(0)
    then back leaves it 0 in between, and a file another thread creates then is world-writable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)              # (no /proc: the narrowest window, and 077 in it, not 0)
    os.umask(mask)
    return mask


class TornWrite(OSError):
    """An append failed and the file could not be cut back: it now ends in part of a record."""


def append_all(fd: int, data: bytes) -> None:
    """Append all of `data` to `fd` (opened with O_APPEND; the caller holds whatever lock keeps other
    writers out) and fsync it. On failure the file is cut back to its old length and the error raised;
    if that too fails, TornWrite."""
    start = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as e:
        try:
            os.ftruncate(fd, start)
        except OSError as e2:
            raise TornWrite(e.errno, f"{e.strerror or e}; cutting the torn record off failed too: {e2}") from e
        raise


def ends_in_newline(fd: int) -> bool:
    """True when the file at `fd` is empty or its last byte is a newline (a line-per-record journal
    whose last append was not cut short)."""
    size = os.fstat(fd).st_size
    return not size or os.pread(fd, 1, size - 1) == b"\n"


def fsync_dir(d: Path) -> None:
    """fsync a directory, so the names created, renamed or removed in it are durable (a rename alone can be
    undone by a power cut)."""
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def make_parent(path) -> Path | None:
    """Make the directory `path` goes in, and its parents, as every output file does (`check --out NEW/f` said "No
    such file or directory" after the whole input had been checked). Returns the topmost directory it made (None:
    there already), for `remove_made` when nothing is written after all. A parent that is a file:
    NotADirectoryError naming `path` (mkdir's FileExistsError named nothing)."""
    path = Path(path)
    top, d = None, path.parent
    while not os.path.lexists(d) and d != d.parent:
        top, d = d, d.parent
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from None
    return top


def remove_made(path, top: Path | None) -> None:
    """Remove the directories make_parent(`path`) made, up to `top`, each only while empty (a command that failed
    left an empty NEW/ of its `--out NEW/f` behind)."""
    d = Path(path).parent
    while top is not None:
        try:
            d.rmdir()
        except OSError:
            return
        if d == top:
            return
        d = d.parent


def replace_file(path, data: bytes, tmp: Path | None = None) -> None:
    """Write `data` as the whole of `path` (`rename_in`), then fsync the directory, so the new name is durable too
    (without it a power cut could bring back the old file, or none)."""
    path = Path(path)
    make_parent(path)
    rename_in(path, data, tmp)
    fsync_dir(path.parent)


def pid_alive(pid: str) -> bool:
    """Whether the process `pid` (a file name's part) may still be alive: only one known gone is not (not a number,
    or another user's: not ours to judge, taken as alive)."""
    try:
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True


def remove_dead_writers_tmp(path) -> int:
    """Remove the temporary files `rename_in` left beside `path` under its default name (`.NAME.PID.tmp`) whose
    writer is no longer alive (killed -9 between its write and its rename: one such file for good per crash). A
    live process's file is left alone. Returns how many were removed."""
    path, n = Path(path), 0
    for p in path.parent.glob(f".{path.name}.*.tmp"):
        pid = p.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(pid):
            p.unlink(missing_ok=True)
            n += 1
    return n


def rename_in(path: Path, data: bytes, tmp: Path | None = None) -> None:
    """Write `data` as the whole of `path`: a temporary file beside it (`tmp`, by default `.NAME.PID.tmp`: a
    writer whose leftovers a sweeper finds by another name passes its own), fsynced, then renamed over it, so a
    reader finds the old content or the new, never part of it. On any error no temporary file is left."""
    if tmp is None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(create_new(tmp), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def create_new(tmp: Path) -> int:
    """`tmp` created by this call (mode 0666 less the umask, as open(2) gives), never opened through what is there:
    a symbolic link planted at the name (by another user who can write the directory) had the data written into
    the file it names. What is there is removed first (unlink removes a link, not the file it names): a dead
    writer's leftover under the same pid (a container restarted) was written over, and still is."""
    for _ in range(3):
        try:
            return os.open(tmp, _NEW_FILE, 0o666)
        except FileExistsError:
            os.unlink(tmp)
    return os.open(tmp, _NEW_FILE, 0o666)       # planted again each time: FileExistsError, nothing written


def output_target(path) -> Path:
    """The file an output written whole by a rename (`check --out`, `lists export --out`, `reports export --out`, ...)
    replaces: `path` itself, or when `path` is a symbolic link the file it names (resolved through every link), so
    the rename is made in that file's own directory and the link is kept. As a shell's `>`, `cp`, `sort -o` and
    git's lock files (`config.lock` beside the resolved config) do; `install`, `mv` and `sed -i` replace the link with
    a plain file and leave the file it named as it was, which for a link to a shared file (a team's labelled set, a
    published zone) reads as written when it was not. Only the temporary file must never be opened through a link
    (`create_new`): its name is predictable, the output's is the one the user gave.

    A link whose file does not exist yet (dangling) is written through when that file's directory exists; otherwise
    FileNotFoundError naming the link and its target: `make_parent` made the directories along the link's target
    (a typo in a link, or one left from another machine, grew a tree wherever it pointed). A link in a loop: ELOOP."""
    path = Path(path)
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    if target.is_symlink():             # realpath gives up on a loop and returns a link
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
    if not target.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"a symbolic link to {target}, whose directory does not exist "
                                "(not made along a link: make it, or give another file)", str(path))
    return target
