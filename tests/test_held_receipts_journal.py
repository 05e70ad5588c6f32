"""Held receipts are on disk before the SMSC is told they were delivered (engine/smpp_proxy/held.py,
heldjournal.py): a crash (kill -9) loses none of them, a receipt whose record cannot be written is left
with the SMSC (ESME_RX_T_APPN), one delivered is not offered again, the journal is compacted."""
import shutil
import threading
import time

import msgpack

from engine.smpp_proxy import heldjournal
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.held import _HeldReceipt, _stamped
from engine.smpp_proxy.heldjournal import HeldJournal
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)
from tests.test_smpp_receipts import Esme, ServeBeside


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
    monkeypatch.setattr(heldjournal, "COMPACT_EMPTY", 1)
    h, journal = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)
        e.submit(2)
        assert wait(lambda: _statuses(h) == [0, 0])
        assert journal.stat().st_size > 0
        rx = Esme(h, kind=P.BindReceiver)
        for p in rx.receipts(2):
            rx.answer(p)
        assert wait(lambda: h.proxy.held_log.compactions >= 1)
        assert h.call(h.proxy.held_writer.idle(5))
        assert journal.stat().st_size == 0 and h.proxy.held_total == 0
    finally:
        h.stop()


def test_a_torn_or_damaged_journal_keeps_its_good_prefix(tmp_path):
    j = tmp_path / "held_receipts.journal"
    rec = HeldJournal.record
    good = b"".join(rec(r) for r in (("h", 1, "a", b"r1"), ("h", 2, "b", b"r2"), ("d", 1), ("h", 3, "a", b"r3")))
    j.write_bytes(good + rec(("h", 4, "a", b"r4"))[:-2])                 # a crash mid-append
    assert HeldJournal(j).replay() == [("b", b"r2"), ("a", b"r3")]
    assert not (tmp_path / "held_receipts.journal.unreadable").exists()
    # a damaged byte in the middle: the receipts before it kept, the file copied aside, said loudly
    four = [rec(("h", i, "a", b"r%d" % i)) for i in (1, 2, 3, 4)]
    bad = bytearray(four[1])
    bad[-1] ^= 0x40
    j.write_bytes(four[0] + bytes(bad) + four[2] + four[3])
    assert HeldJournal(j).replay() == [("a", b"r1")]
    assert (tmp_path / "held_receipts.journal.unreadable").read_bytes() == j.read_bytes()
    # a length no record has (not a cut last record: the rest is behind it)
    j.write_bytes(four[0] + b"\xff\xff\xff\x7f" + four[1][4:] + four[2])
    assert HeldJournal(j).replay() == [("a", b"r1")]


def test_after_a_torn_write_nothing_is_appended_until_the_journal_is_rewritten(tmp_path, monkeypatch):
    import os

    from engine import durable
    j = tmp_path / "held_receipts.journal"
    jl = HeldJournal(j)
    assert jl.write([("h", 1, "a", b"r1" * 50)]) == [None]
    real_write, real_trunc = os.write, os.ftruncate

    def half(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    def eio(fd, n):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "write", half)
    monkeypatch.setattr(os, "ftruncate", eio)
    assert isinstance(jl.write([("h", 2, "a", b"r2" * 50)])[0], durable.TornWrite)      # r2: not acknowledged
    monkeypatch.setattr(os, "write", real_write)
    monkeypatch.setattr(os, "ftruncate", real_trunc)
    assert isinstance(jl.write([("h", 3, "a", b"r3" * 50)])[0], OSError)              # refused, not lost behind it
    assert jl.write([("reset", [(1, "a", b"r1" * 50)]), ("h", 4, "a", b"r4" * 50)]) == [None, None]
    assert [raw for _, raw in HeldJournal(j).replay()] == [b"r1" * 50, b"r4" * 50]
    assert jl.write([("h", 5, "a", b"r5")]) == [None]


