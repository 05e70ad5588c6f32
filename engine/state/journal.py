"""Framed, CRC-checked files for the embedded state store: journal segments and snapshots.

A journal segment (`state/journal.NNNNNNNN`) is a run of frames, each one flush of the
commit buffer: `u32 length | u32 crc32(payload) | payload` (little-endian), the payload a
msgpack list of records. A frame is written whole and fsync'ed before the next one starts,
so only the last frame of the last segment can be cut short by a crash; a reader stops at a
frame whose length runs past the end of the file, skips one whose payload fails its CRC when
the frames after it check out (a damaged byte: the length still frames the rest) and otherwise
stops there too, and reports where (file:offset) so nothing is lost silently.

A snapshot (`state/snapshot`, the previous one kept as `state/snapshot.prev`) is one frame
behind a magic line, written to a temporary file, fsync'ed and renamed in (atomic).
"""
from __future__ import annotations

import mmap
import os
import struct
import zlib
from pathlib import Path

import msgpack

from ..durable import create_new, fsync_dir

_HDR = struct.Struct("<II")
SNAP_MAGIC = b"TELFILTER-STATE 1\n"
# the magic's version is the snapshot's format: a version that changes what a snapshot holds writes another
# number, which this one refuses by name (NewerFormat) instead of taking the file for a damaged one
_SNAP_FAMILY = b"TELFILTER-STATE "


class CorruptFile(Exception):
    """A snapshot that cannot be used (missing magic, short, CRC mismatch)."""


class NewerFormat(Exception):
    """A snapshot of a state format this version does not read: written by another (newer) telfilter. Not damage:
    taken for damage, it would be set aside and replaced by the next snapshot, and its counters lost for good."""


def frame(records: list) -> bytes:
    payload = msgpack.packb(records, use_bin_type=True)
    return _HDR.pack(len(payload), zlib.crc32(payload)) + payload


def _scan(data: bytes, off: int) -> tuple[list, int, str | None]:
    """The frames from `off`: (their payloads, where the scan stopped, None | "torn" | "crc")."""
    out, n = [], len(data)
    while off < n:
        if off + _HDR.size > n:
            return out, off, "torn"
        ln, crc = _HDR.unpack_from(data, off)
        body = data[off + _HDR.size:off + _HDR.size + ln]
        if len(body) < ln:
            return out, off, "torn"
        if zlib.crc32(body) != crc:
            return out, off, "crc"
        out.append(body)
        off += _HDR.size + ln
    return out, off, None


def read_frames(path: Path) -> tuple[list, str | None]:
    """(records of every whole frame, a warning for a torn or corrupt tail or None).

    A frame whose payload fails its CRC while its length still frames what follows (a damaged byte in
    the payload: every frame after it, up to the end or a torn last one, checks out) is skipped alone;
    otherwise (the length itself damaged) it and everything after it are ignored, as a torn tail is."""
    data = path.read_bytes()
    n = len(data)
    bodies, off, why = _scan(data, 0)
    warns = []
    if why == "crc":
        ln = _HDR.unpack_from(data, off)[0]
        rest, end, rest_why = _scan(data, off + _HDR.size + ln)
        if rest_why == "crc" or (not rest and rest_why is not None):
            warns.append(f"{path}:{off}: journal record fails its CRC; it and the {n - off - ln - _HDR.size} "
                         "bytes after it ignored")
            why = None
        else:
            warns.append(f"{path}:{off}: journal record fails its CRC ({ln + _HDR.size} bytes): skipped, the "
                         f"{len(rest)} after it read")
            bodies += rest
            off, why = end, rest_why
    if why == "torn":
        warns.append(f"{path}:{off}: torn last journal record ({n - off} bytes) ignored")
    out = []
    for body in bodies:
        out.extend(msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True))
    return out, "; ".join(warns) or None


BIG = 1 << 16          # bin values this long (msgpack bin 32) are written from the caller's buffer, never copied
_BIN32 = struct.Struct(">BI")


