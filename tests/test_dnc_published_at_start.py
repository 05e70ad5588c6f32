"""CLI DNC changes made while serve was down (`telfilter lists add dnc` during maintenance, a restart) reach the other
nodes: a clean stop leaves the DNC lists it published in `lists/dnc.published.msgpack`, and the next start publishes
the difference (engine/state/published.py). They were loaded by the next start and published by nobody. After a
crash (no clean stop) nothing is published from an older copy, and the start says so."""
import asyncio
import signal
import subprocess
import sys

import msgpack

from engine.lists import ListStore

from .conftest import ROOT
from .redis_helpers import RedisServer, redis_server  # noqa: F401  (the url fixture's)
from .redis_state_helpers import _Down, _lists_node, url  # noqa: F401,F811  (url: fixture)
from .test_serve import free_port, wait_for, wait_ready

WHILE_UP, WHILE_DOWN, AFTER_CRASH = 84912340101, 84912340102, 84912340103


def _entries(redis) -> list:
    """Every DNC change in the stream, in order: (op, channel, number)."""
    c = redis.client()
    try:
        return [(op, ch, n) for _, f in c.xrange("tf:dnc")
                for op, ch, nums in msgpack.unpackb(f.get(b"d", b"\x90"), raw=False) for n in nums]
    finally:
        c.close()


def _serve(tmp_path, redis, run, *extra):
    err = tmp_path / f"stderr.{run}.log"
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    with open(err, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data",
                              "--smpp-listen", f"127.0.0.1:{free_port()}", "--sip-listen", "off",
                              "--log", tmp_path / "v.jsonl", "--ready-file", ready, "--control-socket", "off",
                              "--state", redis.url, "--drain-timeout", "2", *extra],
                             cwd=ROOT, stderr=f, stdout=subprocess.DEVNULL)
    wait_ready(p, ready, err)
    return p, err


