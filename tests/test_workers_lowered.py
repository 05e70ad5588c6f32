"""`serve --workers N` lowered (or a pool replaced by one serve): the SMPP files the workers no longer started
left in the data dir -- held receipts the SMSC was told were delivered, message ids, 5656 parts, ads scheduled
ahead -- are taken over by the worker j % N (engine/serve_files.adopt_orphans), not left unread."""
import asyncio
import fcntl
import logging
import os
import re
import subprocess
import sys
import time

import pytest

from engine.serve_files import adopt_orphans, lock_serve_files
from engine.state import StateError
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.heldjournal import HeldJournal, RecordLog
from engine.smpp_proxy.scheduled import ScheduledAds, _pack
from tests.test_smpp_dnc_cancel import _ad
from tests.test_smpp_proxy import wait
from tests.test_smpp_receipts import Esme, ServeBeside, _submitted

_KIND = re.compile(r"^(\.?)(held_receipts|message_ids|scheduled_ads|mo_parts)\.(.*)$")


def _as_worker(smpp, j):
    """The files a single serve left, renamed as worker j of a pool would have named them."""
    moved = []
    for f in list(smpp.iterdir()):
        m = _KIND.match(f.name)
        if m:
            dot, kind, rest = m.groups()
            f.rename(smpp / f"{dot}{kind}.w{j}.{rest}")
            moved.append(f"{dot}{kind}.w{j}.{rest}")
    return moved


def test_receipts_and_ids_a_dropped_worker_left_reach_their_account(tmp_path):
    """Worker 3 of a pool of 4 is killed holding three receipts acknowledged to the SMSC (no receiver bound); the
    service comes back as one serve: it delivers them, and a receipt the SMSC sends again for one of worker 3's
    messages still finds its account (the id map taken over too)."""
    run = ServeBeside(tmp_path, receipt_delay=0.05)
    try:
        p, h = run.start(1)
        e = Esme(h, kind=P.BindTransmitter)                       # no receiver bound: every receipt is held
        e.submit(3)
        ids = _submitted(e, 3)
        assert wait(lambda: [r.command_status for r in list(run.sim.sim.mo_responses)] == [0, 0, 0], 10)
        p.kill()
        p.wait(10)
        smpp = run.data / "smpp"
        moved = _as_worker(smpp, 3)
        assert "held_receipts.w3.journal" in moved and any(n.startswith("message_ids.w3.log.") for n in moved)
        p, h = run.start(2)
        rx = Esme(h, kind=P.BindReceiver)
        got = rx.receipts(3, timeout=10)
        assert len({x.short_message for x in got}) == 3 and all(b"id:" in x.short_message for x in got)
        for x in got:
            rx.answer(x)
        assert not [n for n in os.listdir(smpp) if ".w3." in n and not n.startswith("serve.")]
        run.receipts_for(ids[:1])                                  # the SMSC's receipt again, after the start
        again = rx.receipts(1, timeout=10)
        assert again and again[0].command_id == C.DELIVER_SM
        assert wait(lambda: [r.command_status for r in list(run.sim.sim.mo_responses)][-1:] == [0], 10)
        err = (tmp_path / "err2.log").read_text()
        assert "taking over the SMPP files" in err and "worker 3" in err, err[-2000:]
    finally:
        run.close()