def test_a_receipt_offered_to_an_esme_stays_in_the_journal_through_a_compaction(pipe, tmp_path):
    h, journal = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)
        e.submit(2)
        assert wait(lambda: _statuses(h) == [0, 0])
        rx = Esme(h, kind=P.BindReceiver)
        got = rx.receipts(2)
        rx.answer(got[0])                                          # taken: gone
        assert wait(lambda: len(h.proxy.held_records) == 1)
        h.run(h.proxy.held_log.compact)                             # while the second is in the ESME's window
        assert h.call(h.proxy.held_writer.idle(5)) and h.proxy.held_log.compactions == 1
        assert [raw for _, raw in HeldJournal(journal).replay()] == [h.proxy.held_records[max(h.proxy.held_records)][1]]
        rx.answer(got[1], C.ESME_RX_T_APPN)                       # refused for now: held again, still on disk
        assert wait(lambda: h.proxy.held_total == 1)
        assert h.call(h.proxy.held_writer.idle(5)) and len(HeldJournal(journal).replay()) == 1
    finally:
        h.stop()


def test_receipts_taken_over_are_on_disk_before_their_claim_goes(pipe, tmp_path):
    h, journal = _held(pipe, tmp_path)
    try:
        rx = Esme(h, kind=P.BindReceiver)
        raw = bytes(P.encode(P.DeliverSm(sequence_number=1, source_addr="84912345678", destination_addr="8088",
                                         esm_class=0x04, short_message=b"id:77 stat:DELIVRD")))
        assert h.call(h.proxy.take_handed_over("esme1", [raw])) is True
        assert len(rx.receipts(1)) == 1                             # in the ESME's window, unanswered:
        assert h.call(h.proxy.held_writer.idle(5)) and len(HeldJournal(journal).replay()) == 1    # on disk

        h.proxy.held_writer.write = lambda items: [OSError(28, "No space left on device")] * len(items)
        assert h.call(h.proxy.take_handed_over("esme1", [raw])) is False     # the server keeps its claim
        assert rx.receipts(1, timeout=0.3) == []
    finally:
        h.stop()


def test_delivering_a_large_backlog_costs_no_scan_of_it_per_receipt(pipe, tmp_path):
    import time
    path = tmp_path / "smpp" / "held_receipts.msgpack"
    path.parent.mkdir(parents=True)
    n = 20_000
    with open(path.with_suffix(".journal"), "wb") as f:
        for i in range(n):
            # a PDU's shape: its command_length first (open_held keeps anything else aside, as a later format's)
            f.write(HeldJournal.record(("h", i + 1, "esme1", (3500).to_bytes(4, "big") + b"r" * 3496)))
    h = ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05).start()
    try:
        assert h.run(lambda: h.proxy.open_held(path)) == n
        p = h.proxy
        assert p.held_log.journal.bytes > heldjournal.COMPACT_BYTES

        def deliver(k):
            t = time.perf_counter()
            q = p.held["esme1"]
            for _ in range(k):                  # what _flush_held and an ESME's answer do per receipt
                e = q.popleft()
                p.held_total -= 1
                p._held_gone(e)
            return time.perf_counter() - t
        per = h.run(lambda: deliver(2000)) / 2000
        assert per < 0.002, f"{per * 1e6:.0f} us of loop time per receipt delivered"     # (a scan: ~10 ms)
    finally:
        h.stop()


def test_receipts_held_when_serve_is_killed_reach_their_account_after_the_restart(tmp_path):
    """kill -9 while receipts are held (acknowledged to the SMSC): the next start delivers every one."""
    run = ServeBeside(tmp_path, receipt_delay=0.05)
    try:
        p, h = run.start(1)
        e = Esme(h, kind=P.BindTransmitter)                       # no receiver bound: every receipt is held
        e.submit(3)
        assert wait(lambda: [r.command_status for r in list(run.sim.sim.mo_responses)] == [0, 0, 0], 10)
        p.kill()                                                  # SIGKILL: no clean stop
        p.wait(10)
        p, h = run.start(2)
        rx = Esme(h, kind=P.BindReceiver)
        got = rx.receipts(3, timeout=10)
        assert len(got) == 3 and all(b"id:" in x.short_message for x in got)
        assert len({x.short_message for x in got}) == 3
    finally:
        run.close()


