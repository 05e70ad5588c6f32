"""Shared receipts after Redis was away: "shared receipts (hand-over) via … failed: …; receipts stay held here" was
the last word in the log, though the receipts were handed over once the server answered again; an operator could
not tell whether receipts still sat in one process. Now the first answer after failures is a WARNING "work again",
with how many receipts are still held in that process; and the failure's "held N" counts the receipts its call
had taken (it said "held 0" while they were back in the queue)."""
import logging

from engine.smpp_proxy.codec import pdu as P

from .redis_helpers import redis_server  # noqa: F401
from .test_redis_receipts import Pool, _ids, _receive, _submitted_ids, url  # noqa: F401
from .test_redis_receipts_handover_lost import _LosesTheFirstAnswer
from .test_smpp_proxy import wait


def test_a_hand_over_that_works_again_after_a_failure_is_said(tmp_path, url, caplog):  # noqa: F811
    caplog.set_level(logging.WARNING, logger="telfilter")
    with Pool(tmp_path, url) as pool:
        shared = pool.shared[0][2]
        shared._push = lossy = _LosesTheFirstAnswer(shared._push)
        pool.sim.receipts_elsewhere = False
        tx = pool.esme(0, P.BindTransmitter)            # no receiver on proxy 0: its receipts are handed over
        tx.submit(3)
        ids = _submitted_ids(tx, 3)
        assert wait(lambda: lossy.lost > 0, 5)
        rx = pool.esme(1, P.BindReceiver)
        assert _ids(_receive(rx, 3)) == ids
        assert wait(lambda: any("shared receipts" in m and "work again" in m for m in caplog.messages), 5), \
            caplog.messages
    failed = [i for i, m in enumerate(caplog.messages) if "shared receipts (hand-over)" in m and "failed" in m]
    again = [i for i, m in enumerate(caplog.messages) if "shared receipts" in m and "work again" in m]
    assert failed and len(again) == 1 and again[0] > failed[0], caplog.messages
    assert "1 failed calls before" in caplog.messages[again[0]], caplog.messages[again[0]]
    # the failure counts the receipts held here once they are back in the queue (it said "held 0" with 3 held)
    assert "(held 3)" in caplog.messages[failed[0]], caplog.messages[failed[0]]