def test_a_dropped_worker_still_draining_at_the_start_is_waited_for_not_left(tmp_path):
    """The larger pool's supervisor killed, its workers drain (SIGTERM) while the smaller pool starts: worker 3 still
    holds its serve lock for 2 s when the new serve looks. Its files were skipped for good (read by nobody until the
    next start: held receipts the SMSC was told were delivered, undelivered meanwhile); its lock is waited for."""
    import subprocess
    import sys
    run = ServeBeside(tmp_path, receipt_delay=0.05)
    try:
        p, h = run.start(1)
        e = Esme(h, kind=P.BindTransmitter)
        e.submit(3)
        _submitted(e, 3)
        assert wait(lambda: [r.command_status for r in list(run.sim.sim.mo_responses)] == [0, 0, 0], 10)
        p.kill()
        p.wait(10)
        smpp = run.data / "smpp"
        _as_worker(smpp, 3)
        draining = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                                     "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
                                     "fcntl.flock(fd, fcntl.LOCK_EX)\nprint(flush=True)\ntime.sleep(2)",
                                     str(smpp / "serve.w3.lock")], stdout=subprocess.PIPE)
        try:
            assert draining.stdout.readline() == b"\n"                 # worker 3's lock held
            p, h = run.start(2)
        finally:
            draining.kill()
            draining.wait(10)
        rx = Esme(h, kind=P.BindReceiver)
        got = rx.receipts(3, timeout=10)
        assert len({x.short_message for x in got}) == 3, (tmp_path / "err2.log").read_text()[-2000:]
        assert not [n for n in os.listdir(smpp) if ".w3." in n and not n.startswith("serve.")]
    finally:
        run.close()


def test_the_control_socket_a_killed_dropped_worker_left_goes_with_its_files(tmp_path):
    """A pool killed -9 leaves its workers' control sockets; the one of a worker no longer started was never removed
    (a worker removes only its own at start): every `ctl reload` after said worker 3 had "no telfilter serve
    answers", for good. The worker that takes its files over removes it."""
    import socket

    from engine.control_client import request_pool
    smpp = tmp_path / "data" / "smpp"
    smpp.mkdir(parents=True)
    (smpp / "held_receipts.w3.journal").write_bytes(b"")
    stale = tmp_path / "data" / "control.w3.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()                                   # (the file stays: a killed serve's)
    run = ServeBeside(tmp_path)
    try:
        run.start(1)
        assert not stale.exists()
        ans = request_pool(tmp_path / "data" / "control.sock", {"cmd": "reload", "what": ["rules"]}, 20)
        assert ans.get("ok") and "workers" not in ans, ans
    finally:
        run.close()


def test_the_ready_file_a_killed_dropped_worker_left_goes_with_its_files(tmp_path):
    """A pool killed -9 leaves its workers' `--ready-file`s (`<path>.w<j>`: their ports); the one of a worker no
    longer started stayed for good, naming ports nobody listened on. The worker that takes its files over removes
    it."""
    smpp = tmp_path / "data" / "smpp"
    smpp.mkdir(parents=True)
    (smpp / "held_receipts.w3.journal").write_bytes(b"")
    stale = tmp_path / "ready1.w3"
    stale.write_text("smpp 2775\n")
    run = ServeBeside(tmp_path)
    try:
        run.start(1)
        assert not stale.exists()
    finally:
        run.close()


def test_each_dropped_worker_goes_to_one_worker_of_the_smaller_pool(tmp_path, caplog):
    smpp = tmp_path / "smpp"
    smpp.mkdir()
    for j in range(1, 6):
        (smpp / f"held_receipts.w{j}.journal").write_bytes(b"")
    (smpp / "mo_parts.w7.journal.unreadable").write_bytes(b"")            # set aside: not a worker's files
    (smpp / "held_receipts.w8.journal.tmp4242").write_bytes(b"")          # a crash's temporary file: neither
    (smpp / ".message_ids.w6.log.spool.123.ab").write_bytes(b"")          # a crash spool alone is
    held = os.open(smpp / "serve.w5.lock", os.O_RDWR | os.O_CREAT)        # worker 5 still running
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        with caplog.at_level(logging.WARNING, "telfilter.smpp"):
            a, fa = adopt_orphans(tmp_path, 0, 2)
            b, fb = adopt_orphans(tmp_path, 1, 2)
        assert a == [2, 4, 6] and b == [3]
        assert "worker 5's SMPP files" in caplog.text
        assert adopt_orphans(tmp_path, 0, 2)[0] == []                     # taken: not twice
        for fd in fa + fb:
            os.close(fd)
        assert adopt_orphans(tmp_path, 0, 1)[0] == [1, 2, 3, 4, 6]           # one serve: all but the running one
    finally:
        os.close(held)


