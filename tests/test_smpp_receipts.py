"""Delivery receipts held by the proxy (no free receiver of the account): offered again as soon as a
window slot frees, after a back-off when the ESME refused one, never more than max_held_receipts
(the SMSC is then answered ESME_RX_T_APPN and keeps the receipt)."""
import socket
import struct
import time

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import decode, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)

GOOD = "84901234567"


class Esme:
    """A raw-socket ESME that keeps every PDU it reads, by kind."""

    def __init__(self, h, kind=P.BindTransceiver, system_id="esme1"):
        self.s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        self.buf, self.seq, self.pdus = b"", 1, []
        self.s.sendall(encode(kind(sequence_number=1, system_id=system_id, password="secret", interface_version=0x34)))
        assert self.next(lambda p: P.is_response(p.command_id)).command_status == 0

    def submit(self, n, first=0):
        for i in range(first, first + n):
            self.seq += 1
            self.s.sendall(encode(P.SubmitSm(sequence_number=self.seq, source_addr=GOOD, destination_addr="84912345678",
                                             registered_delivery=1, short_message=b"see you at %d" % i)))

    def _read(self, timeout):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= n:
                    raw, self.buf = self.buf[:n], self.buf[n:]
                    p = decode(raw)
                    self.pdus.append(p)
                    return p
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            if not d:
                raise ConnectionError("closed")
            self.buf += d

    def next(self, pred, timeout=5.0):
        """The first PDU read (now or before, not taken yet) that `pred` accepts, or None."""
        end = time.monotonic() + timeout
        for i, p in enumerate(self.pdus):
            if pred(p):
                return self.pdus.pop(i)
        while time.monotonic() < end:
            p = self._read(max(0.01, end - time.monotonic()))
            if p is not None and pred(p):
                self.pdus.remove(p)
                return p
        return None

    def receipts(self, n, timeout=5.0):
        out = []
        for _ in range(n):
            p = self.next(lambda p: p.command_id == C.DELIVER_SM, timeout)
            if p is None:
                break
            out.append(p)
        return out

    def answer(self, p, status=0):
        self.s.sendall(encode(P.DeliverSmResp(sequence_number=p.sequence_number, command_status=status)))


def test_held_receipts_go_out_as_window_slots_free_without_a_rebind(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05) as h:
        h.proxy.accounts["esme1"].window = 2
        e = Esme(h)
        e.submit(6)
        first = e.receipts(2)
        assert len(first) == 2
        assert e.receipts(1, timeout=0.5) == []                # the window is full: the rest are held
        assert wait(lambda: h.proxy.held_total == 4)
        got = list(first)
        for p in got:
            e.answer(p)
        while len(got) < 6:                                    # each answer lets the next one out
            more = e.receipts(1, timeout=3)
            assert more, f"only {len(got)} of 6 receipts delivered"
            e.answer(more[0])
            got += more
        assert wait(lambda: len(h.sim.mo_responses) == 6)
        assert {r.command_status for r in h.sim.mo_responses} == {0}
        assert h.proxy.held_total == 0 and not h.proxy.held


def test_a_receipt_the_esme_refused_is_offered_again(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05) as h:
        e = Esme(h)
        e.submit(1)
        p = e.receipts(1)[0]
        e.answer(p, C.ESME_RX_T_APPN)                          # "not now"
        t0 = time.monotonic()
        again = e.receipts(1, timeout=4)
        assert again, "the refused receipt was never offered again"
        assert time.monotonic() - t0 >= 0.5                   # after the back-off, not in a tight loop
        assert again[0].short_message == p.short_message
        e.answer(again[0])
        assert wait(lambda: h.proxy.held_total == 0)


