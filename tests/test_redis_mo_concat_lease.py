"""The lease of a process that takes a 5656 message in parts from Redis (engine/state/mo_parts.py, LEASE): it lets a
part sent again take over the message of a taker killed -9 before it recorded the command, and must never let one
take over from a taker that is alive and still writing (a disk that stalls longer than the lease: the completing
part, unanswered, is delivered again elsewhere), which judged and recorded the message twice."""
import threading
import time

from engine.smpp_proxy.codec import constants as C

from .redis_helpers import redis_server  # noqa: F401
from .test_redis_mo_concat import Pair, url  # noqa: F401
from .test_smpp_proxy import wait

SRC = "84912000782"


def _stalled(proxy, request):
    """`proxy`'s 5656 commands stall on disk until the returned `release` is set, then are written; `entered` is set
    once a write has started."""
    entered, release = threading.Event(), threading.Event()
    real = proxy.commands.write
    request.addfinalizer(release.set)               # (a failing test's stalled write ends with it)

    def stalled(cmds):
        entered.set()
        release.wait(20)
        return real(cmds)
    proxy.commands.write = stalled
    return entered, release


def test_a_copy_while_a_stalled_taker_writes_never_takes_it_over(tmp_path, url, monkeypatch, request):  # noqa: F811
    import engine.state.mo_parts as M
    monkeypatch.setattr(M, "LEASE", 0.6)            # (60 s: a disk that stalls for longer)
    with Pair(tmp_path, url, concat_timeout=30.0) as pair:
        entered, release = _stalled(pair.proxies[0], request)
        pair.send_parts([(0, 1, 2, b"DK D"), (0, 2, 2, b"NC")], ref=0x39, src=SRC, data_coding=1)
        assert entered.wait(5)                      # process 0 took it and writes, stalled
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5)
        time.sleep(3 * M.LEASE)                     # (the stall outlasts the lease)
        pair.send_parts([(1, 2, 2, b"NC")], ref=0x39, src=SRC, data_coding=1)     # the SMSC delivers it again
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        resent = pair.sim.mo_responses[1].command_status
        release.set()
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)
        assert wait(lambda: len(pair.verdicts()) >= 1, 5)
        time.sleep(0.5)                             # (a second judgement, if any, has had its time)
        v = pair.verdicts()
        assert [[h["symbol"] for h in x["hits"]] for x in v] == [["DNC_REGISTERED"]], v
        assert resent == C.ESME_RX_T_APPN
        assert len([p for p in pair.sim.submits() if p.destination_addr == SRC]) == 1      # one confirmation


def test_a_copy_while_a_taker_writes_past_keep_is_asked_for_again(tmp_path, url, monkeypatch, request):  # noqa: F811
    """Its done mark and parts live KEEP (120 s) from the take: a stall longer let them expire, and a copy of the
    completing part was stored alone and acknowledged (judged at concat_timeout as a fragment: a syntax error)."""
    import engine.state.mo_parts as M
    monkeypatch.setattr(M, "LEASE", 0.3)
    monkeypatch.setattr(M, "KEEP", 1.0)
    with Pair(tmp_path, url, concat_timeout=30.0) as pair:
        entered, release = _stalled(pair.proxies[0], request)
        pair.send_parts([(0, 1, 2, b"DK D"), (0, 2, 2, b"NC")], ref=0x3A, src=SRC, data_coding=1)
        assert entered.wait(5)
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5)
        time.sleep(3 * M.KEEP)                      # (the stall outlasts KEEP)
        pair.send_parts([(1, 2, 2, b"NC")], ref=0x3A, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert pair.sim.mo_responses[1].command_status == C.ESME_RX_T_APPN
        release.set()
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)
        assert pair.sim.mo_responses[2].command_status == 0
        assert [[h["symbol"] for h in x["hits"]] for x in pair.verdicts()] == [["DNC_REGISTERED"]]


def test_a_copy_on_a_node_whose_clock_runs_ahead_does_not_take_over(tmp_path, url, monkeypatch, request):  # noqa: F811
    """Leases are read on the server's clock: a node whose own ran a lease ahead of the taker's (several nodes, one
    Redis) read every lease as ended and took over a message being written (judged twice)."""
    import time as real
    import types

    import engine.state.mo_parts as M
    with Pair(tmp_path, url, concat_timeout=30.0) as pair:
        entered, release = _stalled(pair.proxies[0], request)
        pair.send_parts([(0, 1, 2, b"DK D"), (0, 2, 2, b"NC")], ref=0x3B, src=SRC, data_coding=1)
        assert entered.wait(5)
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5)
        ahead = types.SimpleNamespace(time=lambda: real.time() + 2 * M.LEASE, monotonic=real.monotonic)
        monkeypatch.setattr(M, "time", ahead)       # (the node that gets the copy)
        pair.send_parts([(1, 2, 2, b"NC")], ref=0x3B, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert pair.sim.mo_responses[1].command_status == C.ESME_RX_T_APPN
        release.set()
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)
        assert [[h["symbol"] for h in x["hits"]] for x in pair.verdicts()] == [["DNC_REGISTERED"]]
