"""recent.Recent on the C extension's RecentCore against the same class on PyRecentCore (the pure-Python methods):
seeded random sequences of every operation, with and without a ttl and a low tier, give the same answers and
leave the same entries in the same order."""
from __future__ import annotations

import random

import pytest

from engine.sip_screen import recent
from engine.sip_screen.recent import Bounded, PyRecentCore, Recent

pytestmark = pytest.mark.skipif(recent.RecentCore is PyRecentCore, reason="no C extension")


class PyRecent(Bounded, PyRecentCore):
    __slots__ = ()


def _state(r):
    return list(r.d.items()), list(r.low.items()), len(r)


@pytest.mark.parametrize("size,ttl,low_min", [(8, None, 0), (6, 5.0, 2), (16, 2.5, 8), (1, None, 0), (3, 0.0, 1)])
def test_recent_twin_agrees(size, ttl, low_min):
    rnd = random.Random(size * 1000 + low_min)
    c, p = Recent(size, ttl, low_min=low_min), PyRecent(size, ttl, low_min=low_min)
    assert isinstance(c, recent.RecentCore) and not isinstance(p, recent.RecentCore)
    now = 0.0
    for step in range(4000):
        now += rnd.choice((0.0, 0.5, 1.0, 3.0))
        key = rnd.choice((rnd.randrange(24), b"k%d" % rnd.randrange(8)))
        op = rnd.randrange(9)
        if op == 0:
            call = ("put", key, step, now)
        elif op == 1:
            call = ("put_low", key, (step, "x"), now)
        elif op == 2:
            call = ("get", key, now)
        elif op == 3:
            call = ("get", key, now, "gone")
        elif op == 4:
            call = ("pop", key) if rnd.random() < 0.5 else ("pop", key, -1)
        elif op == 5:
            call = ("promote", key, step, now)
        elif op == 6:
            call = ("demote", key)
        elif op == 7:
            call = ("add", key)
        else:
            call = ("put", key, None) if rnd.random() < 0.5 else ("get", key)     # `now` left to its default
        got = getattr(c, call[0])(*call[1:])
        want = getattr(p, call[0])(*call[1:])
        assert got == want, (step, call)
        assert _state(c) == _state(p), (step, call)
        assert (key in c) == (key in p)


def test_recent_core_refuses_what_is_not_its_shape():
    r = Recent(4)
    r.d = None
    with pytest.raises(TypeError):
        r.get(b"a")
    r = Recent(4)
    r.d[b"a"] = "not a pair"
    with pytest.raises(TypeError):
        r.get(b"a")
