"""/healthz on a failing data disk: 200 "ok" while every verdict line went nowhere (README had it: only
telfilter_disk_failing{writer} said so), so a load balancer kept sending traffic to a node that could not write its
verdict log or its journals; and a background state snapshot whose forked writer failed (a full disk) was one log
line a minute, in no metric. Now /healthz is 503 naming the failing writers while any durable writer's last write
failed, 200 again once writes work; a failed snapshot is the `state_snapshot` writer (engine/disktrouble.py)."""
import asyncio
import errno
import logging
import os
import signal
import subprocess
import sys
import time

from engine.app import build
from engine.disktrouble import HOLD_S, trouble
from engine.metrics import Metrics
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import ROOT
from .test_control import _stop
from .test_disk_trouble import _lines, _scrape
from .test_metrics import _get
from .test_serve import free_port, submit, wait_for, wait_ready
from .test_smpp_proxy import pipe  # noqa: F401  (fixture)


def test_healthz_is_503_naming_the_writer_while_the_verdict_log_disk_is_full(tmp_path):
    """A real serve whose --log is /dev/full (every write: ENOSPC), then a file again (SIGUSR2 reopens it)."""
    data = tmp_path / "data"
    log = tmp_path / "v.jsonl"
    os.symlink("/dev/full", log)
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    smpp_port, mport = free_port(), free_port()
    ready, err = tmp_path / "ready", open(tmp_path / "stderr.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", data,
                          "--smpp-listen", f"127.0.0.1:{smpp_port}", "--smsc", f"127.0.0.1:{sim.port}",
                          "--esme-account", "t:pw", "--sip-listen", "off", "--log", log,
                          "--metrics-listen", f"127.0.0.1:{mport}", "--ready-file", ready],
                         cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    try:
        wait_ready(p, ready, tmp_path / "stderr.log")
        assert wait_for(lambda: _get(mport, "/healthz")[0] == 200)      # nothing written yet: nothing failed
        assert submit(smpp_port, "hello there") == 0                    # answered: the disk costs no message
        assert wait_for(lambda: _get(mport, "/healthz")[0] == 503), _get(mport, "/healthz")
        assert _get(mport, "/healthz") == (503, "disk writes failing: verdict_log\n")
        assert _get(mport, "/livez") == (200, "alive\n")                # a restart would not cure a full disk
        assert _get(mport, "/readyz")[0] == 200
        os.unlink(log)                                                  # room again: a file, reopened
        p.send_signal(signal.SIGUSR2)
        assert wait_for(lambda: log.is_file())
        assert submit(smpp_port, "hello again") == 0
        assert _get(mport, "/healthz")[0] == 503                       # until no write failed for 10 s
        assert wait_for(lambda: _get(mport, "/healthz") == (200, "ok\n"), timeout=25), _get(mport, "/healthz")
        assert log.read_text().count("\n") == 1                        # the line written once there was room
        # (the end of the trouble said: the reopened file's write that worked)
        assert "disk trouble over, verdict_log" in (tmp_path / "stderr.log").read_text()
        log.unlink()                                                    # full again, and the SMSC away: both said
        os.symlink("/dev/full", log)
        p.send_signal(signal.SIGUSR2)                                   # (a line before the reopen: written)
        assert wait_for(lambda: submit(smpp_port, "hello once more") == 0
                        and wait_for(lambda: _get(mport, "/healthz")[0] == 503, timeout=1))
        sim.stop()
        sim = None
        assert wait_for(lambda: _get(mport, "/healthz") == (503, "no SMSC link bound; disk writes failing: "
                                                                 "verdict_log\n"), timeout=10), _get(mport, "/healthz")
    finally:
        _stop(p)
        if sim is not None:
            sim.stop()
        err.close()


