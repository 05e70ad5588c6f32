"""The SMSC simulator keeps the delivery receipts it still owes a system_id when its session ends (an unbind, in
either direction, or a close) and sends them on that system_id's next receiver or transceiver bind, as an SMSC
does: it answered an unbind and closed the session at once, and every receipt still due was lost (written to a
closed transport). A receipt sent but not answered with deliver_sm_resp before the session ended is kept too.
And, with the proxy in between: receipts due when the SMSC unbinds its link reach the ESME once the proxy's link
is bound again."""
import asyncio

from engine.smpp_proxy.codec import NEED_DATA, SmppConnection
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.simulator import MAX_KEPT_RECEIPTS, SmscSimulator
from tests.test_smpp_inline_safety_verdict import GOOD
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401  (pipe: fixture)

BIND = {"transceiver": P.BindTransceiver, "receiver": P.BindReceiver, "transmitter": P.BindTransmitter}


class _Esme:
    """A raw asyncio SMPP client of the simulator."""

    async def open(self, port, kind="transceiver", system_id="acme"):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", port)
        self.conn = SmppConnection(1 << 20)
        self.w.write(encode(BIND[kind](sequence_number=1, system_id=system_id, password="x", interface_version=0x34)))
        assert (await self.read()).command_status == 0
        return self

    async def read(self, timeout=5):
        while True:
            ev = self.conn.next_event()
            if ev is not NEED_DATA:
                return ev
            data = await asyncio.wait_for(self.r.read(65536), timeout)
            if not data:
                raise ConnectionError("closed")
            self.conn.receive_data(data)

    def send(self, *pdus):
        self.w.write(b"".join(encode(p) for p in pdus))

    async def close(self):
        self.w.close()
        await self.w.wait_closed()


def _submit(seq, to="84912345678"):
    return P.SubmitSm(sequence_number=seq, source_addr="SHOP", destination_addr=to, short_message=b"hi",
                      registered_delivery=1)


async def _closed(sim):
    """Until the simulator has seen every session end (connection_lost: what it still owes there is kept)."""
    for _ in range(500):
        if not sim.sessions:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a session of the simulator never ended")


def _run(coro):
    async def main():
        sim = await SmscSimulator(receipt_delay=0).start()
        try:
            return await coro(sim)
        finally:
            await sim.stop()
    return asyncio.run(main())


def test_receipts_due_at_an_unbind_come_on_the_next_bind():
    async def go(sim):
        a = await _Esme().open(sim.port)
        a.send(_submit(2), _submit(3, "84912345679"), P.Unbind(sequence_number=4))   # (receipts due after the unbind)
        got = [await a.read() for _ in range(3)]
        assert [p.command_id for p in got] == [C.SUBMIT_SM_RESP, C.SUBMIT_SM_RESP, C.UNBIND_RESP]
        await a.close()
        await _closed(sim)
        assert sim.kept_receipts() == {"acme": 2}
        b = await _Esme().open(sim.port, "receiver")
        receipts = [await b.read(), await b.read()]
        assert all(p.command_id == C.DELIVER_SM and p.esm_class == C.ESM_TYPE_DELIVERY_RECEIPT for p in receipts)
        assert sorted(p.short_message.split()[0] for p in receipts) == [b"id:" + r.message_id.encode()
                                                                       for r in got[:2]]
        b.send(*(P.DeliverSmResp(sequence_number=p.sequence_number) for p in receipts))
        await b.close()
        await _closed(sim)
        assert sim.kept_receipts() == {}                    # answered: not kept again
    _run(go)


def test_kept_receipts_wait_for_their_own_system_id_and_a_bind_that_takes_them():
    async def go(sim):
        a = await _Esme().open(sim.port, system_id="acme")
        a.send(_submit(2), P.Unbind(sequence_number=3))
        assert [(await a.read()).command_id for _ in range(2)] == [C.SUBMIT_SM_RESP, C.UNBIND_RESP]
        await a.close()
        other = await _Esme().open(sim.port, "transceiver", system_id="bank")
        tx = await _Esme().open(sim.port, "transmitter", system_id="acme")
        await asyncio.sleep(0.05)
        assert sim.kept_receipts() == {"acme": 1}           # neither got it
        rx = await _Esme().open(sim.port, "transceiver", system_id="acme")
        assert (await rx.read()).esm_class == C.ESM_TYPE_DELIVERY_RECEIPT
        for e in (other, tx, rx):
            await e.close()
    _run(go)