# ---------------------------------------------------------------- one account's share, and an age limit
def test_one_account_cannot_take_every_held_receipt_slot(pipe):
    # found by a probe: an account bound transmitter only (asking for receipts) filled max_held_receipts, and
    # another account's receipt during a reconnect was pushed back to the SMSC instead of being held
    settings = SmppSettings(max_held_receipts=4)                 # two accounts: at most 2 each
    with ProxyHarness(pipe, accounts=("esme1:secret", "esme2:secret"), settings=settings, receipt_delay=0.05) as h:
        tx = Esme(h, kind=P.BindTransmitter)
        tx.submit(4)
        assert wait(lambda: len(h.sim.mo_responses) == 4)
        assert sorted(_statuses(h)) == [0, 0, C.ESME_RX_T_APPN, C.ESME_RX_T_APPN]
        assert h.proxy.stats["receipts_refused_held_share"] == 2 and h.proxy.held_total == 2
        other = Esme(h, kind=P.BindTransmitter, system_id="esme2")   # its receiver is away: held, not pushed back
        other.submit(2)
        assert wait(lambda: len(h.sim.mo_responses) == 6)
        assert _statuses(h)[4:] == [0, 0] and h.proxy.held_total == 4
        assert len(h.proxy.held["esme1"]) == 2 and len(h.proxy.held["esme2"]) == 2


def test_a_receipt_held_past_max_held_days_is_let_go_and_its_record_ends(pipe, tmp_path):
    h, journal = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)
        e.submit(2)
        assert wait(lambda: _statuses(h) == [0, 0]) and h.proxy.held_total == 2
        h.proxy.settings.max_held_days = 1 / 86400               # 1 s
        # (read from this thread while the loop lets them go: wait for the whole of it, not held_total alone, which
        # drops to 0 a few bytecodes before the account's empty queue is removed; CI caught that once)
        assert wait(lambda: h.proxy.held_total == 0 and h.proxy.stats["receipts_held_expired"] == 2
                    and not h.proxy.held and not h.proxy.held_records, 5), (h.proxy.held, h.proxy.held_records)
        assert _statuses(h) == [0, 0]                            # answered once, when held; nothing more
        e.submit(1)                                              # (the gone records ride with the next write)
        assert wait(lambda: h.proxy.held_total == 1)
        assert h.call(h.proxy.held_writer.idle(5))
        assert len(HeldJournal(journal).replay()) == 1
    finally:
        h.stop()


def test_when_a_receipt_was_held_is_kept_across_a_restart(pipe, tmp_path):
    path = tmp_path / "smpp" / "held_receipts.msgpack"
    journal = path.with_suffix(".journal")
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05) as h:
        assert h.run(lambda: h.proxy.open_held(path)) == 0
        e = Esme(h, kind=P.BindTransmitter)
        e.submit(1)
        # held, not only counted while its journal record is written (held_total counts both: a CI run read
        # the empty queue in between)
        assert wait(lambda: len(h.proxy.held.get("esme1", ())) == 1)
        when = h.proxy.held["esme1"][0].held_at
        assert h.call(h.proxy.close_held()) == 1
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h2:
        assert h2.run(lambda: h2.proxy.open_held(path)) == 1
        assert h2.proxy.held["esme1"][0].held_at == when         # not young again
        rx = Esme(h2, kind=P.BindReceiver)
        got = rx.receipts(1)
        assert got and b"id:" in got[0].short_message           # the PDU as the SMSC sent it, no stamp
        rx.answer(got[0])
        assert wait(lambda: h2.proxy.held_total == 0)
        h2.call(h2.proxy.close_held())
    # an older version's record (the PDU alone) counts from the start that reads it, and is stamped from then on
    HeldJournal(journal).rewrite([(1, "esme1", encode(got[0]))])
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h3:
        t0 = time.time()
        assert h3.run(lambda: h3.proxy.open_held(path)) == 1
        assert h3.proxy.held["esme1"][0].held_at >= t0 - 1
        assert h3.call(h3.proxy.close_held()) == 1
    (acct, payload), = HeldJournal(journal).replay()
    assert payload.startswith(b"\xffT") and payload[10:] == encode(got[0])