def test_held_receipts_are_bounded_and_the_smsc_keeps_the_rest(pipe):
    settings = SmppSettings(max_held_receipts=2)
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=settings, receipt_delay=0.05) as h:
        e = Esme(h, kind=P.BindTransmitter)                    # no receiver bind: every receipt is held
        e.submit(5)
        assert wait(lambda: len(h.sim.mo_responses) == 5)
        st = sorted(r.command_status for r in h.sim.mo_responses)
        assert st == [0, 0, C.ESME_RX_T_APPN, C.ESME_RX_T_APPN, C.ESME_RX_T_APPN]
        assert h.proxy.held_total == 2 and h.proxy.stats["receipts_refused_held_full"] == 3
        rx = Esme(h, kind=P.BindReceiver)                      # a receiver binds: the held two go to it
        got = rx.receipts(2)
        assert len(got) == 2
        for p in got:
            rx.answer(p)
        assert wait(lambda: h.proxy.held_total == 0)


def test_held_receipts_kept_across_a_clean_restart(pipe, tmp_path):
    path = tmp_path / "smpp" / "held_receipts.msgpack"
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05) as h:
        assert h.run(lambda: h.proxy.open_held(path)) == 0
        e = Esme(h, kind=P.BindTransmitter)                    # no receiver: both receipts are held (and acked)
        e.submit(2)
        assert wait(lambda: h.proxy.held_total == 2)
        assert h.call(h.proxy.close_held()) == 2
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h2:
        assert h2.run(lambda: h2.proxy.open_held(path)) == 2
        rx = Esme(h2, kind=P.BindReceiver)
        got = rx.receipts(2)
        assert len(got) == 2 and all(b"id:" in p.short_message for p in got)
        for p in got:
            rx.answer(p)
        assert wait(lambda: h2.proxy.held_total == 0 and not h2.proxy.held_records)     # taken by the ESME
        assert h2.call(h2.proxy.close_held()) == 0
    # an older version's clean stop file is read once (and goes); an unreadable one is set aside, not fatal
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xc1 not msgpack")
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h3:
        assert h3.run(lambda: h3.proxy.open_held(path)) == 0
        assert (path.parent / "held_receipts.msgpack.unreadable").exists()
        h3.call(h3.proxy.close_held())


def test_a_receipt_the_esme_refuses_for_good_is_not_offered_again(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05) as h:
        e = Esme(h)
        e.submit(1)
        p = e.receipts(1)[0]
        e.answer(p, C.ESME_RX_P_APPN)
        assert wait(lambda: len(h.sim.mo_responses) == 1)
        assert h.sim.mo_responses[0].command_status == C.ESME_RX_P_APPN      # the SMSC hears the ESME's answer
        assert e.receipts(1, timeout=2.5) == [] and h.proxy.held_total == 0
        assert h.proxy.stats["receipts_refused_by_esme"] == 1


def test_a_receipt_nacked_with_a_transient_status_is_offered_again(pipe):
    # a generic_nack is final only when it says the ESME cannot read the PDU; ESME_RTHROTTLED, ESME_RMSGQFUL or
    # ESME_RSYSERR in a generic_nack is a "not now", as in a deliver_sm_resp (found by a probe: the receipt was lost)
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05) as h:
        e = Esme(h)
        for n, st in enumerate((C.ESME_RTHROTTLED, C.ESME_RMSGQFUL, C.ESME_RSYSERR, 0), 1):
            e.submit(1, first=n)
            p = e.receipts(1)[0]
            e.s.sendall(encode(P.GenericNack(sequence_number=p.sequence_number, command_status=st)))
            again = e.receipts(1, timeout=4)
            assert again and again[0].short_message == p.short_message, hex(st)
            e.answer(again[0])
            assert wait(lambda: len(h.sim.mo_responses) == n)
        assert {r.command_status for r in h.sim.mo_responses} == {0}
        assert h.proxy.stats["receipts_refused_by_esme"] == 0 and h.proxy.held_total == 0
        e.submit(1, first=5)                                   # one the ESME cannot parse: final
        p = e.receipts(1)[0]
        e.s.sendall(encode(P.GenericNack(sequence_number=p.sequence_number, command_status=C.ESME_RINVCMDID)))
        assert wait(lambda: len(h.sim.mo_responses) == 5)
        assert h.sim.mo_responses[4].command_status == C.ESME_RX_P_APPN
        assert e.receipts(1, timeout=2.5) == [] and h.proxy.stats["receipts_refused_by_esme"] == 1