def encode_parts(obj) -> list:
    """`msgpack.packb(obj, use_bin_type=True)` as a list of buffers whose concatenation is exactly
    those bytes, with every bytes-like value of BIG bytes or more referenced rather than copied: a
    snapshot of tables of N bytes then needs N more bytes to write, not 2N (the packed payload)."""
    pk = msgpack.Packer(use_bin_type=True)
    parts: list = []
    small = bytearray()

    def walk(v):
        if isinstance(v, (bytes, bytearray, memoryview)):
            n = memoryview(v).nbytes
            if n >= BIG:
                if n >= 1 << 32:
                    raise ValueError(f"value of {n} bytes is too long for msgpack")
                small.extend(_BIN32.pack(0xC6, n))
                parts.append(bytes(small))
                small.clear()
                parts.append(memoryview(v).cast("B"))
                return
        if isinstance(v, dict):
            small.extend(pk.pack_map_header(len(v)))
            for k, x in v.items():
                walk(k)
                walk(x)
        elif isinstance(v, (list, tuple)):
            small.extend(pk.pack_array_header(len(v)))
            for x in v:
                walk(x)
        else:
            small.extend(pk.pack(v))

    walk(obj)
    if small:
        parts.append(bytes(small))
    return parts


def write_snapshot(path: Path, obj) -> None:
    """Write `obj` (msgpack-able) to `path` atomically; the file it replaces becomes `path.prev`."""
    tmp = snapshot_tmp(path)
    write_snapshot_tmp(tmp, obj)
    install_snapshot(path, tmp)


def snapshot_tmp(path: Path, tag="w") -> Path:
    """A temporary name for a next `path`, unique to this process and `tag` (a writer left running by
    a process that was killed never writes into its successor's file, nor two snapshots into one)."""
    return path.with_name(f"{path.name}.tmp.{os.getpid()}.{tag}")


def write_snapshot_tmp(tmp: Path, obj) -> None:
    """Write `obj` to `tmp` and fsync it, from `encode_parts` (large values straight from their
    buffers: no packed copy). `install_snapshot` then puts it in place."""
    parts = encode_parts(obj)
    size, crc = 0, 0
    for b in parts:
        size += len(b)
        crc = zlib.crc32(b, crc)
    with os.fdopen(create_new(tmp), "wb") as f:            # never through a link planted at the name
        f.write(SNAP_MAGIC + _HDR.pack(size, crc))
        for b in parts:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())


def install_snapshot(path: Path, tmp: Path) -> None:
    """`tmp` becomes `path` (atomic rename); the file it replaces becomes `path.prev`. `path` exists at
    every instant (the current one is hard-linked to `.prev`, then `tmp` renamed over it): a reader, or a
    crash between the steps, never finds the snapshot missing."""
    if path.exists():
        link = snapshot_tmp(path, "prev")       # a snapshot.tmp* name: a crash's leftover is swept at start
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, path.with_name(path.name + ".prev"))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_snapshot(path: Path):
    """The object in a snapshot, read through a mapping of the file (its pages are the page cache's,
    not the process's, so loading N bytes of tables peaks at ~2N of memory, not 3N)."""
    m = len(SNAP_MAGIC)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < m + _HDR.size:
            raise CorruptFile(f"{path}: not a telfilter state snapshot")
        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                if view[:m] != SNAP_MAGIC:
                    head = bytes(view[:32])
                    if head.startswith(_SNAP_FAMILY) and b"\n" in head:
                        fmt = head[len(_SNAP_FAMILY):head.index(b"\n")].decode("ascii", "replace")
                        raise NewerFormat(f"{path}: state format {fmt!r}, written by another telfilter version "
                                          f"(this one reads format {SNAP_MAGIC[len(_SNAP_FAMILY):-1].decode()})")
                    raise CorruptFile(f"{path}: not a telfilter state snapshot")
                ln, crc = _HDR.unpack_from(view, m)
                body = view[m + _HDR.size:]
                if len(body) != ln or zlib.crc32(body) != crc:
                    raise CorruptFile(f"{path}: snapshot is truncated or fails its CRC")
                return msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True)
            finally:
                body = None
                view.release()
