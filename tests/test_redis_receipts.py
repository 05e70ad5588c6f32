"""Delivery receipts across processes sharing one Redis (engine/state/receipts.py), against a real
redis-server: two SmppProxy instances with links to ONE SMSC simulator that sends each receipt on
another bind than the submit's (as an SMSC spreading receipts over every bind of a system_id does).

A: the ESME's transceiver on proxy 0, every receipt reaching proxy 1's link: its message_id is known
   there (the stream tf:mid) and the receipt is handed over to proxy 0 (the list tf:{a:esme1}:rq);
   the ESME has it within ~2 s and the SMSC got 0 for each (never ESME_RX_T_APPN).
B: the ESME's receiver on proxy 1, transmitter on proxy 0: receipts reaching proxy 1 go straight to
   the receiver; receipts reaching proxy 0 (no receiver there) are handed over.
C: Redis stopped: receipts whose id is not known are refused ESME_RX_T_APPN (the SMSC keeps them),
   one held for an account bound elsewhere stays held here and reaches the ESME when it binds here.
The bound: the list takes max_held_receipts, the rest stays held where it was; nothing is lost, and a
full list is not offered the same receipts every second (the ids' tables and a stop of the hand-over:
test_receipt_ids_shared.py, test_receipt_handover_close.py). A pull whose answer is lost
(the script ran, the answer never came) delivers its receipts at the next pull, and a claim left by a
process that stopped goes back to the list after STALE s: nothing popped is lost.
And `serve --workers 2` end to end."""
import asyncio
import os
import time

import pytest

from engine.app import build
from engine.loopthread import LoopThread
from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.msgids import MessageIds
from engine.smpp_proxy.server import SmppProxy
from engine.verdictlog import VerdictLog
from engine.smpp_proxy.simulator import SmscSimulator
from engine.state import install
from engine.state.pool import PoolLimits
from engine.state import receipt_handover
from engine.state.pool import BEAT
from engine.state.receiptq import PULL, claims_key, queue_key
from engine.state.receipts import SharedReceipts
from engine.state.redis_store import RedisStore

from .redis_helpers import RedisServer, redis_server  # noqa: F401
from .test_smpp_receipts import Esme
from .test_smpp_proxy import wait


@pytest.fixture
def url(redis_server):  # noqa: F811
    redis_server.flush()
    return redis_server.url


class Pool(LoopThread):
    """One SMSC simulator and two proxies (each with its own link to it) sharing one Redis."""

    def __init__(self, tmp, url, receipt_wait=5.0, max_held=200000, bound=None):
        super().__init__("receipts-pool")
        self.tmp, self.url = tmp, url
        self.receipt_wait, self.max_held, self.bound = receipt_wait, max_held, bound
        self.proxies, self.shared, self.tasks = [], [], []

    def start(self):
        self.start_loop()
        self.sim = SmscSimulator(receipt_delay=0.05)
        self.sim.receipts_elsewhere = True
        self.call(self.sim.start("127.0.0.1", 0))
        for i in range(2):
            self.call(self._proxy(i))
        assert wait(lambda: len([s for s in self.sim.sessions if s.bound]) == 2, 10)
        return self

    async def _proxy(self, i):
        pipe = build(data_dir=self.tmp / f"p{i}", with_model=False)
        s = SmppSettings(receipt_wait=self.receipt_wait, max_held_receipts=self.max_held)
        s.smsc = [f"127.0.0.1:{self.sim.port}"]
        s.accounts["esme1"] = account_from_arg("esme1:secret")
        proxy = SmppProxy(pipe, s, VerdictLog(open(os.devnull, "w")))
        if self.bound:
            proxy.msgid_account = MessageIds(self.bound)
        store = RedisStore(self.url)
        install(pipe, store)
        await store.start()
        pool = PoolLimits(store, proxy)             # as serve wires them
        shared = SharedReceipts(store, proxy)
        await shared.catch_up()
        await proxy.start("127.0.0.1:0")
        assert await proxy.wait_upstream(10)
        self.tasks += [asyncio.ensure_future(t) for t in (store.run(), pool.run(), shared.run())]
        self.proxies.append(proxy)
        self.shared.append((store, pool, shared))

    def esme(self, i, kind=P.BindTransceiver):
        p = self.proxies[i]
        return Esme(type("H", (), {"port": p.port})(), kind)

    def responses(self):
        """The SMSC's deliver_sm_resp statuses so far."""
        return [r.command_status for r in list(self.sim.mo_responses)]

    def stop(self):
        async def down():
            for t in self.tasks:
                t.cancel()
            for p, (store, pool, shared) in zip(self.proxies, self.shared):
                await p.stop()
                await shared.close()
                await pool.close()
                await store.close()
            await self.sim.stop()
        try:
            self.call(down())
        finally:
            self.stop_loop()


