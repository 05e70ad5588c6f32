"""The state journal after a full disk frees only part of its space: before, the journal came back only once the
disk had room for the whole backlog at once (the backlog retried as one frame every flush, and a snapshot wrote it
to the journal first), so a large backlog on a disk that freed less than that kept it failing for good (/healthz
503, the backlog growing in memory: a tmpfs probe reached RSS 1.2 GB with 600,000 updates waiting and room for a
snapshot 2.5x over). Now a snapshot covers the backlog once the disk has room for the tables (engine/state/
backlog.py), and a backlog past MAX_BUFFER is left to it instead of kept in memory.

A real full disk: a small tmpfs mounted by the test (root only; skipped otherwise)."""
import asyncio
import errno
import os
import subprocess
import time

import pytest

from engine.state import backlog, embedded
from engine.state.embedded import EmbeddedStore, dump_state

NS, W, LIM = "AD_FREQUENCY_CAP|owner+recipient|24h|None", 86400.0, 3
T0 = 1_790_000_000


@pytest.fixture
def small_disk(tmp_path):
    """A 12 MB tmpfs (the store's 8 MB crash spool fits), unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path):
    """Write `path` until the disk is full; its size."""
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * (64 << 10)
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        return os.fstat(f.fileno()).st_size


def _free(path, nbytes):
    os.truncate(path, os.stat(path).st_size - nbytes)


def _updates(store, n, first=0):
    for i in range(first, first + n):
        store.counters.add(NS, ("o:shop", 84912000000 + i % 200), T0 + i, W, LIM)


def test_a_backlog_larger_than_the_freed_space_comes_back_by_a_snapshot(small_disk, monkeypatch):
    monkeypatch.setattr(embedded, "FLUSH_EVERY", 0.01)
    monkeypatch.setattr(embedded, "SNAPSHOT_EVERY", 0.2)       # (snapshots did not help either: they wrote it first)
    monkeypatch.setattr(backlog, "RETRY_EVERY", 0.05)
    data = small_disk / "data"
    filler = small_disk / "filler"

    async def main():
        store = EmbeddedStore(data)
        task = asyncio.ensure_future(store.run())
        try:
            _updates(store, 100)
            while store.buf:
                await asyncio.sleep(0.01)
            _fill(filler)
            _updates(store, 60_000, first=100)                  # a backlog of ~3 MB as a frame
            end = time.monotonic() + 10
            while not store.trouble.failing and time.monotonic() < end:
                await asyncio.sleep(0.01)
            assert store.trouble.failing
            _free(filler, 1 << 20)                              # room for the tables (~30 KB), not the backlog
            end = time.monotonic() + 15
            while (store.trouble.failing or store.buf) and time.monotonic() < end:
                await asyncio.sleep(0.01)
            back = (store.trouble.failing, len(store.buf), (store.dir / "snapshot").exists())
            _updates(store, 10, first=60_100)                   # the journal takes new updates again
            end = time.monotonic() + 5
            while store.buf and time.monotonic() < end:
                await asyncio.sleep(0.01)
            pending = len(store.buf)
            return store, back, pending, dump_state(store.counters.mem, store.history.mem, store.calls.mem)
        finally:
            task.cancel()
    store, back, pending, before = asyncio.run(main())
    assert back == (False, 0, True)                             # before: failing still, no snapshot
    assert pending == 0
    os.close(store._lockfd)                                     # kill -9: no stop snapshot
    store.spool.close()
    again = EmbeddedStore(data)
    assert dump_state(again.counters.mem, again.history.mem, again.calls.mem) == before
    os.close(again._lockfd)


def test_the_backlog_kept_in_memory_is_bounded_while_the_disk_is_full(small_disk, monkeypatch):
    monkeypatch.setattr(embedded, "FLUSH_EVERY", 0.01)
    monkeypatch.setattr(backlog, "RETRY_EVERY", 0.05)
    monkeypatch.setattr(backlog, "MAX_BUFFER", 5_000)
    monkeypatch.setattr(EmbeddedStore, "_room", lambda self: False, raising=False)   # (nor the tables)

    async def main():
        store = EmbeddedStore(small_disk / "data")
        task = asyncio.ensure_future(store.run())
        try:
            await asyncio.sleep(0.05)
            _fill(small_disk / "filler")
            _updates(store, 20_000)
            end = time.monotonic() + 10
            while store.write_errors < 3 and time.monotonic() < end:    # a few attempts, all refused
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        while store._io.locked():                                   # a write in flight: its records back first
            await asyncio.sleep(0.01)
        return len(store.buf), getattr(store, "unsaved", None), store.trouble.failing
    kept, unsaved, failing = asyncio.run(main())
    assert failing and kept <= 5_000                            # before: all 20,000 kept (up to 1,000,000)
    assert unsaved == 20_000                                    # said: in the tables only until a snapshot