# ---------------------------------------------------------------- a receipt's id in the other base
def _submitted(e, n):
    ids = []
    for _ in range(n):
        r = e.next(lambda p: p.command_id == C.SUBMIT_SM_RESP)
        assert r is not None and r.command_status == 0
        ids.append(r.message_id)
    return ids


def _receipt_ids(e, n, timeout=3.0):
    got = e.receipts(n, timeout)
    for r in got:
        e.answer(r)
    return sorted(P.tlv(r, C.TAG_RECEIPTED_MESSAGE_ID).rstrip(b"\x00").decode() for r in got)


def test_a_receipt_before_its_resp_never_goes_to_the_account_owning_its_twin_id(pipe):
    """Decimal message_ids, receipts before the resps: esme1's receipt "16" is not esme2's "10" read as
    hex (nor "11" esme2's "17"): it waits for its own id. Before, it went to esme2 at once."""
    with ProxyHarness(pipe, accounts=("esme1:secret", "esme2:secret"), receipt_delay=0.05) as h:
        h.sim.id_format, h.sim.answer_delay = "%d", 0.3
        e2 = Esme(h, system_id="esme2")
        e2.submit(10)
        ids2 = _submitted(e2, 10)                   # 1..10
        assert sorted(_receipt_ids(e2, 10)) == sorted(ids2)
        e1 = Esme(h)
        e1.submit(6)
        ids1 = _submitted(e1, 6)                    # 11..16: twins of 17..22 and of 0x10..0x16 = 16..22
        assert _receipt_ids(e1, 6) == sorted(ids1)
        assert e2.receipts(1, timeout=0.5) == []
        assert h.proxy.stats["receipts_by_twin_id"] == 0


def test_an_smsc_writing_receipt_ids_in_the_other_base_is_learnt_from_its_first_receipt(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=0.05) as h:
        h.proxy.settings.receipt_wait = 0.5
        h.sim.receipt_ids_in_other_base = True      # resp 0000000A, receipt 10
        e = Esme(h)
        e.submit(1)
        ids = _submitted(e, 1)
        t0 = time.monotonic()
        got = _receipt_ids(e, 1)
        assert got == [str(int(ids[0], 16))] and time.monotonic() - t0 >= 0.3   # after its receipt_wait
        e.submit(3)
        ids = _submitted(e, 3)
        t0 = time.monotonic()
        assert _receipt_ids(e, 3) == sorted(str(int(m, 16)) for m in ids)
        assert time.monotonic() - t0 < 0.4                                      # learnt: at once
        h.sim.answer_delay = 0.3                    # and one that comes before its resp goes with the resp
        e.submit(2)
        ids = _submitted(e, 2)
        assert _receipt_ids(e, 2, timeout=1.0) == sorted(str(int(m, 16)) for m in ids)
        assert h.proxy.stats["receipts_by_twin_id"] == 6 and h.proxy.stats["receipts_retry_later"] == 0