def _ids(receipts):
    return sorted(P.tlv(r, C.TAG_RECEIPTED_MESSAGE_ID).rstrip(b"\x00").decode() for r in receipts)


def _submitted_ids(e, n):
    """The message_ids of the next n submit_sm_resps the ESME reads."""
    out = []
    for _ in range(n):
        r = e.next(lambda p: p.command_id == C.SUBMIT_SM_RESP)
        assert r is not None and r.command_status == 0
        out.append(r.message_id)
    return sorted(out)


def test_a_receipt_on_another_process_link_reaches_the_transceiver(tmp_path, url):
    with Pool(tmp_path, url) as pool:
        e = pool.esme(0)
        e.submit(4)
        ids = _submitted_ids(e, 4)
        t0 = time.monotonic()
        got = e.receipts(4, timeout=4.0)
        for r in got:
            e.answer(r)
        assert _ids(got) == ids, (pool.proxies[1].stats, pool.responses())
        # routed to the bind (0.90-0.94 s at load 6: the pool's 1 s BEAT), not held for receipt_wait (5 s)
        assert time.monotonic() - t0 < 3.5
        assert wait(lambda: len(pool.responses()) == 4) and pool.responses() == [0] * 4   # no ESME_RX_T_APPN
        p0, p1 = pool.proxies
        assert p1.stats["receipts_handed_over"] == 4 and p0.stats["receipts_taken_over"] == 4
        assert p1.stats["msgids_learned"] == 4 and not p1.stats["receipts_retry_later"]
        assert wait(lambda: p0.held_total == p1.held_total == 0)


def test_receiver_and_transmitter_on_different_processes(tmp_path, url):
    with Pool(tmp_path, url) as pool:
        rx = pool.esme(1, P.BindReceiver)
        tx = pool.esme(0, P.BindTransmitter)
        tx.submit(3)                        # receipts reach proxy 1, where the receiver is
        ids = _submitted_ids(tx, 3)
        got = rx.receipts(3, timeout=3.0)
        for r in got:
            rx.answer(r)
        assert _ids(got) == ids
        pool.sim.receipts_elsewhere = False  # now on the submit's own link: proxy 0, no receiver there
        tx.submit(3)
        ids = _submitted_ids(tx, 3)
        got = rx.receipts(3, timeout=3.0)
        for r in got:
            rx.answer(r)
        assert _ids(got) == ids
        assert wait(lambda: len(pool.responses()) == 6) and pool.responses() == [0] * 6
        assert pool.proxies[0].stats["receipts_handed_over"] == 3
        assert tx.receipts(1, timeout=0.2) == []


def test_redis_stopped_keeps_todays_behaviour(tmp_path):
    srv = RedisServer(tmp_path / "redis")
    try:
        with Pool(tmp_path, srv.url + "?timeout=0.2", receipt_wait=0.5) as pool:
            srv.stop()
            e = pool.esme(0)
            e.submit(2)                     # judged fail-open; the receipts reach proxy 1, id unknown there
            _submitted_ids(e, 2)
            assert wait(lambda: len(pool.responses()) == 2, 5)
            assert pool.responses() == [C.ESME_RX_T_APPN] * 2      # the SMSC keeps them and retries
            assert e.receipts(1, timeout=0.2) == []
            # receipts whose id proxy 0 knows, for an account whose receiver is elsewhere: held here
            e.s.close()
            tx = pool.esme(0, P.BindTransmitter)
            pool.sim.receipts_elsewhere = False
            tx.submit(2)
            ids = _submitted_ids(tx, 2)
            assert wait(lambda: len(pool.responses()) == 4, 5) and pool.responses()[2:] == [0, 0]
            p0 = pool.proxies[0]
            assert wait(lambda: p0.stats["receipts_shared_errors"] > 0 and p0.held_total == 2, 5)
            rx = pool.esme(0, P.BindReceiver)       # today's path: it binds here and gets them
            got = rx.receipts(2, timeout=3.0)
            for r in got:
                rx.answer(r)
            assert _ids(got) == ids
            assert pool.sim.sessions and all(p.links[0].bound for p in pool.proxies)   # nothing crashed
    finally:
        srv.stop()


