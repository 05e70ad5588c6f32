"""serve's rule reloads (SIGHUP, `ctl reload rules`, the file watcher) read the new set in a worker thread and
swap it in on the loop: read on the loop, 5,040 rules stalled every SMPP and SIP message for seconds."""
import asyncio
import threading

import engine.pipeline as pipeline_mod
from engine.app import build
from engine.serve import _reload_all, reload_rules


def test_reload_reads_off_the_loop_and_swaps_on_it(tmp_path, monkeypatch):
    pipe = build(data_dir=tmp_path, persist=False, with_model=False)
    real = pipeline_mod.load_rules
    where = []

    def spy(*a, **k):
        where.append(threading.current_thread())
        return real(*a, **k)
    monkeypatch.setattr(pipeline_mod, "load_rules", spy)

    async def go():
        loop_thread = threading.current_thread()
        gen = pipe.rules_generation
        await _reload_all(pipe, with_model=False)                               # SIGHUP
        first = asyncio.ensure_future(reload_rules(pipe))
        await asyncio.sleep(0.05)                   # it reads: the next one reads after it
        errors = await asyncio.gather(first, reload_rules(pipe))
        return loop_thread, gen, errors
    loop_thread, gen, errors = asyncio.run(go())
    assert len(where) == 3 and all(t is not loop_thread for t in where)
    assert errors == [[], []] and pipe.rules_generation == gen + 3


def test_a_broken_set_read_off_the_loop_keeps_the_old_one(tmp_path):
    pipe = build(data_dir=tmp_path, persist=False, with_model=False)
    old = pipe.rules
    shipped = old.directory
    bad = tmp_path / "rules"
    bad.mkdir()
    (bad / "x.toml").write_text('[[rule]]\nsymbol = "lower"\n')
    pipe.rules.directory = bad
    try:
        errors = asyncio.run(reload_rules(pipe))
    finally:
        old.directory = shipped
    assert errors and pipe.rules is old and pipe.rule_errors == errors


def test_a_stop_does_not_wait_for_a_reload_read_under_way(tmp_path, monkeypatch):
    """serve's stop cancels the watcher (and asyncio.run the SIGHUP task) while a reload's read may be under way
    (seconds for thousands of rules): asyncio.run then joined the default executor's thread before the process
    could exit, so --drain-timeout 1 stopped in 5.2 s with 5,040 rules (SIGHUP, then SIGTERM 0.5 s later; 0.26 s
    without the reload). Found by review41. The read is abandoned: it touches nothing of the running pipeline."""
    import time
    pipe = build(data_dir=tmp_path, persist=False, with_model=False)
    monkeypatch.setattr(pipeline_mod, "read_rules", lambda d: time.sleep(3) or pipeline_mod.RuleSetError(["slow"]))

    async def go():
        t = asyncio.ensure_future(reload_rules(pipe))
        await asyncio.sleep(0.1)
        t.cancel()                                  # the stop
    t0 = time.monotonic()
    asyncio.run(go())
    assert time.monotonic() - t0 < 1.0


def test_requests_that_come_while_one_waits_join_it(tmp_path, monkeypatch):
    """SIGHUP, the file watcher and `ctl reload rules` for one edit: the first reads, the others, coming while it
    reads, wait for one more read together (each used to queue a read of its own: seconds of CPU each for thousands
    of rules; found by review41)."""
    pipe = build(data_dir=tmp_path, persist=False, with_model=False)
    real = pipeline_mod.load_rules
    reads = []

    def spy(*a, **k):
        reads.append(1)
        return real(*a, **k)
    monkeypatch.setattr(pipeline_mod, "load_rules", spy)

    async def go():
        gen = pipe.rules_generation
        first = asyncio.ensure_future(reload_rules(pipe))
        await asyncio.sleep(0.05)                   # it reads
        errors = await asyncio.gather(first, *(reload_rules(pipe) for _ in range(4)))
        return gen, errors
    gen, errors = asyncio.run(go())
    assert errors == [[]] * 5
    assert len(reads) == 2 and pipe.rules_generation == gen + 2 and pipe.rules_reload_queued is None


def _slow_first_read(monkeypatch, then):
    """read_rules: the first read takes 0.3 s (a reload under way); the next ones call then()."""
    import time
    calls = []

    def fake(d):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.3)
            return pipeline_mod.RuleSetError(["first"])
        return then()
    monkeypatch.setattr(pipeline_mod, "read_rules", fake)
    return calls


def test_a_joined_request_gets_the_error_of_the_read_it_joined_not_a_cancellation(tmp_path, monkeypatch):
    """A reload that failed with an exception cancelled the future its joined requests waited on: they got
    CancelledError (the watcher's task, or a SIGHUP's, ended by it) instead of the read's error (review42)."""
    pipe = build(data_dir=tmp_path, persist=False, with_model=False)

    def boom():
        raise RuntimeError("boom")
    _slow_first_read(monkeypatch, boom)

    async def go():
        first = asyncio.ensure_future(reload_rules(pipe))
        await asyncio.sleep(0.1)                                   # it reads
        queued = asyncio.ensure_future(reload_rules(pipe))
        await asyncio.sleep(0)
        joined = asyncio.ensure_future(reload_rules(pipe))
        return await asyncio.gather(first, queued, joined, return_exceptions=True)
    first, queued, joined = asyncio.run(go())
    assert first == ["first"]
    assert isinstance(queued, RuntimeError) and isinstance(joined, RuntimeError)
    assert pipe.rules_reload_queued is None


def test_a_cancelled_request_does_not_take_the_requests_that_joined_it_along(tmp_path, monkeypatch):
    """The request waiting for the read under way cancelled (its ctl client gone, its task cancelled): the ones that
    joined it got CancelledError and no read (the edit they asked for never read; review42). They still get it."""
    pipe = build(data_dir=tmp_path, persist=False, with_model=False)
    calls = _slow_first_read(monkeypatch, lambda: pipeline_mod.RuleSetError(["second"]))

    async def go():
        first = asyncio.ensure_future(reload_rules(pipe))
        await asyncio.sleep(0.1)
        queued = asyncio.ensure_future(reload_rules(pipe))
        await asyncio.sleep(0)
        joined = asyncio.ensure_future(reload_rules(pipe))
        await asyncio.sleep(0)
        queued.cancel()
        return await asyncio.gather(first, queued, joined, return_exceptions=True)
    first, queued, joined = asyncio.run(go())
    assert first == ["first"] and isinstance(queued, asyncio.CancelledError)
    assert joined == ["second"] and len(calls) == 2
    assert pipe.rules_reload_queued is None
