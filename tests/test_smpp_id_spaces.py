"""Two SMSCs whose message_ids collide: with an `id_space` per link, each receipt goes to the account
that sent the message on the SMSC it came from; query_sm / cancel_sm go to the SMSC that issued the
id, and only the account that sent a message may query or cancel it."""
import asyncio
import socket

from engine.loopthread import LoopThread
from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.server import SmppProxy
from engine.verdictlog import VerdictLog
from engine.smpp_proxy.simulator import SmscSimulator
from tests.test_smpp_proxy import pipe, read_raw  # noqa: F401  (pipe: fixture)
from tests.test_smpp_receipts import GOOD, Esme


class TwoSmscs(LoopThread):
    """A proxy linked to one SMSC simulator per id space in `spaces`; `vlog`: where its verdict lines go;
    `settings`: SmppSettings fields."""

    def __init__(self, pipeline, spaces=("a", "b"), vlog=None, receipt_delay=0.2, **settings):
        super().__init__("two-smscs")
        self.pipeline, self.spaces, self.settings = pipeline, spaces, settings
        self.vlog, self.receipt_delay = vlog, receipt_delay

    def __enter__(self):
        self.start_loop()
        self.sims = []
        s = SmppSettings(**self.settings)
        for space in self.spaces:
            sim = SmscSimulator(receipt_delay=self.receipt_delay)
            self.call(sim.start("127.0.0.1", 0))
            self.sims.append(sim)
            s.smsc.append(f"127.0.0.1:{sim.port}")
            s.smsc_links[f"127.0.0.1:{sim.port}"] = {"id_space": space}
        for a in ("esme1:secret", "esme2:pw2"):
            acc = account_from_arg(a)
            s.accounts[acc.system_id] = acc
        self.proxy = SmppProxy(self.pipeline, s, self.vlog or VerdictLog(open("/dev/null", "w")))
        self.call(self.proxy.start("127.0.0.1:0"))

        async def bound():
            for _ in range(250):
                if sum(1 for link in self.proxy.links if link.bound) == len(self.sims):
                    return True
                await asyncio.sleep(0.02)
        assert self.call(bound())
        self.port = self.proxy.port
        return self

    def __exit__(self, *a):
        try:
            self.call(self.proxy.stop())
            for sim in self.sims:
                self.call(sim.stop())
        finally:
            self.stop_loop()


def _esme(h, sid, pw):
    e = Esme.__new__(Esme)
    e.s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    e.buf, e.seq, e.pdus = b"", 1, []
    e.s.sendall(encode(P.BindTransceiver(sequence_number=1, system_id=sid, password=pw, interface_version=0x34)))
    assert e.next(lambda p: P.is_response(p.command_id)).command_status == 0
    return e


def _submit(e, text, dest):
    e.seq += 1
    e.s.sendall(encode(P.SubmitSm(sequence_number=e.seq, source_addr=GOOD, destination_addr=dest,
                                  registered_delivery=1, short_message=text)))
    return e.next(lambda p: p.command_id == C.SUBMIT_SM_RESP and p.sequence_number == e.seq)


def test_colliding_message_ids_of_two_smscs_route_receipts_right(pipe):
    with TwoSmscs(pipe) as h:
        e1, e2 = _esme(h, "esme1", "secret"), _esme(h, "esme2", "pw2")
        ids1, ids2 = [], []
        for i in range(2):                                # round robin: each account on each SMSC
            ids1.append(_submit(e1, b"esme1 message %d" % i, f"8491111{i:04d}").message_id)
            ids2.append(_submit(e2, b"esme2 message %d" % i, f"8492222{i:04d}").message_id)
        assert set(ids1) & set(ids2)                      # the two SMSCs handed out the same ids
        for e, who in ((e1, "esme1"), (e2, "esme2")):
            got = e.receipts(2, timeout=5)
            assert len(got) == 2, who
            for p in got:
                e.answer(p)
            assert sorted(p.source_addr for p in got) == sorted(
                f"849{'1111' if who == 'esme1' else '2222'}{i:04d}" for i in range(2))


def test_cancel_goes_to_the_issuing_smsc_and_only_for_its_sender(pipe):
    with TwoSmscs(pipe) as h:
        e1, e2 = _esme(h, "esme1", "secret"), _esme(h, "esme2", "pw2")
        mid = _submit(e1, b"to be cancelled", "84911110001").message_id
        owner = next(i for i, sim in enumerate(h.sims) if sim.submits())
        e2.seq += 1
        e2.s.sendall(encode(P.CancelSm(sequence_number=e2.seq, message_id=mid, source_addr=GOOD)))
        r = e2.next(lambda p: p.command_id == C.CANCEL_SM_RESP)
        assert r.command_status == C.ESME_RINVMSGID         # not esme2's message
        for _ in range(4):                                   # round robin would reach the other SMSC
            e1.seq += 1
            e1.s.sendall(encode(P.CancelSm(sequence_number=e1.seq, message_id=mid, source_addr=GOOD)))
            assert e1.next(lambda p: p.command_id == C.CANCEL_SM_RESP) is not None
        other = 1 - owner
        assert not any(p.command_id == C.CANCEL_SM for _, p in h.sims[other].received), "cancel sent to the wrong SMSC"
        assert sum(p.command_id == C.CANCEL_SM for _, p in h.sims[owner].received) == 4
