"""`serve --workers 3` lowered to `--workers 2`, end to end with a real pool, a real redis-server and the SMSC simulator:
the receipts worker 2 acknowledged to the SMSC and held (its held_receipts.w2.journal) reach their account after the
whole pool was killed -9 and started again with 2 workers (worker 0 takes worker 2's files over: serve_files.py
adopt_orphans), each exactly once, and worker 2's files are gone. tests/test_workers_lowered.py renames one serve's
files to a worker's names; this is the pool itself.

Receipts held in a pool go to the account's list in Redis when their worker has no receiver bind of the account
(state/receipts.py "Receipts held for an account bound elsewhere"), so a held receipt is in a worker's journal only
once that list is at max_held_receipts: the test fills it first (K receipts through one connection, none bound to
receive), then submits through new transmitter connections (each one the kernel gives to a worker: SO_REUSEPORT)
until worker 2's journal holds live records."""
import collections
import os

from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.accounts import hash_password
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.heldjournal import HeldJournal
from engine.state.receiptq import queue_key

from .redis_helpers import RedisServer, ports_in
from .durable_helpers import _hours_config
from .test_redis_serve import Node
from .test_serve import wait_for
from .test_smpp_receipts import GOOD, Esme, _submitted

PORTS = (28500, 28999)      # this file's loopback ports (redis-server, the pool's SMPP port); the SMSC's is the OS's
K = 12                      # max_held_receipts: the account's list in Redis, and what one worker holds, at most


def _journal(smpp, w):
    return smpp / (f"held_receipts.w{w}.journal" if w else "held_receipts.journal")


def _live(smpp, w) -> list:
    """The receipts a worker's journal holds (what it acknowledged to the SMSC and has not passed on)."""
    return HeldJournal(_journal(smpp, w)).replay()


def _mid(raw_or_pdu) -> str:
    body = raw_or_pdu.short_message if hasattr(raw_or_pdu, "short_message") else raw_or_pdu
    i = body.index(b"id:") + 3
    return body[i:body.index(b" ", i)].decode()


def _acked(node) -> list:
    return [r.command_status for r in list(node.sim.sim.mo_responses)]


def _probe(e, i, landed):
    """The simulator session (the SMSC link of the worker the kernel gave `e` to) a submit_sm with no receipt reached."""
    e.seq += 1
    text = b"probe %d" % i
    e.s.sendall(encode(P.SubmitSm(sequence_number=e.seq, source_addr=GOOD, destination_addr="84912345678",
                                  registered_delivery=0, short_message=text)))
    _submitted(e, 1)
    assert wait_for(lambda: text in landed, 10), i
    return landed[text]


