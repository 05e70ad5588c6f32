"""Framed, CRC-checked files for the embedded state store: journal segments and snapshots.

A journal segment (`state/journal.NNNNNNNN`) is a run of frames, each one flush of the
commit buffer: `u32 length | u32 crc32(payload) | payload` (little-endian), the payload a
msgpack list of records. A frame is written whole and fsync'ed before the next one starts,
so only the last frame of the last segment can be cut short by a crash; a reader stops at a
frame whose length runs past the end of the file or whose CRC does not match, and reports
where (file:offset) so nothing is lost silently.

A snapshot (`state/snapshot`, the previous one kept as `state/snapshot.prev`) is one frame
behind a magic line, written to a temporary file, fsync'ed and renamed in (atomic).
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import msgpack

from ..lists.snapshot import fsync_dir

_HDR = struct.Struct("<II")
SNAP_MAGIC = b"TELFILTER-STATE 1\n"


class CorruptFile(Exception):
    """A snapshot that cannot be used (missing magic, short, CRC mismatch)."""


def frame(records: list) -> bytes:
    payload = msgpack.packb(records, use_bin_type=True)
    return _HDR.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(path: Path) -> tuple[list, str | None]:
    """(records of every whole frame, a warning for a torn or corrupt tail or None)."""
    data = path.read_bytes()
    out, off, n = [], 0, len(data)
    while off < n:
        if off + _HDR.size > n:
            return out, f"{path}:{off}: torn last journal record ({n - off} bytes) ignored"
        ln, crc = _HDR.unpack_from(data, off)
        body = data[off + _HDR.size:off + _HDR.size + ln]
        if len(body) < ln:
            return out, f"{path}:{off}: torn last journal record ({n - off} of {ln + _HDR.size} bytes) ignored"
        if zlib.crc32(body) != crc:
            return out, f"{path}:{off}: journal record fails its CRC; it and the {n - off - ln - _HDR.size} bytes after it ignored"
        out.extend(msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True))
        off += _HDR.size + ln
    return out, None


def write_snapshot(path: Path, obj) -> None:
    """Write `obj` (msgpack-able) to `path` atomically; the file it replaces becomes `path.prev`."""
    payload = msgpack.packb(obj, use_bin_type=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(SNAP_MAGIC + _HDR.pack(len(payload), zlib.crc32(payload)))
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, path.with_name(path.name + ".prev"))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_snapshot(path: Path):
    data = path.read_bytes()
    m = len(SNAP_MAGIC)
    if not data.startswith(SNAP_MAGIC) or len(data) < m + _HDR.size:
        raise CorruptFile(f"{path}: not a telfilter state snapshot")
    ln, crc = _HDR.unpack_from(data, m)
    body = data[m + _HDR.size:]
    if len(body) != ln or zlib.crc32(body) != crc:
        raise CorruptFile(f"{path}: snapshot is truncated or fails its CRC")
    return msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True)
