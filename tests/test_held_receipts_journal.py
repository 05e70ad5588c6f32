"""Held receipts are on disk before the SMSC is told they were delivered (engine/smpp_proxy/held.py,
heldjournal.py): a crash (kill -9) loses none of them, a receipt whose record cannot be written is left
with the SMSC (ESME_RX_T_APPN), one delivered is not offered again, the journal is compacted."""
import shutil
import threading

import msgpack

from engine.smpp_proxy import held as held_mod
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.heldjournal import GONE, HOLD, HeldJournal
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)
from tests.test_smpp_receipts import Esme


def _held(pipe, tmp_path):
    path = tmp_path / "smpp" / "held_receipts.msgpack"
    h = ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05).start()
    h.run(lambda: h.proxy.open_held(path))
    return h, path.with_suffix(".journal")


def _statuses(h):
    return [r.command_status for r in list(h.sim.mo_responses)]


def test_a_receipt_acknowledged_to_the_smsc_is_in_the_journal_already(pipe, tmp_path):
    h, journal = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)                      # no receiver: receipts are held
        e.submit(3)
        assert wait(lambda: _statuses(h) == [0, 0, 0])
        crash = tmp_path / "at-the-ack.journal"
        shutil.copyfile(journal, crash)                          # the disk as a kill -9 right now leaves it
    finally:
        h.stop()
    got = HeldJournal(crash).replay()
    assert len(got) == 3 and {a for a, _ in got} == {"esme1"} and all(b"id:" in raw for _, raw in got)


def test_the_smsc_waits_for_the_write_and_keeps_a_receipt_that_could_not_be_written(pipe, tmp_path, monkeypatch):
    gate, entered, fail = threading.Event(), threading.Event(), []
    real = HeldJournal.write

    def write(self, items):
        entered.set()
        assert gate.wait(10)
        return [OSError(28, "No space left on device")] * len(items) if fail else real(self, items)
    monkeypatch.setattr(HeldJournal, "write", write)
    h, journal = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)
        e.submit(1)
        assert entered.wait(5)
        assert not wait(lambda: h.sim.mo_responses, 0.3)         # not answered while it is written
        gate.set()
        assert wait(lambda: _statuses(h) == [0]) and h.proxy.held_total == 1
        fail.append(1)
        e.submit(1)
        assert wait(lambda: _statuses(h) == [0, C.ESME_RX_T_APPN])   # not on disk: the SMSC keeps it
        assert h.proxy.held_total == 1 and h.proxy.stats["receipts_not_recorded"] == 1
    finally:
        h.stop()


def test_a_delivered_receipt_is_not_offered_again_after_a_crash(pipe, tmp_path):
    h, journal = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)
        e.submit(2)
        assert wait(lambda: _statuses(h) == [0, 0])
        rx = Esme(h, kind=P.BindReceiver)
        got = rx.receipts(2)
        rx.answer(got[0])                                         # one taken,
        rx.answer(got[1], C.ESME_RX_T_APPN)                       # one refused for now: held again
        assert wait(lambda: h.proxy.stats["receipts_held"] >= 3 and h.proxy.held_total == 1, 10)
        assert h.call(h.proxy.held_writer.idle(5))
        crash = tmp_path / "crash.journal"
        shutil.copyfile(journal, crash)
    finally:
        h.stop()
    left = HeldJournal(crash).replay()
    assert len(left) == 1 and left[0][1] != b"" and got[1].short_message in left[0][1]


def test_the_journal_is_compacted_once_nothing_is_held(pipe, tmp_path, monkeypatch):
    monkeypatch.setattr(held_mod, "COMPACT_EMPTY", 1)
    h, journal = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)
        e.submit(2)
        assert wait(lambda: _statuses(h) == [0, 0])
        assert journal.stat().st_size > 0
        rx = Esme(h, kind=P.BindReceiver)
        for p in rx.receipts(2):
            rx.answer(p)
        assert wait(lambda: h.proxy.stats["receipts_journal_compactions"] >= 1)
        assert h.call(h.proxy.held_writer.idle(5))
        assert journal.stat().st_size == 0 and h.proxy.held_total == 0
    finally:
        h.stop()


def test_a_torn_or_damaged_journal_keeps_its_good_prefix(tmp_path):
    j = tmp_path / "held_receipts.journal"
    good = b"".join(msgpack.packb(r, use_bin_type=True) for r in
                    ([HOLD, 1, "a", b"r1"], [HOLD, 2, "b", b"r2"], [GONE, 1], [HOLD, 3, "a", b"r3"]))
    j.write_bytes(good + msgpack.packb([HOLD, 4, "a", b"r4"], use_bin_type=True)[:-2])     # a crash mid-append
    assert HeldJournal(j).replay() == [("b", b"r2"), ("a", b"r3")]
    assert not (tmp_path / "held_receipts.journal.unreadable").exists()
    j.write_bytes(good + msgpack.packb({"x": 1}) + msgpack.packb([HOLD, 5, "a", b"r5"], use_bin_type=True))
    assert HeldJournal(j).replay() == [("b", b"r2"), ("a", b"r3")]
    assert (tmp_path / "held_receipts.journal.unreadable").read_bytes() == j.read_bytes()


def test_receipts_held_when_serve_is_killed_reach_their_account_after_the_restart(tmp_path):
    """kill -9 while receipts are held (acknowledged to the SMSC): the next start delivers every one."""
    import subprocess
    import sys

    from engine.app import build
    from tests.conftest import ROOT
    from tests.test_serve import free_port, wait_for

    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False,
                       receipt_delay=0.05).start()
    data, procs = tmp_path / "data", []

    def serve(n):
        port, ready = free_port(), tmp_path / f"ready{n}"
        before = set(map(id, sim.sim.sessions))
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", data, "-v",
                              "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{sim.port}",
                              "--esme-account", "esme1:secret", "--sip-listen", "off", "--log", tmp_path / "v.log",
                              "--ready-file", ready], cwd=ROOT, stderr=open(tmp_path / f"err{n}.log", "w"),
                             stdout=subprocess.DEVNULL)
        procs.append(p)
        assert wait_for(ready.exists, 60), (tmp_path / f"err{n}.log").read_text()
        assert wait_for(lambda: any(s.bound and id(s) not in before for s in list(sim.sim.sessions)))
        return p, type("H", (), {"port": port})()

    try:
        p, h = serve(1)
        e = Esme(h, kind=P.BindTransmitter)                       # no receiver bound: every receipt is held
        e.submit(3)
        assert wait(lambda: [r.command_status for r in list(sim.sim.mo_responses)] == [0, 0, 0], 10)
        p.kill()                                                  # SIGKILL: no clean stop
        p.wait(10)
        p, h = serve(2)
        rx = Esme(h, kind=P.BindReceiver)
        got = rx.receipts(3, timeout=10)
        assert len(got) == 3 and all(b"id:" in x.short_message for x in got)
        assert len({x.short_message for x in got}) == 3
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        sim.stop()