def _snapshots_on_a_full_disk(pipe, tmp_path, monkeypatch, fork: bool):
    """An embedded store snapshotting every 0.05 s whose snapshot writes a full disk refuses while `full[0]` (in the
    forked child, or where fork is refused in serve's own thread); (store, full, the state_snapshot trouble, the
    metrics, an async until(predicate) bounded at 30 s)."""
    from engine.state import embedded
    from engine.state.embedded import EmbeddedStore
    monkeypatch.setattr(embedded, "FLUSH_EVERY", 0.01)
    monkeypatch.setattr(embedded, "SNAPSHOT_EVERY", 0.05)
    if not fork:
        monkeypatch.setattr(embedded.forksnap, "start", lambda *a: None)
    st = EmbeddedStore(tmp_path / "st")
    real, full = embedded.write_snapshot_tmp, [True]

    def write(tmp, obj):                    # forked: runs in the child, `full` as it was at the fork
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tmp, obj)
    monkeypatch.setattr(embedded, "write_snapshot_tmp", write)

    async def until(pred):
        end = asyncio.get_running_loop().time() + 30
        while not pred():
            assert asyncio.get_running_loop().time() < end
            await asyncio.sleep(0.01)
    return st, full, trouble("state_snapshot"), Metrics(pipe), until


def test_a_failed_background_snapshot_is_a_failing_writer_until_one_works(pipe, tmp_path, monkeypatch, caplog):
    """The embedded store's timer snapshots through a forked writer; the child's write is refused by a full disk
    (ENOSPC, in the child), twice; then the disk has room and the next snapshot is installed."""
    st, full, t, m, until = _snapshots_on_a_full_disk(pipe, tmp_path, monkeypatch, fork=True)

    async def run():
        task = asyncio.ensure_future(st.run())
        try:
            await until(lambda: st.write_errors >= 2)               # two snapshots failed in the child
            failing = (t.failing, t.errors, m.health(), _scrape(pipe))
            full[0] = False
            await until(lambda: (st.dir / "snapshot").exists())     # a later one installed
            await until(lambda: not t.failing)
            return failing
        finally:
            task.cancel()
            await st.close()
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        (was, errors, health, text) = asyncio.run(run())
    assert was and errors >= 2
    assert health == (False, "disk writes failing: state_snapshot")
    assert 'telfilter_disk_failing{writer="state_snapshot"} 1.0' in text
    assert "No space left on device" in _lines(caplog, "state snapshot failed")[0].getMessage()
    assert len(_lines(caplog, "state snapshot failed")) == 1                # said once (then every 10 s)
    # a snapshot forked before the disk had room fails too (its child saw `full` as it was): errors may grow by it
    assert t.errors >= errors and not t.failing
    t.clock = lambda: time.monotonic() + HOLD_S         # no write failed for 10 s (the failures were just now)
    assert m.health() == (True, "ok")


def test_healthz_does_not_flap_with_a_disk_at_the_edge_of_full(pipe):
    """A disk at the edge of full takes one write and refuses the next (engine/disktrouble.py: ext4 flipped several
    times a second): /healthz read each writer's last write only, so it answered 200 and 503 by turns, and a load
    balancer's "N failures in a row" might never drain the node. It is 503 until no write failed for 10 s."""
    now = [1000.0]
    t, m = trouble("verdict_log"), Metrics(pipe)
    t.clock = lambda: now[0]
    seen = []
    for _ in range(20):                         # 4 s of a write refused, the next one taken, every 0.2 s
        t.failed(OSError(errno.ENOSPC, "No space left on device"), "a line lost")
        now[0] += 0.1
        seen.append(m.health()[0])
        t.ok()
        now[0] += 0.1
        seen.append(m.health()[0])
    assert seen == [False] * 40, seen
    now[0] += 9.0                               # writes have worked for 9.1 s: still draining
    assert m.health() == (False, "disk writes failing: verdict_log")
    now[0] += 1.0                               # 10.1 s: healthy again
    assert m.health() == (True, "ok")


