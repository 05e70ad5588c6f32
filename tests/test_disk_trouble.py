"""A full (ENOSPC) or read-only (EROFS) data disk under traffic (found by the disk-full probe: serve inline on an
8 MB tmpfs filled by dd, and on an ext4 loop turned read-only by errors=remount-ro): every message is still
answered, but the service log got a line per failed write (1,016 lines for held receipts in 12 s at ~80
receipts/s, one per 0.25 s for the state journal), nothing in /metrics said the disk was failing, and the
verdict log kept a line cut by the short write glued to the next one (a JSON line that does not parse).
Now: engine/disktrouble.py says a writer's first failure at once, then at most every 10 s, and when writes
work again; /metrics has telfilter_disk_write_errors_total / telfilter_disk_failing per writer and
telfilter_verdict_log_lost_lines_total; the verdict log cuts a short write back to its last whole line."""
import errno
import json
import logging
import os

from engine.disktrouble import trouble
from engine.metrics import Metrics
from engine.smpp_proxy import verdictlog
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.heldjournal import HeldJournal
from engine.smpp_proxy.verdictlog import FileOut, VerdictLog
from tests.test_held_receipts_journal import _held, _statuses
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)
from tests.test_smpp_receipts import Esme


def _lines(caplog, needle):
    return [r for r in caplog.records if r.levelno >= logging.ERROR and needle in r.getMessage()]


def test_receipts_a_full_disk_refuses_are_said_once_counted_and_the_recovery_said(pipe, tmp_path, monkeypatch,
                                                                                   caplog):
    real, full = HeldJournal.write, [True]

    def write(self, items):
        return [OSError(errno.ENOSPC, "No space left on device")] * len(items) if full[0] else real(self, items)
    monkeypatch.setattr(HeldJournal, "write", write)
    t = trouble("held_receipts")
    before = t.errors
    h, _ = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)                      # no receiver: every receipt is held
        with caplog.at_level(logging.WARNING, logger="telfilter"):
            for i in range(4):                                   # in four rounds: none may wait on another's write
                e.submit(10, first=10 * i)
                assert wait(lambda: len(_statuses(h)) == 10 * (i + 1))
            assert set(_statuses(h)) == {C.ESME_RX_T_APPN}      # each answered: the SMSC keeps it
            assert h.proxy.stats["receipts_not_recorded"] == 40
            said = _lines(caplog, "not held")
            assert len(said) == 1, [r.getMessage() for r in said]          # 40 before (one per receipt)
            assert t.errors - before == 40 and t.failing
            text = _scrape(pipe)
            assert 'telfilter_disk_failing{writer="held_receipts"} 1.0' in text
            assert f'telfilter_disk_write_errors_total{{writer="held_receipts"}} {float(t.errors)}' in text
            full[0] = False                                      # space again: the next receipt is held
            e.submit(1, first=99)
            assert wait(lambda: len(_statuses(h)) == 41) and _statuses(h)[-1] == 0
            assert not t.failing
            assert any("writes work again" in r.getMessage() for r in caplog.records)
    finally:
        h.stop()


def _scrape(pipe):
    from prometheus_client import generate_latest
    return generate_latest(Metrics(pipe).registry).decode()


def test_the_state_journal_on_a_full_disk_is_said_once_not_every_flush(tmp_path, monkeypatch, caplog):
    import asyncio

    from engine.state import embedded
    from engine.state.embedded import EmbeddedStore
    monkeypatch.setattr(embedded, "FLUSH_EVERY", 0.01)
    st = EmbeddedStore(tmp_path / "state")
    st.due = lambda: False

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    async def run():
        monkeypatch.setattr(st, "flush", lambda: asyncio.sleep(0, result=full()))
        task = asyncio.ensure_future(st.run())
        await asyncio.sleep(0.5)                                 # ~50 flushes that fail
        task.cancel()
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        asyncio.run(run())
    assert st.write_errors >= 20
    assert len(_lines(caplog, "state journal write failed")) == 1


def test_a_write_the_disk_cuts_short_leaves_no_torn_verdict_line(tmp_path, monkeypatch):
    path = tmp_path / "verdicts.jsonl"
    real, calls = os.write, [0]

    def write(fd, data):
        calls[0] += 1
        if calls[0] == 2:                   # the disk takes part of the chunk ...
            return real(fd, bytes(data[:len(data) // 2 + 7]))
        if calls[0] == 3:                   # ... then is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)
    monkeypatch.setattr(verdictlog.os, "write", write)
    f = FileOut(str(path))
    sent = 0
    for batch in range(3):                  # three chunks: written, cut short then refused, written
        f.write("".join(json.dumps({"kind": "sms", "n": sent + i, "pad": "x" * (i * 7)}) + "\n" for i in range(25)))
        sent += 25
        f.flush()
        assert wait(lambda: not f.buf and calls[0] >= batch + 1 + (batch >= 1))
    f.drain()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    got = [json.loads(x) for x in lines[:-1]]                    # every line parses: none torn, none glued
    lost = f.lost_lines                 # the cut chunk's lines after its last whole one
    assert len(got) + lost == sent and 0 < lost < 25
    assert [r["n"] for r in got] == list(range(50 - lost)) + list(range(50, 75))
    vl = VerdictLog(str(tmp_path / "other.jsonl"))               # what /metrics reads: every writer's losses
    vl.retired.append(f)
    assert vl.lost_lines == lost
    vl.close()


def test_a_journal_rewrite_the_disk_refuses_is_tried_again_after_a_pause_not_at_once(tmp_path):
    """A held-receipts (or 5656 parts) journal a failed append left torn takes no append until it is
    rewritten; on a read-only disk the rewrite failed and was submitted again from its own failure, at
    once: ~220 rewrites a second in the probe (2,668 log lines in 12 s), a writer thread spinning."""
    import asyncio
    import time

    from engine.smpp_proxy.heldjournal import RETRY_S, RecordLog

    async def run():
        rl = RecordLog(tmp_path / "held_receipts.journal", "telfilter-receipts-writer", "held receipt")
        rl.open(asyncio.get_running_loop())
        resets, real = [], rl.writer.write

        def write(items):
            if any(it[0] == "reset" for it in items):
                resets.append(time.monotonic())
                return [OSError(errno.EROFS, "Read-only file system")] * len(items)
            return real(items)
        rl.writer.write = write
        rl.journal.torn = True
        rl.failed(OSError(errno.EROFS, "Read-only file system"))
        await asyncio.sleep(RETRY_S * 0.8)
        n = len(resets)
        await asyncio.sleep(RETRY_S * 0.6)                       # tried again once the pause is over
        rl.writer.write = real
        rl.journal.torn = True
        await asyncio.sleep(RETRY_S * 1.2)                       # ... and once it works, no more
        m = len(resets)
        await rl.close()
        return n, m, rl.journal.torn
    n, m, torn = asyncio.run(run())
    assert n == 1 and m >= 2 and not torn
