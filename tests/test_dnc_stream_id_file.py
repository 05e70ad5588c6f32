"""`lists/dnc.stream-id`, where a node reads the DNC stream on after (engine/state/stream_follower.py): written whole and
durably (a power cut left it empty or full of NUL bytes: written without an fsync), and one found damaged is said and
the stream read again from its start, never skipped. With NUL bytes every stream read failed (an invalid id to
Redis): the node never had another node's DNC change again."""
import asyncio
import logging
import os

import pytest

from engine.numbers import normalise_number
from engine.state.replication import DncReplicator

from .redis_helpers import redis_server  # noqa: F401
from .redis_state_helpers import _lists_node, _node
from .test_dnc_stream_failover import _mo, _until


@pytest.mark.parametrize("damage", [b"", b"\x00" * 16, b"\xff\xfe\x00garbage\n", b"17-x\n"])
def test_a_damaged_stream_id_reads_the_stream_again_from_its_start(tmp_path, redis_server, caplog,  # noqa: F811
                                                                   damage):
    redis_server.flush()
    url = redis_server.url

    async def main():
        a, _sa = _node(tmp_path, "a", url)
        b, _sb = _node(tmp_path, "b", url)
        ra = a.replicator = DncReplicator(url, a)
        await ra.catch_up()
        n1, n2 = normalise_number("0912000961"), normalise_number("0912000962")
        a.judge(_mo("0912000961", "DK DNC"))                 # while node b is down
        await _until(lambda: ra.stats["published"] >= 1 and not ra.pending(), 5, "published")
        (tmp_path / "b" / "lists").mkdir(parents=True, exist_ok=True)
        (tmp_path / "b" / "lists" / "dnc.stream-id").write_bytes(damage)     # b's power cut
        rb = b.replicator = DncReplicator(url, b)
        await rb.catch_up()
        assert n1 in b.lists.dnc_s
        task = asyncio.ensure_future(rb.follow())
        a.judge(_mo("0912000962", "DK DNC"))
        await _until(lambda: n2 in b.lists.dnc_s, 5, "node b follows the stream")
        task.cancel()
        for r in (ra, rb):
            await r.close()
        assert (tmp_path / "b" / "lists" / "dnc.stream-id").read_text() == rb.last_id + "\n"
    with caplog.at_level(logging.WARNING, "telfilter"):
        asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("dnc.stream-id" in m and "from its start" in m for m in said), said
    assert not any("DNC replication (" in m for m in said), said       # no stream read failed


def test_the_stream_id_is_written_whole_and_durably(tmp_path, monkeypatch):
    """Its new content is fsynced before it is renamed over the old one, and the directory after: a power cut leaves
    the old id (read again from there: safe) or the new, never an empty file or NUL bytes."""
    P = _lists_node(tmp_path, "A")
    r = DncReplicator("redis://127.0.0.1:1/0", P)       # no server needed
    synced, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src, dst):
        assert os.fspath(src) in synced, (src, synced)     # the content is on disk before the name points at it
        real_replace(src, dst)
        synced.append(("renamed", os.fspath(dst)))
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    r._save_id("1700000000000-3")
    idp = str(tmp_path / "A" / "lists" / "dnc.stream-id")
    assert synced.index(("renamed", idp)) < synced.index(str(tmp_path / "A" / "lists"))     # then its directory
    assert r._read_id() == "1700000000000-3"


def test_a_writer_killed_while_it_wrote_the_id_leaves_no_file_for_good(tmp_path):
    """A kill -9 between the id's write and its rename (probe h_crash: `--workers 2`, kill -9 under 5656 load) left
    `.dnc.stream-id.PID.tmp` in lists/ at every such crash, never removed. The next writer removes a dead process's
    file, and leaves a live one's (another process still writing) alone."""
    import subprocess
    import sys
    P = _lists_node(tmp_path, "A")
    lists = tmp_path / "A" / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = lists / f".dnc.stream-id.{int(dead.stdout)}.tmp"
    left.write_bytes(b"1700000000000-2\n")
    alive = lists / f".dnc.stream-id.{os.getppid()}.tmp"
    alive.write_bytes(b"1700000000000-1\n")
    DncReplicator("redis://127.0.0.1:1/0", P)       # no server needed
    assert not left.exists()
    assert alive.exists()
