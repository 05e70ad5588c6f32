"""A 5656 message in parts taken over in Redis (engine/state/mo_parts.py): a taker whose lease ended acts no more on
the message once another has taken it (its take's token, in the message's wait key while it writes), and a message
whose taker died is taken over by any process's sweep even when no part of it will come again (judged at
concat_timeout: every part acknowledged)."""
import threading
import time

import redis

from .redis_helpers import redis_server  # noqa: F401
from .test_redis_mo_concat import Pair, url  # noqa: F401
from .test_redis_mo_concat_taker_crash import _dies_while_writing
from .test_smpp_proxy import wait

SRC = "84912000783"


def _registered(pair) -> int:
    return sum(1 for x in pair.verdicts() for h in x.get("hits", ()) if h["symbol"] == "DNC_REGISTERED")


def _marks(url) -> list:  # noqa: F811
    c = redis.Redis.from_url(url)
    try:
        return [c.get(k) for k in c.scan_iter("tf:{mo:*}:done")]
    finally:
        c.close()


def test_a_taker_cut_off_past_its_lease_does_not_put_back_the_message_another_recorded(
        tmp_path, url, monkeypatch, request):  # noqa: F811
    """A takes, is cut off (no renewal) past the lease; a copy of the completing part takes it over on B, which
    records it (done mark '1'). A's write then fails and A puts the message back: before the token, that deleted
    B's mark and set the wait mark, and the next copy was judged a third time (DNC_REGISTERED twice)."""
    import engine.state.mo_parts as M
    monkeypatch.setattr(M, "LEASE", 0.3)
    monkeypatch.setattr(M, "SWEEP_EVERY", 0.05, raising=False)     # (a sweep never takes it from B, nor acts for A)
    with Pair(tmp_path, url, concat_timeout=30.0) as pair:
        a = pair.proxies[1]
        a.shared_mo._renew_due = lambda: None           # (cut off from Redis: its renewals never land)
        entered, release = threading.Event(), threading.Event()
        request.addfinalizer(release.set)

        def stalled_then_full(recs):
            entered.set()
            release.wait(20)
            raise OSError(28, "No space left on device")
        pair.pipes[1].reports.append_many = stalled_then_full
        pair.send_parts([(0, 1, 2, b"S 0987654321 qua")], ref=0x3C, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5)
        pair.send_parts([(1, 2, 2, b"ng cao")], ref=0x3C, src=SRC, data_coding=1)      # A completes it
        assert entered.wait(5)                          # A took it and writes, stalled
        time.sleep(3 * M.LEASE)
        pair.send_parts([(0, 2, 2, b"ng cao")], ref=0x3C, src=SRC, data_coding=1)     # taken over by B
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert pair.sim.mo_responses[1].command_status == 0
        assert wait(lambda: _marks(url) == [b"1"], 5)   # B recorded it
        release.set()                                   # A's write fails: A puts it back
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)     # (after its put-back: ESME_RX_T_APPN)
        pair.send_parts([(0, 2, 2, b"ng cao")], ref=0x3C, src=SRC, data_coding=1)     # the next copy
        assert wait(lambda: len(pair.sim.mo_responses) == 4, 5)
        assert pair.sim.mo_responses[3].command_status == 0          # (answered once its line, if any, is written)
        reports = pair.reports()
        assert len(reports) == 1, reports               # recorded once (B), never a third judgement
        assert _marks(url) == [b"1"]


def test_a_message_taken_at_concat_timeout_whose_taker_died_is_taken_over_once(
        tmp_path, url, monkeypatch):  # noqa: F811
    """Every part it had was acknowledged, so no copy comes: only a sweep takes it over. Both processes sweep
    (the dead taker's, restarted, too): one judges it, once."""
    import engine.state.mo_parts as M
    monkeypatch.setattr(M, "LEASE", 0.3)
    monkeypatch.setattr(M, "SWEEP_EVERY", 0.05, raising=False)
    with Pair(tmp_path, url, concat_timeout=0.3) as pair:
        p1 = pair.proxies[1]
        took = _dies_while_writing(p1)
        pair.send_parts([(1, 1, 3, b"DK D"), (1, 2, 3, b"NC")], ref=0x3D, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert all(r.command_status == 0 for r in pair.sim.mo_responses)
        assert wait(lambda: took, 5)                    # taken at concat_timeout by process 1, which dies

        def restarted():                                # (its process started again: it knows nothing of it)
            del p1._judge_mo, p1.shared_mo._renew_due
            p1.shared_mo.writing.clear()
        pair.call(_on_loop(restarted))
        assert wait(lambda: _registered(pair) >= 1, 10), "the message was lost with its taker"
        assert wait(lambda: _marks(url) == [b"1"], 5)
        time.sleep(5 * M.LEASE)                         # (a second take-over, if any, has had its time)
        assert _registered(pair) == 1
        assert len([p for p in pair.sim.submits() if p.destination_addr == SRC]) == 1      # one confirmation


async def _on_loop(f):
    f()