def test_a_receipt_left_unanswered_when_the_session_closes_is_sent_again():
    async def go(sim):
        a = await _Esme().open(sim.port)
        a.send(_submit(2))
        assert (await a.read()).command_id == C.SUBMIT_SM_RESP
        first = await a.read()
        assert first.esm_class == C.ESM_TYPE_DELIVERY_RECEIPT
        await a.close()                                     # no deliver_sm_resp
        b = await _Esme().open(sim.port)
        again = await b.read()
        assert again.short_message == first.short_message
        b.send(P.DeliverSmResp(sequence_number=again.sequence_number))
        await b.close()
        await _closed(sim)
        assert sim.kept_receipts() == {}                    # answered: not kept
    _run(go)


def test_the_receipts_kept_are_bounded():
    async def go(sim):
        a = await _Esme().open(sim.port)
        n = MAX_KEPT_RECEIPTS + 5
        a.send(*(_submit(i) for i in range(2, n + 2)), P.Unbind(sequence_number=n + 2))
        for _ in range(n + 1):
            await a.read()
        await a.close()
        await _closed(sim)
        assert sim.kept_receipts() == {"acme": MAX_KEPT_RECEIPTS} and sim.receipts_dropped == 5
    _run(go)


class _UnbindsAfterAnswering(SmscSimulator):
    """An SMSC that unbinds the proxy's link right after answering its first submit, its receipt still due."""

    def on_pdu(self, s, ev):
        super().on_pdu(s, ev)
        if ev.command_id == C.SUBMIT_SM and not self.unbind_resps and not getattr(self, "_unbound", False):
            self._unbound = True
            self.unbind_sessions()


def test_the_proxy_relays_receipts_kept_over_an_smsc_unbind(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",), simulator=_UnbindsAfterAnswering) as h:
        s, _ = raw_session(h)
        old = h.proxy.links[0]
        s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr=GOOD, destination_addr="84912345678",
                                    short_message=b"see you at 2", registered_delivery=1)))
        resp = read_raw(s)
        assert resp.command_id == C.SUBMIT_SM_RESP and resp.command_status == 0
        assert wait(lambda: h.sim.unbind_resps == 1)
        assert wait(lambda: h.proxy.links and h.proxy.links[0] is not old and h.proxy.links[0].bound)
        r = read_raw(s)
        assert r.command_id == C.DELIVER_SM and r.esm_class == C.ESM_TYPE_DELIVERY_RECEIPT
        assert r.short_message.startswith(b"id:" + resp.message_id.encode() + b" ")
        s.sendall(encode(P.DeliverSmResp(sequence_number=r.sequence_number)))
        assert wait(lambda: h.sim.kept_receipts() == {})


async def _nothing_more(esme, seconds=0.3):
    """True when the session receives no PDU for `seconds`."""
    try:
        await esme.read(seconds)
    except (asyncio.TimeoutError, TimeoutError):
        return True
    return False


