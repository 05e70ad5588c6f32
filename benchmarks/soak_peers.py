"""The peers of benchmarks/soak.py: the SMSC simulator's process (5656 MO traffic, receipts) and the ESMEs (a
steady sender, binds that come and go), each answer matched to its request, each receipt to an answered message.
Loopback only; bounded by the caller's stop event and the run's count of messages."""
from __future__ import annotations

import asyncio
import collections
import itertools
import random
import re
import time


# ------------------------------------------------------------------ the SMSC simulator process
async def _smsc(port: int, mo_rate: float, first: int, receipt_delay: float) -> None:
    from engine.smpp_proxy.simulator import SmscSimulator
    sim = SmscSimulator(receipt_delay=receipt_delay)
    sim.received = collections.deque(maxlen=1000)        # the simulator records every PDU: bounded here
    sim.mo_responses = collections.deque(maxlen=1000)
    # message_ids never repeat across restarts (the simulator counts from 1): a restarted SMSC's id equal to one
    # an earlier run's receipts used would read as a duplicate receipt. `first` grows by 10**6 a restart
    sim._ids = itertools.count(first * 16 + 1)
    await sim.start("127.0.0.1", port)
    n, kinds = first, ("DK DNC", "HUY DNC", "S")
    while True:
        await asyncio.sleep(1 / mo_rate)
        k = kinds[n % 3]
        src = f"849{(n - 30 if k == 'HUY DNC' else n) % 10**8:08d}"      # HUY: a number that sent DK before
        text = k if k != "S" else f"S 0912{n % 10**6:06d} Quang cao vay tien lai suat thap goi ngay {n}"
        sim.send_mo(src, "5656", text)
        n += 1


# ------------------------------------------------------------------ ESMEs
# message_ids answered to any ESME and ids receipted: the run's own accounting, bounded by --rate x --minutes
_IDS: dict[str, set] = {"answered": set(), "receipted": set()}


class Esme:
    """One ESME connection (engine codec): binds, sends, answers deliver_sm, matches every response."""

    def __init__(self, stats, ids, lat=None):
        from engine.smpp_proxy.codec import SmppConnection
        self.conn, self.stats, self.ids, self.lat = SmppConnection(1 << 20), stats, ids, lat
        self.inflight: dict[int, float] = {}
        self.bound: asyncio.Future = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self.transport = None

    def connection_made(self, t):
        self.transport = t

    def connection_lost(self, exc):
        if not self.bound.done():
            self.bound.set_result(-1)
        self.closed.set()

    def data_received(self, data):
        from engine.smpp_proxy.codec import NEED_DATA
        from engine.smpp_proxy.codec import constants as C
        from engine.smpp_proxy.codec import pdu as P
        self.conn.receive_data(data)
        while (ev := self.conn.next_event()) is not NEED_DATA:
            cid = ev.command_id
            if cid == C.SUBMIT_SM_RESP or cid == C.GENERIC_NACK and ev.sequence_number in self.inflight:
                t = self.inflight.pop(ev.sequence_number, None)
                if t is None:
                    self.stats["unexpected"] += 1
                    continue
                self.stats["answered"] += 1
                self.stats["status_%#x" % ev.command_status] += 1
                if cid == C.SUBMIT_SM_RESP and ev.command_status == 0:
                    self.ids["answered"].add(ev.message_id)
                if self.lat is not None:
                    self.lat.append(time.perf_counter() - t)
            elif cid == C.DELIVER_SM:
                self.stats["receipts" if ev.esm_class & 0x04 else "mo"] += 1
                if ev.esm_class & 0x04:
                    self._receipt(ev)
                self._send(P.DeliverSmResp(sequence_number=ev.sequence_number))
            elif cid == C.ENQUIRE_LINK:
                self._send(P.EnquireLinkResp(sequence_number=ev.sequence_number))
            elif cid == C.UNBIND:
                self._send(P.UnbindResp(sequence_number=ev.sequence_number))
                self.transport.close()
            elif cid == C.BIND_TRANSCEIVER_RESP and not self.bound.done():
                self.bound.set_result(ev.command_status)
            elif cid == C.UNBIND_RESP:
                self.transport.close()

    def _receipt(self, ev):
        # every receipt once (a second one for an id already acknowledged is a duplicate), and for a message
        # some ESME had its submit_sm_resp for (not one the proxy dropped or an SMSC's own)
        m = re.match(rb"id:(\S+)", ev.short_message)
        mid = m.group(1).decode() if m else "?"
        if mid in self.ids["receipted"]:
            self.stats["receipt_duplicate"] += 1
        self.ids["receipted"].add(mid)
        if mid not in self.ids["answered"]:
            self.stats["receipt_for_unknown_id"] += 1

    def eof_received(self):
        return False

    def _send(self, pdu):
        from engine.smpp_proxy.codec import encode
        if self.transport and not self.transport.is_closing():
            self.transport.write(encode(pdu))

    def bind(self, system_id, password):
        from engine.smpp_proxy.codec import pdu as P
        self._send(P.BindTransceiver(sequence_number=self.conn.next_sequence(), system_id=system_id,
                                     password=password, system_type="", interface_version=0x34, addr_ton=0,
                                     addr_npi=0, address_range=""))

    def submit(self, rec):
        from engine.smpp_proxy.codec import encode_text
        from engine.smpp_proxy.codec import pdu as P
        s = rec["sender"]
        ston, snpi = (1, 1) if s.lstrip("+").isdigit() else (5, 0)
        dc, body = encode_text(rec["text"])
        seq = self.conn.next_sequence()
        self.inflight[seq] = time.perf_counter()
        self.stats["sent"] += 1
        self._send(P.SubmitSm(sequence_number=seq, service_type="", source_addr_ton=ston, source_addr_npi=snpi,
                              source_addr=s.lstrip("+"), dest_addr_ton=1, dest_addr_npi=1,
                              destination_addr=rec["recipient"].lstrip("+"), esm_class=0, protocol_id=0,
                              priority_flag=0, schedule_delivery_time="", validity_period="", registered_delivery=1,
                              replace_if_present_flag=0, data_coding=dc, sm_default_msg_id=0,
                              short_message=body[:140]))

    def unbind(self):
        from engine.smpp_proxy.codec import pdu as P
        self._send(P.Unbind(sequence_number=self.conn.next_sequence()))


