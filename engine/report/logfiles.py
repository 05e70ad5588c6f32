"""Which files a reading of verdict logs takes, and how it holds them (reader.py reads their lines).

Each file once (`distinct_logs`: a path and a symlink to it, X and the X.gz logrotate is compressing); every regular
one held open by a descriptor from the start of the reading (`hold_room`, `_held`; logmerge.py holds its own the
same way), so a logrotate meanwhile cannot give a name to another file before it is reached; the compressions a log
may be in, known by their magic bytes (`_MAGIC`). Stdin (`-`), a FIFO or `<(…)` is no regular file: read once, as it
comes, never held.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import resource
import stat
import sys
import zlib

_MAGIC = ((b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f)), (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile))


def distinct_logs(paths) -> tuple[list, list[str]]:
    """`paths` with each file once (a path and a symlink to it, or a path a glob and a hand both named, were each
    read and counted again), and the repeats left out, each as `path (the same file as first)`; and X.gz (.bz2, .xz)
    given with X left out when it decompresses to X or to a start of it (logrotate compressing X). A path that cannot
    be looked at is kept: reading it says why."""
    seen: dict = {}
    keep, repeated = [], []
    for p in paths:
        try:
            st = os.stat(p) if p != "-" else None
        except OSError:
            st = None
        key = (st.st_dev, st.st_ino) if st is not None else None
        if key is not None and key in seen:
            repeated.append(f"{p} (the same file as {seen[key]})")
            continue
        if key is not None:
            seen[key] = p
        keep.append(p)
    # logrotate's `compress` writes X.gz beside X and removes X once done: meanwhile a glob names both
    for p in list(keep):
        base = next((str(p)[:-len(x)] for x in _SUFFIXES if str(p).endswith(x)), None)
        try:
            st = os.stat(base) if base else None
        except OSError:
            st = None
        plain = seen.get((st.st_dev, st.st_ino)) if st is not None else None
        if plain is not None and _is_copy(p, plain):
            keep.remove(p)
            repeated.append(f"{p} (a compressed copy of {plain}, which is read: this one is left out)")
    return keep, repeated


_SUFFIXES = (".gz", ".bz2", ".xz")


def _is_copy(packed, plain) -> bool:
    """Whether `packed` decompresses to `plain`'s bytes or to a start of them (a copy still being written)."""
    try:
        with open(packed, "rb") as raw, open(plain, "rb") as ref:
            head = raw.peek(6)[:6]
            cls = next((c for magic, c in _MAGIC if head.startswith(magic)), None)
            if cls is None:
                return False
            z = cls(raw)
            try:
                while chunk := z.read(1 << 16):
                    if ref.read(len(chunk)) != chunk:
                        return False
            except (EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile):
                pass                        # cut short (or damaged) after a start that is the plain file's
            return True
    except OSError:
        return False



def held_most() -> int:
    """How many logs a reading holds open from its start at most: half the descriptor limit (the other half for
    what else the command opens: a log's own reading, the report's outputs, matplotlib's fonts)."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ValueError, OSError):
        return 64
    return sys.maxsize if soft == resource.RLIM_INFINITY else soft // 2


def hold_room(paths) -> None:
    """Room for every regular log of `paths` to be held open from the start of the reading (`_held`, logmerge): the
    soft open-files limit raised toward the hard one when they need more than half of it, else an OSError (exit 2)
    before anything is read or written. A log past the room was opened by name when reached (512 at most were
    held): a logrotate meanwhile gave that name the next newer log, counted twice, and left the oldest out."""
    n = sum(1 for p in paths if _regular(p))
    if n <= held_most():
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2 * n if hard == resource.RLIM_INFINITY else min(2 * n, hard)
        if want > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):       # (left as it is: said below)
        pass
    if n > held_most():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        raise OSError(f"{n} logs given: each is held open from the start of the reading (a logrotate meanwhile would "
                      f"make a log read by its name then count twice and another not at all), and the open-files "
                      f"limit ({soft}, hard limit {hard}) holds {held_most()}: raise it (`ulimit -n {2 * n}` as root, "
                      f"or LimitNOFILE=), or read fewer logs at once (pipe older ones in: `zcat old/*.gz | telfilter "
                      f"report --log -`); nothing read")


def _held(paths) -> dict:
    """Index -> a descriptor of each regular log among `paths`, opened now (at most held_most(); one that cannot be
    opened is left to be opened by name when reached, which says why)."""
    held, keep = {}, held_most()
    for i, p in enumerate(paths):
        if len(held) >= keep:
            break
        if _regular(p):
            try:
                held[i] = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass
    return held


def _regular(p) -> bool:
    """A file that can be read twice (not stdin, a pipe or `<(…)`: a first look would take lines from it)."""
    try:
        return p != "-" and stat.S_ISREG(os.stat(p).st_mode)
    except OSError:
        return False