def _cli_add(tmp_path, number):
    subprocess.run([sys.executable, "-m", "engine.cli", "--data-dir", str(tmp_path / "data"), "lists", "add", "dnc",
                    str(number)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=60)


def _stop(p, how=signal.SIGTERM):
    try:
        p.send_signal(how)
        return p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def _published_file(tmp_path):
    return tmp_path / "data" / "lists" / "dnc.published.msgpack"


def test_a_cli_dnc_change_made_while_serve_was_down_is_published_by_the_next_start(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    try:
        ListStore(tmp_path / "data").import_csv("dnc", b"number,channel\n0912340100,SV\n", "dnc.csv")
        p, err = _serve(tmp_path, redis, 1)
        _cli_add(tmp_path, WHILE_UP)            # while serve runs: its reload publishes it
        assert wait_for(lambda: ("add", "S", WHILE_UP) in _entries(redis), 30), err.read_text()[-3000:]
        assert _stop(p) == 0, err.read_text()[-3000:]
        _cli_add(tmp_path, WHILE_DOWN)          # maintenance: serve is down
        p, err = _serve(tmp_path, redis, 2)
        try:
            assert wait_for(lambda: {("add", "S", WHILE_DOWN), ("add", "V", WHILE_DOWN)} <= set(_entries(redis)), 10), \
                err.read_text()[-3000:]
            got = _entries(redis)
            assert "DNC replication: 2 changes made while serve was down published" in err.read_text()
            assert not _published_file(tmp_path).exists()       # read and deleted: a crash never diffs against it
            # each change once: the one made while serve ran is not published again by the restart
            assert [e for e in got if e[2] == WHILE_UP] == [("add", "S", WHILE_UP), ("add", "V", WHILE_UP)]
            assert [e for e in got if e[2] == 84912340100] == []        # in the lists before the first start
        finally:
            assert _stop(p) == 0
        assert _published_file(tmp_path).exists()
    finally:
        redis.stop()


def test_after_a_crash_nothing_is_published_from_an_older_copy_and_the_start_says_so(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    try:
        p, err = _serve(tmp_path, redis, 1)
        assert _stop(p) == 0                    # a clean stop: the file is written
        p, err = _serve(tmp_path, redis, 2)     # ... and read and deleted by this start
        _cli_add(tmp_path, WHILE_UP)
        assert wait_for(lambda: ("add", "S", WHILE_UP) in _entries(redis), 30), err.read_text()[-3000:]
        _stop(p, signal.SIGKILL)
        _cli_add(tmp_path, AFTER_CRASH)
        p, err = _serve(tmp_path, redis, 3)
        try:
            text = err.read_text()
            assert "no record of the DNC lists a clean stop left published" in text, text[-3000:]
            assert "changes made while serve was down published" not in text
            got = _entries(redis)
            assert [e for e in got if e[2] == WHILE_UP] == [("add", "S", WHILE_UP), ("add", "V", WHILE_UP)]
            assert not [e for e in got if e[2] == AFTER_CRASH]
        finally:
            assert _stop(p) == 0
    finally:
        redis.stop()


def test_in_a_pool_worker_0_alone_reads_the_file_and_publishes_them_once(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    try:
        p, err = _serve(tmp_path, redis, 1, "--workers", "2")
        assert _stop(p) == 0, err.read_text()[-3000:]
        assert err.read_text().count("no record of the DNC lists a clean stop left published") == 1     # worker 0's
        _cli_add(tmp_path, WHILE_DOWN)
        p, err = _serve(tmp_path, redis, 2, "--workers", "2")
        try:
            assert wait_for(lambda: ("add", "V", WHILE_DOWN) in _entries(redis), 10), err.read_text()[-3000:]
        finally:
            assert _stop(p) == 0, err.read_text()[-3000:]      # (whatever a worker queued is out once it stopped)
        text = err.read_text()
        once = [("add", "S", WHILE_DOWN), ("add", "V", WHILE_DOWN)]
        assert [e for e in _entries(redis) if e[2] == WHILE_DOWN] == once
        assert text.count("changes made while serve was down published") == 1 and "no record" not in text, text[-3000:]
    finally:
        redis.stop()


def _start(R, url, node):
    """What serve's start does with DNC replication, in one process."""
    async def go():
        r = R.DncReplicator(url, node)
        r.changes_while_down()
        await r.catch_up()
        r.load_unpublished()
        return r, r.publish_while_down()
    return go()


def test_a_stop_with_redis_away_leaves_the_file_the_saved_changes_complete(tmp_path, url, caplog):
    """Redis away at the stop: the queued change is saved as unpublished and the file describes the lists with it, so
    the next start publishes the saved change once, and the CLI change made while down once."""
    import engine.state.replication as R

    async def main():
        A = _lists_node(tmp_path, "A")
        away = R.DncReplicator(url, A, client=_Down(), reader=_Down())
        A.store.append_delta("add", 84912000051, "S")   # a 5656 DK DNC, Redis away: journalled, queued
        A.lists.add_dnc(84912000051, "S")
        await asyncio.sleep(0.05)
        assert await away.close()
        assert (A.store.dir / "lists" / "dnc.published.msgpack").exists()
        ListStore(A.store.dir).add("dnc", "0912000052", "V")      # the CLI, serve down
        A.lists = A.store.load()
        r, n = await _start(R, url, A)
        assert n == 1
        await r._publish_all()
        got = [(op, ch, x) for _e, f in await r.redis.xrange(R.STREAM)
               for op, ch, nums in msgpack.unpackb(f[b"d"]) for x in nums]
        assert sorted(got) == [("add", "S", 84912000051), ("add", "V", 84912000052)]
        await r.close()
    asyncio.run(main())


def test_a_damaged_file_is_said_deleted_and_nothing_is_published(tmp_path, url, caplog):
    import engine.state.replication as R

    async def main():
        A = _lists_node(tmp_path, "A")
        f = A.store.dir / "lists" / "dnc.published.msgpack"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"\x00" * 100)        # a power cut under a filesystem that does not order data and rename
        ListStore(A.store.dir).add("dnc", "0912000053", "S")
        A.lists = A.store.load()
        r, n = await _start(R, url, A)
        assert n == 0 and not f.exists() and not r.out
        assert any("dnc.published.msgpack damaged" in m for m in caplog.messages), caplog.messages
        await r.close()
    asyncio.run(main())


def test_a_dnc_list_loaded_from_its_previous_generation_is_not_diffed(tmp_path, url, caplog):
    """The dnc snapshot damaged, its previous generation loaded: it lacks the last import, whose numbers would be
    published as removals to every node. Said, the file deleted, nothing published."""
    import engine.state.replication as R

    async def main():
        A = _lists_node(tmp_path, "A")
        st = A.store                            # (the store that loads the lists says how: dnc_refused)
        st.add("dnc", "0912000054", "S")
        st.add("dnc", "0912000055", "S")
        A.lists = st.load()
        r = R.DncReplicator(url, A)
        assert await r.close()                  # a clean stop: both numbers published
        snap = st.path("dnc")
        snap.write_bytes(snap.read_bytes()[:-7])        # damaged: the load reads dnc.snap.prev (one number)
        A.lists = st.load()
        assert st.dnc_refused and 84912000055 not in A.lists.dnc_s
        r, n = await _start(R, url, A)
        assert n == 0 and not r.out and not (A.store.dir / "lists" / "dnc.published.msgpack").exists()
        assert any("not read whole" in m for m in caplog.messages), caplog.messages
        await r.close()
    asyncio.run(main())


def test_a_start_stopped_during_its_catch_up_still_publishes_them(tmp_path, url):
    """A SIGINT while the start catches up (after the file was read and deleted): the stop publishes the difference
    before it writes the file again, which would otherwise hold the changes as published."""
    import engine.state.replication as R

    async def main():
        A = _lists_node(tmp_path, "A")
        assert await R.DncReplicator(url, A).close()          # a clean stop
        ListStore(A.store.dir).add("dnc", "0912000056", "S")   # the CLI, serve down
        A.lists = A.store.load()
        r = R.DncReplicator(url, A)
        r.changes_while_down()
        assert await r.close()                  # stopped there
        rb = R.DncReplicator(url, _lists_node(tmp_path, "B"))
        got = [(op, ch, x) for _e, f in await rb.redis.xrange(R.STREAM)
               for op, ch, nums in msgpack.unpackb(f[b"d"]) for x in nums]
        assert got == [("add", "S", 84912000056)]
        await rb.close()
    asyncio.run(main())


def test_a_file_from_before_an_earlier_versions_run_is_not_diffed(tmp_path, url, caplog):
    """A version before this file (2026-12-06) neither reads nor removes it: gone back to after a clean stop and
    forward again, the file is from before that version's run, whose own DNC changes (5656 commands, other nodes'
    changes it applied) were diffed as CLI changes made while serve was down and published again at this start's
    time (a number another node changed since was changed back on every node). That run read the stream on: the
    file's stream id is not the node's. Said, the file deleted, nothing published."""
    import engine.state.replication as R

    async def main():
        A = _lists_node(tmp_path, "A")
        f = A.store.dir / "lists" / "dnc.published.msgpack"
        assert await R.DncReplicator(url, A).close()          # this version's clean stop
        stale = f.read_bytes()
        r = R.DncReplicator(url, A)             # the earlier version's run: a 5656 DK DNC, published and read back
        A.store.append_delta("add", 84912000058, "S")
        A.lists.add_dnc(84912000058, "S")
        await r._publish_all()
        await r.catch_up()
        assert r.last_id != "0"
        assert await r.close()
        f.write_bytes(stale)                    # (that version leaves the file as it was)
        r, n = await _start(R, url, A)
        assert n == 0 and not r.out and not f.exists()
        assert any("dnc.published.msgpack" in m and "stream id" in m for m in caplog.messages), caplog.messages
        await r.close()
    asyncio.run(main())


def test_a_damaged_stream_id_does_not_make_the_file_stale(tmp_path, url, caplog):
    """lists/dnc.stream-id found damaged reads as 0 (the stream read again from its start): not a serve having run
    since the file was left, so the CLI change made while serve was down is still published."""
    import engine.state.replication as R

    async def main():
        A = _lists_node(tmp_path, "A")
        r = R.DncReplicator(url, A)
        A.store.append_delta("add", 84912000059, "S")      # a 5656 DK DNC, published and read back: the id moves
        A.lists.add_dnc(84912000059, "S")
        await r._publish_all()
        await r.catch_up()
        assert await r.close()                  # a clean stop, the file left at that id
        (A.store.dir / "lists" / "dnc.stream-id").write_bytes(b"\x00" * 16)      # a power cut under an earlier version
        ListStore(A.store.dir).add("dnc", "0912000060", "S")      # the CLI, serve down
        A.lists = A.store.load()
        r, n = await _start(R, url, A)
        assert n == 1, caplog.messages
        await r.close()
    asyncio.run(main())