def test_the_list_is_bounded_and_the_rest_stays_held(tmp_path, url, redis_server, monkeypatch):  # noqa: F811
    monkeypatch.setattr(receipt_handover, "FULL_PAUSE", BEAT)      # a list of 3 drains at once: no long pause
    with Pool(tmp_path, url, max_held=3, bound=4) as pool:
        pool.sim.receipts_elsewhere = False         # receipts on proxy 0, where only a transmitter is bound
        tx = pool.esme(0, P.BindTransmitter)
        for i in range(5):
            tx.seq += 1
            tx.s.sendall(encode(P.SubmitSm(sequence_number=tx.seq, source_addr="84901234567", registered_delivery=1,
                                           destination_addr="84912345678", short_message=b"at %d, see you" % i)))
            _submitted_ids(tx, 1)
            assert wait(lambda: len(pool.responses()) == i + 1, 5)
            # handed over while the list has room; then held here (the list refused one: not offered again)
            assert wait(lambda: pool.proxies[0].stats["receipts_handed_over"] == min(i + 1, 3)
                        and pool.proxies[0].held_total == max(0, i - 2), 5)
        assert pool.responses() == [0] * 5
        assert wait(lambda: pool.proxies[0].stats["receipts_handover_full"] >= 1, 5)
        c = redis_server.client()
        assert c.llen(queue_key("esme1")) == 3
        assert pool.proxies[0].held_total == 2
        assert len(pool.proxies[1].msgid_account) == 4                          # MessageIds' bound holds
        rx = pool.esme(1, P.BindReceiver)            # the 3 from the list, then the 2 handed over as it drains
        got = []
        end = time.monotonic() + 8
        while len(got) < 5 and time.monotonic() < end:
            for r in rx.receipts(1, timeout=0.5):
                rx.answer(r)
                got.append(r)
        assert len(got) == 5 and len(set(_ids(got))) == 5
        assert wait(lambda: c.llen(queue_key("esme1")) == 0 and pool.proxies[0].held_total == 0)
        c.close()


def test_a_full_list_is_not_offered_the_same_receipts_every_beat(tmp_path, url, redis_server, monkeypatch):  # noqa: F811
    """Regression: an account bound nowhere whose list is at max_held_receipts had its held receipts
    re-sent every BEAT only to be refused; now not again for FULL_PAUSE s after a refusal."""
    monkeypatch.setattr(receipt_handover, "FULL_PAUSE", 3 * BEAT)
    c = redis_server.client()
    with Pool(tmp_path, url, max_held=3) as pool:
        pool.sim.receipts_elsewhere = False         # receipts on proxy 0, where only a transmitter is bound
        c.lpush(queue_key("esme1"), *[b"x"] * 3)    # the list is full already
        p0 = pool.proxies[0]
        tx = pool.esme(0, P.BindTransmitter)
        tx.submit(1)
        _submitted_ids(tx, 1)
        assert wait(lambda: p0.stats["receipts_handover_full"] == 1, 5)         # offered once, refused
        time.sleep(1.5 * BEAT)                      # a beat or two: before the fix, offered at each
        assert p0.stats["receipts_handover_full"] == 1 and p0.stats["receipts_handed_over"] == 0
        assert p0.held_total == 1 and c.llen(queue_key("esme1")) == 3
        c.rpop(queue_key("esme1"))                  # room again: offered after the pause, and taken
        assert wait(lambda: p0.stats["receipts_handed_over"] == 1 and p0.held_total == 0, 3 * BEAT + 3)
        assert c.llen(queue_key("esme1")) == 3
        c.delete(queue_key("esme1"))
    c.close()


class _LosesAPullAnswer:
    """The server's client, except that the first pipeline answer holding receipts is lost after the
    server ran it (what a timeout on a loaded server does)."""

    def __init__(self, real):
        self.real, self.lost = real, 0

    def pipeline(self, **kw):
        pl = self.real.pipeline(**kw)
        run = pl.execute

        async def execute(*a, **k):
            got = await run(*a, **k)
            if not self.lost and any(isinstance(x, list) and len(x) == 2 and x[1] for x in got):
                self.lost += 1
                raise asyncio.TimeoutError("the answer never came")
            return got
        pl.execute = execute
        return pl

    def __getattr__(self, name):
        return getattr(self.real, name)


