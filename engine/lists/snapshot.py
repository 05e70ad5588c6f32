"""Snapshot files: one per list kind, written by atomic rename, verified on load.

Layout (all integers big-endian):

    b"TFSNAP1\\n" | u32 meta_len | msgpack(meta) | section bytes ...

`meta` names each section with its length and CRC-32; roaring bitmaps are stored in
pyroaring's portable serialisation, everything else as msgpack. A file whose length or
checksums do not match is refused (`SnapshotError`); the writer keeps the previous good
generation as `<name>.prev` so a reader can fall back to it.
"""
from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import msgpack

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
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack(">I", len(mb)) + mb)
            for b in sections.values():
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)         # a full disk leaves no half-written generation behind
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


def fsync_dir(d: Path) -> None:
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_snapshot(path: Path, kind: str) -> tuple[dict[str, bytes], dict]:
    path = Path(path)
    try:
        data = path.read_bytes()
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
    return out, meta.get("extra", {})