def test_a_snapshot_written_in_process_when_fork_is_refused_is_the_snapshot_writer(pipe, tmp_path, monkeypatch,
                                                                                  caplog):
    """Fork refused (strict overcommit with a large RSS, a process limit: forksnap.start returns None): the timer's
    snapshot is written by a thread of serve's. Its failure (a full disk that still takes the journal's small
    appends, not the snapshot's file) was said as the state journal's, which the next flush (0.25 s) called over:
    /healthz 200 and state_snapshot never failing, while no snapshot worked and the journal grew."""
    st, full, t, m, until = _snapshots_on_a_full_disk(pipe, tmp_path, monkeypatch, fork=False)

    async def run():
        task = asyncio.ensure_future(st.run())
        try:
            # two snapshots failed, and the journal's flush since worked
            await until(lambda: st.write_errors >= 2 and not trouble("state_journal").failing)
            failing = (t.failing, trouble("state_journal").failing, m.health())
            full[0] = False
            await until(lambda: (st.dir / "snapshot").exists())
            await until(lambda: not t.failing)
            return failing
        finally:
            task.cancel()
            await st.close()
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        (snap_failing, journal_failing, health) = asyncio.run(run())
    assert snap_failing and not journal_failing, (snap_failing, journal_failing)
    assert health == (False, "disk writes failing: state_snapshot"), health
    assert len(_lines(caplog, "state snapshot failed")) == 1 and not _lines(caplog, "state journal write failed")


def test_a_reopen_away_from_a_failing_log_leaves_healthz_to_the_new_file(pipe, tmp_path):
    """SIGUSR2 on a full disk's log: the line judged between the new file's opening (off the loop) and the swap went
    to the writer reopened away from, whose failures, closing, are not counted; `failing` stayed as the last write
    before left it, so /healthz held 503 until the new writer wrote a line -- for ever on a node a load balancer
    had drained for that 503 (a CI run of test_healthz_is_503_naming_the_writer…: 503 for 25 s after the reopen).
    Now the new file starts with nothing failed: 503 for HOLD_S after the last failure, then what it writes."""
    from types import SimpleNamespace as NS
    from engine.servicelog import reopen_verdict_log
    now = [1000.0]
    t, m = trouble("verdict_log"), Metrics(pipe)
    t.clock = lambda: now[0]
    t.failed(OSError(errno.ENOSPC, "No space left on device"), "a line held")
    closed = []
    vlog = NS(f=NS(flush=lambda: None, close=lambda: closed.append(1)), closed=False, retired=[], lost_retired=0)
    new = NS(name="the new file")
    assert reopen_verdict_log(vlog, tmp_path / "v.jsonl", opened=new) and vlog.f is new and closed == [1]
    assert m.health() == (False, "disk writes failing: verdict_log")      # within HOLD_S of the failure
    now[0] += HOLD_S + 0.1
    assert m.health() == (True, "ok")
    t.failed(OSError(errno.ENOSPC, "No space left on device"), "a line held")   # the new file's own failure counts
    assert m.health() == (False, "disk writes failing: verdict_log")


def test_writes_that_work_on_the_file_reopened_away_from_a_failing_one_are_said(tmp_path, caplog):
    """The disk trouble's end is said (`disk trouble over, verdict_log: writes work again`) once a write works after
    failures. A reopen at SIGUSR2 cleared `failing` (DiskTrouble.fresh), and `ok` says the end only when it finds
    `failing` set: the new file's writes, which work, said nothing -- the log said the disk trouble and never its end
    (an operator's alert on that line open for ever, after a rotation that freed the disk)."""
    from types import SimpleNamespace as NS
    from engine.servicelog import reopen_verdict_log
    t = trouble("verdict_log")
    t.failed(OSError(errno.ENOSPC, "No space left on device"), "a line held")
    vlog = NS(f=NS(flush=lambda: None, close=lambda: None), closed=False, retired=[], lost_retired=0)
    assert reopen_verdict_log(vlog, tmp_path / "v.jsonl", opened=NS(name="the new file"))
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        t.ok()                                          # the new file's first write
    assert [r.getMessage() for r in caplog.records if "disk trouble over, verdict_log" in r.getMessage()], \
        [r.getMessage() for r in caplog.records]
    caplog.clear()
    t.fresh()                                           # a reopen with nothing failing says nothing at its writes
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        t.ok()
    assert not [r for r in caplog.records if "disk trouble over" in r.getMessage()]
