"""The embedded state store (engine/state) under a real `serve`: the advertising frequency cap survives
`kill -9`, also right after three ads (the crash spool), and a failing disk keeps serving and retries its writes
in order. Every server here is on 127.0.0.1 and stopped at the end."""
import asyncio
import json
import signal

from .test_serve import wait_for
from .durable_helpers import _Node, _ad, _crash, _open, _pipe, _submit_ad, _verdicts


def test_serve_keeps_the_frequency_cap_across_kill_9(tmp_path):
    log = tmp_path / "v.jsonl"
    node = _Node(tmp_path, log=log)
    data = node.data
    try:
        p, port = node.start()
        assert [_submit_ad(port, "84912000444") for _ in range(3)] == [0, 0, 0]
        # the journal is fsync'ed within a second of the commit: wait for it, then kill -9
        seg = lambda: sum(f.stat().st_size for f in (data / "state").glob("journal.*"))   # noqa: E731
        assert wait_for(lambda: seg() > 0, 5)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        p, port = node.start()
        st = _submit_ad(port, "84912000444")
        assert st != 0, "the 4th ad within 24 h was let through after the restart"
        # the verdict log is written by its own thread, flushed every 50 ms: the 4th line comes soon after
        assert wait_for(lambda: len(log.read_text().splitlines()) >= 4, 5)
        last = json.loads(log.read_text().splitlines()[3])
        assert [h["symbol"] for h in last["hits"]] == ["AD_FREQUENCY_CAP"], last
        assert _submit_ad(port, "84912000445") == 0          # another recipient is not capped
        # a clean stop loses nothing: snapshot written, journal emptied
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        assert (data / "state" / "snapshot").exists()
        assert "replayed" in (tmp_path / "stderr2.log").read_text()
        # and leaves no crash spool behind (everything in them was written)
        assert not [p.name for p in data.rglob(".*.spool.*")] and not list(tmp_path.glob(".*.spool.*"))
    finally:
        node.stop()


def test_serve_killed_right_after_three_ads_keeps_the_cap(tmp_path):
    """kill -9 at once after the 3rd ad's submit_sm_resp (no wait for the journal's next fsync, every 0.25 s): the
    counts are in the crash spool, so the 4th ad is still dropped after the restart (it was let through). The journal's
    timer is held off in the killed serve (its flush every 0.25 s could fall between the 3rd ad's commit and the kill,
    most likely on a loaded host: the counts were then in the journal, nothing left in the spool to say replayed)."""
    node = _Node(tmp_path, boot="import engine.state.embedded as E; E.FLUSH_EVERY = 3600.0; "
                                "from engine.cli import main; raise SystemExit(main())")
    try:
        p, port = node.start()
        assert [_submit_ad(port, "84912000446") for _ in range(3)] == [0, 0, 0]
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        p, port = node.start()
        assert _submit_ad(port, "84912000446") != 0, "the 4th ad within 24 h was let through after kill -9"
        assert "left in its crash spool, replayed" in (tmp_path / "stderr2.log").read_text()
    finally:
        node.stop()


def test_a_failing_disk_keeps_serving_and_retries_in_order(tmp_path, monkeypatch):
    data = tmp_path / "d"
    pipe = _pipe(data)
    store = _open(data, pipe)
    pipe.judge(_ad(0))
    real = store._write

    def full(seg, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(store, "_write", full)
    monkeypatch.setattr("engine.state.embedded.FLUSH_EVERY", 0.01)

    async def tick():
        t = asyncio.ensure_future(store.run())
        await asyncio.sleep(0.1)
        t.cancel()
    asyncio.run(tick())
    assert store.write_errors > 0 and len(store.buf) == 1          # kept for the retry
    pipe.judge(_ad(1))
    monkeypatch.setattr(store, "_write", real)
    asyncio.run(store.flush())
    _crash(store)
    pipe2 = _pipe(data)
    store2 = _open(data, pipe2)
    assert store2.replayed == 2
    _verdicts(pipe2, [_ad(2)])
    assert _verdicts(pipe2, [_ad(3)]) == [("drop", ["AD_FREQUENCY_CAP"])]
    _crash(store2)