# ---------------------------------------------------------------- across a restart
class ServeBeside:
    """`telfilter serve` processes, one after another, on one data dir, in front of one SMSC simulator (which
    keeps its sessions and what it received across them): `start(n)` -> (process, object with .port)."""

    def __init__(self, tmp_path, receipt_delay=None):
        from engine.app import build
        self.tmp, self.data, self.procs = tmp_path, tmp_path / "data", []
        self.sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False,
                                receipt_delay=receipt_delay).start()

    def start(self, n):
        import subprocess
        import sys

        from tests.conftest import ROOT
        from tests.test_serve import free_port, wait_for
        sim, tmp = self.sim, self.tmp
        port, ready = free_port(), tmp / f"ready{n}"
        # the sessions themselves, held: a session the simulator dropped (its process killed) is freed, and a new one
        # may then get its address, so comparing id()s took the new bind for an old one (a clean-clone CI run)
        before = list(sim.sim.sessions)
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", self.data, "-v",
                              "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{sim.port}",
                              "--esme-account", "esme1:secret", "--sip-listen", "off", "--log", tmp / "v.log",
                              "--ready-file", ready], cwd=ROOT, stderr=open(tmp / f"err{n}.log", "w"),
                             stdout=subprocess.DEVNULL)
        self.procs.append(p)
        assert wait_for(ready.exists, 60), (tmp / f"err{n}.log").read_text()
        assert wait_for(lambda: any(s.bound and not any(s is b for b in before) for s in list(sim.sim.sessions)))
        return p, type("H", (), {"port": port})()

    def receipts_for(self, ids) -> None:
        """The simulator sends a receipt for each submit it received, with these ids, on its newest bind."""
        sim = self.sim
        link = [s for s in list(sim.sim.sessions) if s.bound][-1]
        subs = [ev for _, ev in list(sim.sim.received) if ev.command_id == C.SUBMIT_SM]

        async def receipts():
            for sm, mid in zip(subs, ids):
                sim.sim._receipt(link, sm, mid)
        sim.call(receipts())

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        self.sim.stop()


def test_receipts_of_messages_sent_before_a_clean_restart_reach_their_account(tmp_path):
    """`serve` keeps its message_id -> account map across a clean stop (DATA_DIR/smpp/message_ids.msgpack):
    a receipt the SMSC sends after the deploy still reaches the account (it used to be refused ESME_RX_T_APPN
    at every attempt)."""
    import signal
    run = ServeBeside(tmp_path)
    try:
        p, h = run.start(1)
        e = Esme(h)
        e.submit(2)
        ids = _submitted(e, 2)
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        assert (run.data / "smpp" / "message_ids.msgpack").exists()
        p, h = run.start(2)
        assert not (run.data / "smpp" / "message_ids.msgpack").exists()         # read back, then removed
        e = Esme(h)
        run.receipts_for(ids)
        assert _receipt_ids(e, 2, timeout=5.0) == sorted(ids)
        sim = run.sim
        assert wait(lambda: len(sim.sim.mo_responses) == 2) and [r.command_status for r in sim.sim.mo_responses] == [0, 0]
    finally:
        run.close()


def test_a_stop_answers_the_receipts_still_waiting_for_their_resp(pipe):
    """A receipt for an id not known yet waits receipt_wait unanswered; a drain (or a stop) answers it
    ESME_RX_T_APPN before the links close, so the SMSC delivers it again, never left without an answer."""
    with ProxyHarness(pipe, accounts=("esme1:secret",), receipt_delay=None) as h:
        sm = P.SubmitSm(source_addr=GOOD, destination_addr="84912345678", registered_delivery=1)

        async def receipt():
            h.sim._receipt(next(s for s in h.sim.sessions if s.bound), sm, "DEADBEEF")
        h.call(receipt())
        assert wait(lambda: len(h.proxy.early_receipts) == 1)
        assert not h.sim.mo_responses
        h.call(h.proxy.drain(timeout=2.0))
        assert wait(lambda: [r.command_status for r in h.sim.mo_responses] == [C.ESME_RX_T_APPN])
        assert not h.proxy.early_receipts


def test_an_mo_the_esme_nacks_with_status_0_is_not_acknowledged_to_the_smsc(pipe):
    """Found at stop 34: a generic_nack with command_status 0 from the ESME to an MO was passed on to the SMSC as
    status 0, an acknowledgement: the MO was taken as delivered and never delivered again."""
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        e = Esme(h, kind=P.BindReceiver)
        assert h.run(h.sim.send_mo, "84912000888", "8088", "hello service")
        p = e.next(lambda p: p.command_id == C.DELIVER_SM)
        assert p is not None and p.short_message == b"hello service"
        e.s.sendall(encode(P.GenericNack(sequence_number=p.sequence_number, command_status=0)))
        assert wait(lambda: len(h.sim.mo_responses) == 1)
        assert h.sim.mo_responses[0].command_status == C.ESME_RX_T_APPN