def test_a_pool_of_3_killed_and_started_with_2_delivers_worker_2s_held_receipts_once(tmp_path):
    rs = RedisServer(tmp_path / "redis", port=ports_in(*PORTS, 1)[0])
    cfg = _hours_config(tmp_path)
    t = cfg / "smpp.toml"
    text = t.read_text()
    assert "max_held_receipts = 200000" in text and "max_held_per_account = 0" in text
    t.write_text(text.replace("max_held_receipts = 200000", f"max_held_receipts = {K}")
                 .replace("max_held_per_account = 0", f"max_held_per_account = {K}"))
    # up to 81 connections bound at once (the K submits' and up to 80 more until worker 2 has two) and, after the
    # kill, the dead pool's counted until their TTL (state/pool.py) beside the receiver's: the default max_binds (16)
    # refused the 17th bind, or the receiver's after a first part that took 16 (1-2% of runs each)
    t.write_text(t.read_text() + f'''
[[account]]
system_id = "esme1"
password_hash = "{hash_password('secret', iterations=1000)}"
max_binds = 100
''')
    node = Node(tmp_path, "pool", rs.url, cfg, port=ports_in(*PORTS, 1)[0], workers=3)
    conns, redis = [], rs.client()
    try:
        node.start()
        smpp = node.data / "smpp"
        # the account's list in Redis at max_held_receipts: from now on what a worker holds stays in its journal
        e = Esme(node, kind=P.BindTransmitter)
        conns.append(e)
        e.submit(K)
        ids = _submitted(e, K)
        assert wait_for(lambda: redis.llen(queue_key("esme1")) == K, 20), redis.llen(queue_key("esme1"))
        # each connection's worker is the SMSC link (one per worker) its probe (no receipt asked) reached: one that
        # reached a worker already holding K is not used (that worker answers its receipt "try later", by design:
        # the kernel's SO_REUSEPORT spread once gave 25 connections in a row to workers 0 and 1)
        landed, on_pdu = {}, node.sim.sim.on_pdu
        node.sim.sim.on_pdu = lambda s, ev: (landed.setdefault(bytes(ev.short_message), s)
                                             if ev.command_id == C.SUBMIT_SM else None, on_pdu(s, ev))
        held_by = collections.Counter()     # SMSC link -> receipts its worker holds (journal)
        for i in range(80):                 # P(worker 2 not among 80 connections) = (2/3)^80: never
            e = Esme(node, kind=P.BindTransmitter)
            link = _probe(e, i, landed)
            if held_by[link] >= K:
                e.s.close()
                continue
            conns.append(e)
            e.submit(1, first=K + i)
            ids += _submitted(e, 1)
            held_by[link] += 1
            assert wait_for(lambda: len(_acked(node)) == len(ids), 10), (len(_acked(node)), len(ids))
            if len(_live(smpp, 2)) >= 2:
                break
        assert _acked(node) == [0] * len(ids)               # every receipt acknowledged to the SMSC
        # every receipt past the first K in one worker's journal (the first K: gone, in Redis)
        assert wait_for(lambda: sum(len(_live(smpp, w)) for w in range(3)) == len(ids) - K, 10), \
            [len(_live(smpp, w)) for w in range(3)]
        assert redis.llen(queue_key("esme1")) == K
        node.kill9()                        # the supervisor and its 3 workers
        held = {w: [_mid(raw) for _, raw in _live(smpp, w)] for w in range(3)}
        assert len(held[2]) >= 2 and _journal(smpp, 2).stat().st_size > 0, held
        assert sorted(sum(held.values(), [])) == sorted(ids[K:])
        for c in conns:
            c.s.close()
        conns.clear()

        # the dead pool's SMSC links gone from the simulator (Node.start counts the new ones from those bound)
        assert wait_for(lambda: not [s for s in list(node.sim.sim.sessions) if s.bound], 10)
        node.workers = 2
        node.start()
        rx = Esme(node, kind=P.BindReceiver)
        conns.append(rx)
        got = []
        while len(got) < len(ids):
            p = rx.next(lambda p: p.command_id == C.DELIVER_SM, timeout=45)
            assert p is not None, (len(got), len(ids), sorted(set(ids) - {_mid(x) for x in got}))
            rx.answer(p)
            got.append(p)
        more = rx.receipts(1, timeout=3)    # and nothing twice
        assert not more, [_mid(x) for x in more]
        n = collections.Counter(_mid(x) for x in got)
        assert n == collections.Counter(ids), (n - collections.Counter(ids), collections.Counter(ids) - n)
        assert not [f for f in os.listdir(smpp) if ".w2." in f and not f.startswith("serve.")], os.listdir(smpp)
        assert wait_for(lambda: not any(_live(smpp, w) for w in range(2)), 10), [_live(smpp, w) for w in range(2)]
        err = node.err.read_text()
        assert "taking over the SMPP files" in err and "worker 2" in err, err[-3000:]
    finally:
        for c in conns:
            c.s.close()
        try:
            if node.proc is not None and node.proc.poll() is None:
                node.kill9()
        finally:
            node.stop()
            redis.close()
            rs.stop()