def test_a_receipt_owed_to_a_transmitter_bind_waits_for_a_receiver_bind_of_its_system_id():
    # SMPP 3.4 §2.3: deliver_sm goes to a receiver or transceiver session, never to a bind_transmitter one;
    # the simulator sent it on the transmitter when no receiver was bound (an ESME that takes it for a protocol
    # error unbinds). Kept instead, as over an unbind, for the next receiver/transceiver bind of that system_id.
    async def go(sim):
        tx = await _Esme().open(sim.port, "transmitter", system_id="acme")
        tx.send(_submit(2))
        first = await tx.read()
        assert first.command_id == C.SUBMIT_SM_RESP
        assert await _nothing_more(tx) and sim.kept_receipts() == {"acme": 1}
        other = await _Esme().open(sim.port, "receiver", system_id="bank")     # not acme's: it gets none of them
        tx.send(_submit(3))
        second = await tx.read()
        assert await _nothing_more(tx) and await _nothing_more(other, 0.05)
        assert sim.kept_receipts() == {"acme": 2}
        rx = await _Esme().open(sim.port, "receiver", system_id="acme")
        got = [await rx.read(), await rx.read()]
        assert all(r.command_id == C.DELIVER_SM and r.esm_class == C.ESM_TYPE_DELIVERY_RECEIPT for r in got)
        assert [r.short_message.split()[0] for r in got] == [b"id:" + x.message_id.encode() for x in (first, second)]
        rx.send(*(P.DeliverSmResp(sequence_number=r.sequence_number) for r in got))
        tx.send(_submit(4))                                 # a receiver of its own now: sent there, at once
        resp = await tx.read()
        r = await rx.read()
        assert r.short_message.startswith(b"id:" + resp.message_id.encode() + b" ") and await _nothing_more(tx)
        assert sim.kept_receipts() == {}
        for e in (other, tx, rx):
            await e.close()
    _run(go)


def test_answer_held_sends_the_receipts_its_answers_owe():
    # the submits a stall held were answered with no receipt ever: a test of receipts after an SMSC's late answers
    # waited for nothing. Scheduled as an ordinary answer schedules them, from the loop's thread or another (the
    # tests' thread, the harness's loop running elsewhere).
    async def go(sim):
        a = await _Esme().open(sim.port)
        for seq, answer in ((2, sim.answer_held), (4, lambda: asyncio.to_thread(sim.answer_held))):
            sim.stall = True
            a.send(_submit(seq), _submit(seq + 1, "84912345679"))
            for _ in range(500):
                if len(sim.held) == 2:
                    break
                await asyncio.sleep(0.01)
            sim.stall = False
            if asyncio.iscoroutine(r := answer()):
                await r
            got = [await a.read() for _ in range(4)]
            ids = sorted(p.message_id.encode() for p in got if p.command_id == C.SUBMIT_SM_RESP)
            receipts = [p for p in got if p.command_id == C.DELIVER_SM]
            assert len(ids) == 2 and all(p.esm_class == C.ESM_TYPE_DELIVERY_RECEIPT for p in receipts)
            assert sorted(p.short_message.split()[0] for p in receipts) == [b"id:" + i for i in ids]
            a.send(*(P.DeliverSmResp(sequence_number=p.sequence_number) for p in receipts))
        await a.close()
    _run(go)


def test_smpplib_as_the_esme_gets_no_deliver_sm_on_its_transmitter_and_the_receipt_on_its_receiver():
    # the same with a client nobody here wrote: smpplib's transmitter bind, then its receiver bind
    import select
    import time

    import smpplib.client

    from engine.loopthread import LoopThread
    lt = LoopThread()
    lt.start_loop()
    sim = lt.call(SmscSimulator(receipt_delay=0).start())
    clients = []
    try:
        tx = smpplib.client.Client("127.0.0.1", sim.port, timeout=5)
        clients.append(tx)
        tx.connect()
        tx.bind_transmitter(system_id="acme", password="x")
        tx.send_message(source_addr="SHOP", destination_addr="84912345678", short_message=b"hi", registered_delivery=1)
        resp = tx.read_pdu()
        assert resp.command == "submit_sm_resp" and resp.status == 0
        end = time.monotonic() + 5
        while lt.run(sim.kept_receipts) != {"acme": 1} and time.monotonic() < end:
            time.sleep(0.02)
        assert lt.run(sim.kept_receipts) == {"acme": 1}
        assert select.select([tx._socket], [], [], 0.3)[0] == []            # nothing sent to the transmitter
        rx = smpplib.client.Client("127.0.0.1", sim.port, timeout=5)
        clients.append(rx)
        rx.connect()
        rx.bind_receiver(system_id="acme", password="x")
        r = rx.read_pdu()
        assert r.command == "deliver_sm" and r.receipted_message_id == resp.message_id
    finally:
        for c in clients:
            c.disconnect()
        lt.call(sim.stop())
        lt.stop_loop()
