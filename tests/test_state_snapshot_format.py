"""A state snapshot of a format this version does not read (a newer telfilter's, met on a rollback) stops the
store with an error naming the format, and is left as it was; it is not taken for a damaged file, which the
store starts without (counters from the journal alone) and which its next snapshots replace (README, Operating
it: Upgrading). A damaged one still falls back: test_durable_journal.test_corrupt_snapshot_falls_back_to_the_previous_one."""
import asyncio
import fcntl
import os
import struct
import zlib

import msgpack
import pytest

from engine.state import StateError
from engine.state.embedded import EmbeddedStore

from .durable_helpers import _open


def _snapshot_bytes(version: bytes, obj) -> bytes:
    """A snapshot file as engine/state/journal.py frames one: magic line, length and CRC32 (<II), msgpack body."""
    body = msgpack.packb(obj, use_bin_type=True)
    return b"TELFILTER-STATE " + version + b"\n" + struct.pack("<II", len(body), zlib.crc32(body)) + body


def test_a_snapshot_of_a_newer_format_stops_the_store_and_is_kept(tmp_path):
    data = tmp_path / "d"
    store = _open(data)
    asyncio.run(store.close())
    snap = data / "state" / "snapshot"
    newer = _snapshot_bytes(b"2", {"state": {"counters": "in a layout this version cannot know"}, "next_segment": 7})
    snap.write_bytes(newer)
    (data / "state" / "snapshot.prev").write_bytes(newer)
    with pytest.raises(StateError, match=r"state format '2', written by another telfilter version \(this one reads "
                                         r"format 1\): start the version that wrote it"):
        EmbeddedStore(data)
    assert snap.read_bytes() == newer and (data / "state" / "snapshot.prev").read_bytes() == newer
    fd = os.open(data / "state" / "lock", os.O_RDWR)       # the refused store let its lock go
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)