def test_a_record_log_takes_another_journal_in_then_removes_it(tmp_path):
    """The journal taken over is in this one (fsynced) before it goes: its records live on, numbered afresh."""
    mine, theirs = tmp_path / "scheduled_ads.journal", tmp_path / "scheduled_ads.w3.journal"
    HeldJournal(mine).rewrite([(1, "m1", _pack(_ad("m1", 2000)))])
    HeldJournal(theirs).rewrite([(1, "m2", _pack(_ad("m2", 2500))), (2, "m3", _pack(_ad("m3", 500)))])
    for t in (mine, theirs):                # what a crash in the middle of a rewrite leaves: swept
        t.with_name(t.name + ".tmp4242").write_bytes(b"partial")

    async def run():
        loop = asyncio.get_running_loop()
        a = ScheduledAds()
        assert a.open(mine, loop, now=1000, adopt=[theirs]) == 2              # m3 was due already
        assert sorted(a.entries) == ["m1", "m2"] and not theirs.exists()
        assert sorted(x.name for x in tmp_path.iterdir()) == ["scheduled_ads.journal"]
        await a.close()
        rl = RecordLog(mine, "t", "scheduled ad")
        assert sorted(o for _, o, _ in rl.open(loop)) == ["m1", "m2"]
        rl.writer.close()
    asyncio.run(run())


def test_a_crash_between_taking_a_journal_in_and_removing_it_takes_nothing_twice(tmp_path, monkeypatch):
    """The adopted journal is removed after this one is rewritten with its records: killed in between, the next
    start reads it again, and its records, in this journal already, are not taken a second time (a crash loop
    during a start added a copy of every adopted receipt each time: each offered to the ESME as often)."""
    mine, theirs = tmp_path / "held_receipts.journal", tmp_path / "held_receipts.w2.journal"
    HeldJournal(theirs).rewrite([(1, "esme1", b"receipt-a"), (2, "esme1", b"receipt-b")])
    real_unlink = type(theirs).unlink

    def killed(self, missing_ok=False):
        if self == theirs:
            raise KeyboardInterrupt("killed before the adopted journal went")
        real_unlink(self, missing_ok=missing_ok)

    async def run(adopt_fails):
        loop = asyncio.get_running_loop()
        rl = RecordLog(mine, "t", "held receipt")
        if adopt_fails:
            monkeypatch.setattr(type(theirs), "unlink", killed)
            try:
                rl.open(loop, adopt=[theirs])
            except KeyboardInterrupt:
                return None
            finally:
                monkeypatch.undo()
        live = rl.open(loop, adopt=[theirs])
        rl.writer.close()
        return live
    assert asyncio.run(run(True)) is None and theirs.exists()
    live = asyncio.run(run(False))
    assert sorted(raw for _, _, raw in live) == [b"receipt-a", b"receipt-b"] and not theirs.exists()


def test_a_pool_worker_waits_for_the_same_worker_of_a_pool_still_draining(tmp_path):
    """A pool whose supervisor was killed drains before its workers exit; the new pool's worker i found worker i's
    lock held and stopped at once (a start-up error at the pool's first start: the pool stopped). It waits for it,
    its stop's time at most; a serve still there after that is refused as before."""
    (tmp_path / "smpp").mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(tmp_path / 'smpp' / 'serve.w1.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(1.5)\n")], stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StateError, match="in use by another telfilter serve"):
            lock_serve_files(tmp_path, 1)                       # a single serve's start: at once, as before
        t0 = time.monotonic()
        fd = lock_serve_files(tmp_path, 1, wait=20.0)           # a pool worker's: once the draining one is gone
        assert 0.5 < time.monotonic() - t0 < 15
        os.close(fd)
    finally:
        holder.kill()
        holder.wait(10)