async def _connect(port, stats, lat=None) -> Esme:
    loop = asyncio.get_running_loop()
    _, e = await loop.create_connection(lambda: Esme(stats, _IDS, lat), "127.0.0.1", port)
    return e


async def _steady(port, a, recs, stats, lat, stop: asyncio.Event):
    binds: list[Esme] = []
    tick, i = 0.01, 0
    per_tick = a.rate * tick
    credit, nxt = 0.0, time.perf_counter()
    while not stop.is_set():
        for k, b in enumerate(binds):
            if b.closed.is_set():                      # the proxy closed it (not expected): count and rebind
                stats["steady_lost_binds"] += 1
                stats["unanswered_on_close"] += len(b.inflight)
                binds[k] = None
        binds = [b for b in binds if b is not None]
        while len(binds) < a.binds:
            e = await _connect(port, stats, lat)
            e.bind("steady", "pwsteady")
            st = await asyncio.wait_for(e.bound, 10)
            if st != 0:
                raise RuntimeError(f"steady bind refused: {st}")
            binds.append(e)
        credit += per_tick
        while credit >= 1:
            b = binds[i % len(binds)]
            if len(b.inflight) < a.window:
                b.submit(next(recs))
            else:
                stats["window_full"] += 1
            credit -= 1
            i += 1
        nxt += tick
        await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
    await asyncio.sleep(5)                              # the answers still owed
    for b in binds:
        stats["unanswered"] += len(b.inflight)
        b.unbind()
    await asyncio.sleep(0.5)


async def _one_churn(port, k, recs, stats):
    e = await _connect(port, stats)
    mode = ("wrong_password", "drop", "clean", "clean", "clean")[k % 5]
    e.bind("churn", "wrongpw" if mode == "wrong_password" else "pwchurn")
    try:
        st = await asyncio.wait_for(e.bound, 40)       # a wrong password waits out the proxy's backoff
    except asyncio.TimeoutError:
        stats["churn_bind_no_answer"] += 1
        e.transport.close()
        return
    stats[f"churn_{mode}_bind_status_{st}"] += 1
    if st != 0:
        e.transport.close()
        return
    for _ in range(5):
        e.submit(next(recs))
    if mode == "drop":
        await asyncio.sleep(random.uniform(0, 0.005))
        stats["churn_dropped_with_open"] += len(e.inflight)
        e.transport.abort()                              # the TCP connection dropped, window open
        return
    end = time.time() + 15
    while e.inflight and time.time() < end:
        await asyncio.sleep(0.05)
    stats["unanswered"] += len(e.inflight)
    e.unbind()
    try:
        await asyncio.wait_for(e.closed.wait(), 5)
    except asyncio.TimeoutError:
        stats["churn_unbind_no_answer"] += 1
        e.transport.close()


async def _churn(port, a, recs, stats, stop):
    tasks, k = set(), 0
    while not stop.is_set():
        t = asyncio.ensure_future(_one_churn(port, k, recs, stats))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        k += 1
        try:
            await asyncio.wait_for(stop.wait(), a.churn_every)
        except asyncio.TimeoutError:
            pass
    if tasks:
        await asyncio.wait(tasks, timeout=60)