def _handed_over(pool, n):
    """n receipts submitted on proxy 0 (a transmitter only) and handed over to the account's list."""
    pool.sim.receipts_elsewhere = False
    tx = pool.esme(0, P.BindTransmitter)
    tx.submit(n)
    ids = _submitted_ids(tx, n)
    assert wait(lambda: pool.proxies[0].stats["receipts_handed_over"] == n, 5)
    return ids


def _receive(rx, n, seconds=6.0):
    got, end = [], time.monotonic() + seconds
    while len(got) < n and time.monotonic() < end:
        for r in rx.receipts(1, timeout=0.5):
            rx.answer(r)
            got.append(r)
    return got


def test_a_pull_whose_answer_is_lost_delivers_its_receipts_at_the_next_pull(tmp_path, url, redis_server):  # noqa: F811
    with Pool(tmp_path, url) as pool:
        ids = _handed_over(pool, 3)
        shared = pool.shared[1][2]
        shared.redis = lossy = _LosesAPullAnswer(shared.redis)
        rx = pool.esme(1, P.BindReceiver)
        got = _receive(rx, 3)
        assert lossy.lost == 1 and _ids(got) == ids                  # all three, once each
        assert rx.receipts(1, timeout=1.5) == []                     # and no second copy later
        st = pool.proxies[1].stats
        assert st["receipts_pull_errors"] == 1 and st["receipts_reclaimed"] == 3 and st["receipts_taken_over"] == 3
        c = redis_server.client()
        assert wait(lambda: c.hlen(claims_key("esme1")) == 0 and c.llen(queue_key("esme1")) == 0)
        c.close()


def test_a_claim_left_by_a_process_that_stopped_goes_back_to_the_list(tmp_path, url, redis_server, monkeypatch):  # noqa: F811
    monkeypatch.setattr(receipt_handover, "STALE", 1.0)
    with Pool(tmp_path, url) as pool:
        ids = _handed_over(pool, 2)
        c = redis_server.client()
        # a process claims both, then dies before delivering them
        again, raws = c.eval(PULL, 2, queue_key("esme1"), claims_key("esme1"), "dead:1", "", "1", 10, 1000)
        assert again == 0 and len(raws) == 2 and c.llen(queue_key("esme1")) == 0
        time.sleep(1.2)
        rx = pool.esme(1, P.BindReceiver)
        got = _receive(rx, 2)
        assert _ids(got) == ids and rx.receipts(1, timeout=1.0) == []
        assert wait(lambda: c.hlen(claims_key("esme1")) == 0)
        c.close()


def test_two_workers_route_receipts_whichever_worker_gets_them(tmp_path, url):
    """`serve --workers 2`: each worker has its own link; every receipt is sent on the other one."""
    import smpplib.client

    from .durable_helpers import _hours_config
    from .test_redis_serve import Node
    node = Node(tmp_path, "pool", url, _hours_config(tmp_path), workers=2)
    c = None
    try:
        node.start()
        node.sim.sim.receipts_elsewhere = True
        sent, got = [], []
        c = smpplib.client.Client("127.0.0.1", node.port, timeout=5)
        c.set_message_sent_handler(lambda pdu: sent.append(pdu.message_id))
        c.set_message_received_handler(lambda pdu: got.append(pdu.receipted_message_id))
        c.connect()
        c.bind_transceiver(system_id="t", password="pw")
        for i in range(4):
            c.send_message(source_addr_ton=1, source_addr="84912000001", dest_addr_ton=1,
                           destination_addr="84912000002", registered_delivery=1,
                           short_message=f"hello {os.urandom(3).hex()}".encode())
        c._socket.settimeout(0.25)
        end = time.monotonic() + 3
        while (len(got) < 4 or len(sent) < 4) and time.monotonic() < end:
            c.read_once()           # a submit_sm_resp or a deliver_sm (answered by smpplib)
        assert len(sent) == 4 and sorted(got) == sorted(sent), (sent, got)
        assert wait(lambda: len(node.sim.sim.mo_responses) == 4)
        assert [r.command_status for r in node.sim.sim.mo_responses] == [0] * 4
    finally:
        if c is not None:
            try:
                c.unbind()
                c.disconnect()
            except Exception:
                pass
        node.stop()
