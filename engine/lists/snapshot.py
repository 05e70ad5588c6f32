"""Snapshot files: one per list kind, written by atomic rename, verified on load.

Layout (all integers big-endian):

    b"TFSNAP1\\n" | u32 meta_len | msgpack(meta) | section bytes ...

`meta` names each section with its length and CRC-32; roaring bitmaps are stored in
pyroaring's portable serialisation, everything else as msgpack. A file whose length or
checksums do not match is refused (`SnapshotError`); the writer keeps the previous good
generation as `<name>.prev` so a reader can fall back to it.

A file's identity (`snapshot_identity`, and the one `read_snapshot_identified` gives of the bytes it read) is what
serve's lists reload compares to read again only the lists whose files changed: the inode and device, the size,
mtime_ns and ctime_ns (a file renamed in, copied over in place or given back an old mtime by `cp -p`/`touch -d`
changes the ctime, which no one can set), and a digest of the header and metadata, which hold every section's
length and CRC-32 and the time the generation was written: a different generation copied over in place within one
timestamp tick, same size, still differs there. Only section bytes changed in place with the metadata left alone
(a damaged file, which its CRCs would refuse) are not seen; the set in force keeps the good contents read before.
"""
from __future__ import annotations

import hashlib
import os
import struct
import time
import zlib
from pathlib import Path

import msgpack

from ..durable import create_new, fsync_dir

MAGIC = b"TFSNAP1\n"
FORMAT_VERSION = 1


class SnapshotError(Exception):
    def __init__(self, path, reason):
        super().__init__(f"{path}: refusing snapshot: {reason}")
        self.path, self.reason = path, reason


def write_snapshot(path: Path, kind: str, sections: dict[str, bytes], extra: dict | None = None) -> None:
    install_snapshot(prepare_snapshot(path, kind, sections, extra), path, kind)


def prepare_snapshot(path: Path, kind: str, sections: dict[str, bytes], extra: dict | None = None) -> Path:
    """Write the complete new generation beside `path` (fsynced); returns the temporary file."""
    path = Path(path)
    meta = {"kind": kind, "format": FORMAT_VERSION, "created": time.time(),
            "sections": [[name, len(b), zlib.crc32(b)] for name, b in sections.items()],
            "extra": extra or {}}
    mb = msgpack.packb(meta, use_bin_type=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with os.fdopen(create_new(tmp), "wb") as f:        # never through a link planted at the name
            f.write(MAGIC + struct.pack(">I", len(mb)) + mb)
            for b in sections.values():
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        tmp.unlink(missing_ok=True)         # a full disk leaves no half-written generation behind
        if isinstance(e, OSError) and not e.filename:       # (a write's error names no file: "File too large")
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    return tmp


def install_snapshot(tmp: Path, path: Path, kind: str) -> None:
    """Rename a prepared generation in, keeping the current one as `.prev` if it is good. `path` exists
    at every instant (the current generation is hard-linked to `.prev`, then the new one renamed over
    it): a crash between the steps leaves a loadable list, never a missing one."""
    path = Path(path)
    if path.exists():
        prev = path.with_name(path.name + ".prev")
        try:
            read_snapshot(path, kind)          # keep only a *good* previous generation
        except SnapshotError:
            pass
        else:
            link = path.with_name(path.name + f".prev.tmp{os.getpid()}")
            link.unlink(missing_ok=True)
            os.link(path, link)
            os.replace(link, prev)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_snapshot(path: Path, kind: str) -> tuple[dict[str, bytes], dict]:
    secs, meta, _ = read_snapshot_identified(path, kind)
    return secs, meta.get("extra", {})


def _identity(st: os.stat_result, header: bytes) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, hashlib.blake2b(header).digest())


def snapshot_identity(path: Path) -> tuple | None:
    """The identity of the file at `path` now (see the module's docstring), None when there is none: a stat and
    a read of the header and metadata, never of the sections. An unreadable file gets one that equals no read."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(len(MAGIC) + 4)
            mlen = struct.unpack_from(">I", head, len(MAGIC))[0] if len(head) == len(MAGIC) + 4 else 0
            return _identity(st, head + f.read(min(mlen, max(st.st_size - len(head), 0))))
    except FileNotFoundError:
        return None
    except OSError as e:
        return ("unreadable", e.errno, time.monotonic_ns())


def read_snapshot_identified(path: Path, kind: str) -> tuple[dict[str, bytes], dict, tuple]:
    """The sections, the whole metadata (`extra`, the writer's; `created`, when the generation was written) and
    the identity of the file it read (taken from the same open file and bytes: a file replaced or written to after
    the read has another)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except OSError as e:
        raise SnapshotError(path, e.strerror or str(e)) from None
    if not data.startswith(MAGIC):
        raise SnapshotError(path, "not a telfilter snapshot (bad magic)")
    if len(data) < len(MAGIC) + 4:
        raise SnapshotError(path, "truncated header")
    (mlen,) = struct.unpack_from(">I", data, len(MAGIC))
    off = len(MAGIC) + 4
    if off + mlen > len(data):
        raise SnapshotError(path, "truncated metadata")
    try:
        meta = msgpack.unpackb(data[off:off + mlen], raw=False)
        secs = meta["sections"]
        mkind = meta["kind"]
        fmt = meta["format"]
    except Exception as e:  # msgpack raises several types for garbage
        raise SnapshotError(path, f"unreadable metadata ({e.__class__.__name__})") from None
    if mkind != kind:
        raise SnapshotError(path, f"holds list kind {mkind!r}, expected {kind!r}")
    if fmt != FORMAT_VERSION:
        raise SnapshotError(path, f"format version {fmt} not supported (this build reads {FORMAT_VERSION})")
    off += mlen
    out = {}
    for name, length, crc in secs:
        b = data[off:off + length]
        if len(b) != length:
            raise SnapshotError(path, f"truncated: section {name!r} has {len(b)} of {length} bytes")
        if zlib.crc32(b) != crc:
            raise SnapshotError(path, f"checksum mismatch in section {name!r}")
        out[name] = b
        off += length
    if off != len(data):
        raise SnapshotError(path, f"{len(data) - off} unexpected trailing bytes")
    return out, meta, _identity(st, data[:len(MAGIC) + 4 + mlen])
