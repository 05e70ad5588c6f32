"""The SIP screen's C entry points keep nothing per message: in_dialog()'s and relay_response()'s answers (built item by
item, not by Py_BuildValue) and RecentCore's len() and add() leave no reference on what they are given and no
allocation behind them, on every path (decided, undecided, refused). A reference kept per message is memory that
grows with traffic (the screen must be O(1) a message); each object's count and the traced allocations are compared
after a warm-up and after many more messages."""
from __future__ import annotations

import sys
import tracemalloc

import pytest

from engine.sip_screen import fastpath, recent
from engine.sip_screen.dialogs import AnsweredCalls

from .sip_helpers import UAC
from .test_sip_fuzz import OUR, REQUESTS, RESPONSES

pytestmark = pytest.mark.skipif(fastpath._c_in_dialog is None or recent.RecentCore is recent.PyRecentCore,
                                reason="C extension not built")
HOP = ("127.0.0.1", 5070, "UDP")
ROUNDS = 20_480                 # (a multiple of 4 * 256: each count read with the same keys in the memories)


def _inputs():
    reqs = REQUESTS[-3:] + [REQUESTS[-3].replace(b"ACK sip:0912345678@127.0.0.1:38930", b"ACK sip:127.0.0.1:5060")]
    resps = [d for d in RESPONSES if fastpath._c_relay_response(d, OUR) is not None]
    assert all(fastpath._c_in_dialog(d, *UAC, OUR, HOP) is not None for d in reqs) and len(resps) >= 3
    assert fastpath._c_in_dialog(reqs[-1], *UAC, OUR, HOP)[5] is HOP     # (the hop path: the object given back)
    return reqs, resps


def _round(i, reqs, resps, mems, keys):
    d = reqs[i % len(reqs)]
    fastpath._c_in_dialog(d, UAC[0], i % 65536, OUR, HOP)              # decided: rport written at every digit count
    fastpath._c_in_dialog(d[:40], *UAC, OUR, HOP)                       # undecided
    with pytest.raises(TypeError):
        fastpath._c_in_dialog(d, UAC[0], UAC[1], OUR[0], HOP)           # refused: `ours` no tuple
    fastpath._c_relay_response(resps[i % len(resps)], OUR)
    k = keys[i % len(keys)]
    for m in mems:
        m.add(k)
        m.add(k)
        len(m)


def test_c_answers_and_memory_methods_keep_nothing_per_message():
    reqs, resps = _inputs()
    mems = (recent.Recent(64), AnsweredCalls(64))
    keys = [b"k%d" % i for i in range(256)]                             # more than the memories hold: they evict
    watched = [HOP, OUR, UAC[0], *reqs, *resps, *keys[:4]]
    for i in range(ROUNDS // 4):
        _round(i, reqs, resps, mems, keys)
    counts = [sys.getrefcount(o) for o in watched]
    tracemalloc.start()
    try:
        for i in range(ROUNDS // 4):                                    # (tracemalloc's own tables settle)
            _round(i, reqs, resps, mems, keys)
        before = tracemalloc.get_traced_memory()[0]
        for i in range(ROUNDS):
            _round(i, reqs, resps, mems, keys)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert [sys.getrefcount(o) for o in watched] == counts
    assert grown < 64 * 1024, grown                                     # a 3-tuple kept a message: > 1 MB here