def test_ctl_stats_says_how_many_receipts_are_held(pipe, tmp_path):
    """The README's downgrade step reads `held_total` from `telfilter ctl stats` (an older version would
    send the journal's time prefix to the ESME): ctl stats must say it, 0 once they are delivered. It
    carried only the cumulative `receipts_held` counter (found by the upgrade probe)."""
    from engine.control import ControlServer
    h, _ = _held(pipe, tmp_path)
    try:
        ctl = ControlServer(pipe, tmp_path / "control.sock", on_drain=lambda: None, proxy=h.proxy)
        assert ctl.stats()["smpp"]["held_total"] == 0
        e = Esme(h, kind=P.BindTransmitter)                      # no receiver: receipts are held
        e.submit(2)
        assert wait(lambda: _statuses(h) == [0, 0])
        assert ctl.stats()["smpp"]["held_total"] == 2
        rx = Esme(h, kind=P.BindReceiver)                        # a receiver binds: they are delivered
        for p in rx.receipts(2):
            rx.answer(p)
        assert wait(lambda: ctl.stats()["smpp"]["held_total"] == 0)
        assert ctl.stats()["smpp"]["receipts_held"] == 2         # the counter stays what it counts
    finally:
        h.stop()


def test_a_record_of_a_later_format_is_never_offered_and_is_kept_as_it_is(pipe, tmp_path, caplog):
    """A rollback: a journal written by a version whose records this one does not know (neither stamped nor a
    PDU) is said, its records stay in the journal through this run's rewrites, and none reaches an ESME."""
    path = tmp_path / "smpp" / "held_receipts.msgpack"
    journal = path.with_suffix(".journal")
    pdu = encode(P.DeliverSm(sequence_number=1, source_addr="84912000001", destination_addr="8077",
                             esm_class=C.ESM_TYPE_DELIVERY_RECEIPT, short_message=b"id:00000001 stat:DELIVRD"))
    later = b"\xffU" + bytes(12) + b"a later version's record"
    HeldJournal(journal).rewrite([(1, "esme1", later), (2, "esme1", pdu)])
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        assert h.run(lambda: h.proxy.open_held(path)) == 1
        assert [e.raw for e in h.proxy.held["esme1"]] == [pdu]
        h.call(h.proxy.close_held())
    assert "1 held receipts in" in caplog.text and "format this version does not read" in caplog.text
    kept = [raw for _, raw in HeldJournal(journal).replay()]
    assert later in kept and len(kept) == 2


def test_an_older_versions_stop_file_read_again_after_a_crash_offers_its_receipts_once(pipe, tmp_path):
    """An older version's clean stop left `held_receipts.msgpack`; the start that read it put its receipts in the
    journal (stamped with when it read them) and was killed before it removed the file: the next start reads the
    file again, stamped anew, and offered each receipt twice. A receipt is one by its PDU: once."""
    path = tmp_path / "smpp" / "held_receipts.msgpack"
    path.parent.mkdir(parents=True)
    pdus = [encode(P.DeliverSm(sequence_number=n, source_addr="84912000001", destination_addr="8077",
                               esm_class=C.ESM_TYPE_DELIVERY_RECEIPT, short_message=b"id:0000000%d stat:DELIVRD" % n))
            for n in (1, 2)]
    path.write_bytes(msgpack.packb([["esme1", p] for p in pdus]))
    # what the killed start left: the journal with both, stamped 60 s ago, and the stop file still there
    HeldJournal(path.with_suffix(".journal")).rewrite(
        [(i + 1, "esme1", _stamped(_HeldReceipt(p, 0, time.time() - 60))) for i, p in enumerate(pdus)])
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        assert h.run(lambda: h.proxy.open_held(path)) == 2
        assert sorted(e.raw for e in h.proxy.held["esme1"]) == sorted(pdus)
        h.call(h.proxy.close_held())
    assert not path.exists()
